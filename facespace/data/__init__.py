"""Face data: loading, caching, splits and LFW pair lists."""

from facespace.data.faceset import FaceSet
from facespace.data.images import load_images, read_image
from facespace.data.load import DataWarning, cache_entry, load_faces
from facespace.data.pairs import Pair, pair_paths, read_pair_files, read_pairs
from facespace.data.splits import people_split, random_split

__all__ = [
    "DataWarning",
    "FaceSet",
    "Pair",
    "cache_entry",
    "load_faces",
    "load_images",
    "pair_paths",
    "people_split",
    "random_split",
    "read_image",
    "read_pair_files",
    "read_pairs",
]
