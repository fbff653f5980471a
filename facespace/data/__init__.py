"""Face data: images and their crops, face sets loaded from folders, archives, LFW or the embedded
default, the decode cache, splits, LFW pair lists, augmentation and corruptions, the images a model
takes (`inputs.as_images`), and the stroke-sketch formats.

May import: the ground floor only (errors, files, protocol, checkpoint, grid).
"""

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
