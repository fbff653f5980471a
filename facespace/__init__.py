"""facespace: learn a latent space of faces with autoencoders, and put it to work.

The public API is a handful of verbs on numpy arrays, paths and plain types:

    >>> import facespace as fs                                    # doctest: +SKIP
    >>> faces = fs.load_faces("embedded", size=32)                # FaceSet, images (n, 32, 32, 3)
    >>> model = fs.train("pca", faces, code_size=32)              # an Encoder
    >>> codes = fs.encode(model, faces.images)                    # (n, 32) float32

Importing facespace loads nothing heavy: each verb imports its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# verb -> module that defines it (imported lazily, PEP 562)
_VERBS: dict[str, str] = {
    "load_faces": "facespace.data",
    "FaceSet": "facespace.data",
    "random_split": "facespace.data",
    "people_split": "facespace.data",
    "read_pairs": "facespace.data",
    "load_model": "facespace.checkpoint",
    "train": "facespace.training.recipes",
    "encode": "facespace.pipelines.codes",
    "reconstruct": "facespace.pipelines.codes",
    "decode": "facespace.pipelines.codes",
    "explain": "facespace.pipelines.explanation",
    "Index": "facespace.index",
    "build_index": "facespace.index",
    "search": "facespace.pipelines.retrieval",
    "find_duplicates": "facespace.pipelines.retrieval",
    "morph": "facespace.pipelines.generation",
    "vary": "facespace.pipelines.generation",
    "fill_in": "facespace.pipelines.generation",
    "detect_faces": "facespace.photos.detect",
    "faces_in_photo": "facespace.photos.faces",
    "verify": "facespace.people.verification",
    "evaluate_lfw": "facespace.people.lfw",
    "Gallery": "facespace.people.gallery.gallery",
    "enroll": "facespace.people.gallery.gallery",
    "identify": "facespace.people.gallery.gallery",
    "cluster": "facespace.people.clustering",
    "FaceGroups": "facespace.people.groups.groups",
    "save_codes": "facespace.pipelines.export.write",
    "load_codes": "facespace.pipelines.export.write",
    "face_quality": "facespace.people.quality",
    "write_report": "facespace.reports.run_report",
    "save_model": "facespace.checkpoint",
    "Encoder": "facespace.protocol",
    "Autoencoder": "facespace.protocol",
    "FacespaceError": "facespace.errors",
}

__all__ = sorted(_VERBS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        value = getattr(importlib.import_module(_VERBS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facespace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
