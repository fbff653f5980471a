"""facespace: learn a latent space of faces with autoencoders, and put it to work.

The public API is a handful of verbs on numpy arrays, paths and plain types:

    >>> import facespace as fs                                    # doctest: +SKIP
    >>> faces = fs.load_faces("embedded", size=32)                # FaceSet, images (n, 32, 32, 3)
    >>> model = fs.train("pca", faces, code_size=32)              # an Encoder
    >>> codes = fs.encode(model, faces.images)                    # (n, 32) float32

Everything else lives in the rooms (`facespace.data`, `models`, `training`, `index`, `people`,
`photos`, `pipelines`, `reports`). Importing facespace loads nothing heavy: each verb imports its
module on first use. No verb shares its name with a module, so importing any module never rebinds
a verb (`tests/test_architecture.py` checks it).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from facespace.version import __version__

# verb or class -> the module that defines it (imported lazily, PEP 562)
_PUBLIC: dict[str, str] = {
    "load_faces": "facespace.data.load",
    "load_model": "facespace.models.registry",
    "save_model": "facespace.models.registry",
    "train": "facespace.training.recipes",
    "encode": "facespace.pipelines.codes",
    "decode": "facespace.pipelines.codes",
    "reconstruct": "facespace.pipelines.codes",
    "save_codes": "facespace.pipelines.export.write",
    "load_codes": "facespace.pipelines.export.read",
    "Index": "facespace.index.index",
    "build_index": "facespace.pipelines.indexing",
    "search": "facespace.pipelines.retrieval",
    "find_duplicates": "facespace.pipelines.retrieval",
    "verify": "facespace.people.verification",
    "Gallery": "facespace.people.gallery.gallery",
    "cluster": "facespace.people.clustering",
    "face_quality": "facespace.people.quality",
    "detect_faces": "facespace.photos.detect",
    "morph": "facespace.pipelines.generation",
    "Encoder": "facespace.protocol",
    "FacespaceError": "facespace.errors",
}

# names the package root exported before the house was renovated: still answered, with a warning
# that says where each lives now (kept for one release)
_MOVED: dict[str, str] = {
    "FaceSet": "facespace.data.faceset",
    "random_split": "facespace.data.splits",
    "people_split": "facespace.data.splits",
    "read_pairs": "facespace.data.pairs",
    "explain": "facespace.pipelines.explanation",
    "vary": "facespace.pipelines.generation",
    "fill_in": "facespace.pipelines.generation",
    "faces_in_photo": "facespace.photos.faces",
    "evaluate_lfw": "facespace.people.lfw",
    "enroll": "facespace.people.gallery.gallery",
    "identify": "facespace.people.gallery.gallery",
    "FaceGroups": "facespace.people.groups.groups",
    "write_report": "facespace.reports.run_report",
    "Autoencoder": "facespace.protocol",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if name in _MOVED:
        warnings.warn(f"facespace.{name} moved to {_MOVED[name]}.{name}; import it from there "
                      "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'facespace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
