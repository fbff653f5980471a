"""Which model an index's vectors came from, and the check that a model is that one.

An index built with a model records the hash of its checkpoint file
(`facespace.checkpoint.model_hash`) and a hash of its weights, so a model kept in memory and the
same model saved and loaded again are both recognised, and any other model is refused.
"""

from __future__ import annotations

import os
from typing import Any

from facespace.checkpoint import model_hash, weights_hash
from facespace.index.index import Index, IndexingError
from facespace.models.registry import resolve_model
from facespace.protocol import model_kind
from facespace.protocol import Encoder


def model_record(model: Encoder) -> dict[str, Any]:
    """What an index stores about the model its vectors came from."""
    info = getattr(model, "checkpoint_info", {}) or {}
    return {
        "hash": model_hash(model),
        "weights_hash": weights_hash(model),
        "kind": model_kind(model),
        "path": os.path.abspath(info["path"]) if info.get("path") else None,  # searchable from any folder
        "builtin": info.get("builtin"),  # a built-in or extra model's name: found again by name
        "image_shape": list(model.image_shape),
        "code_size": int(model.code_size),
    }


def check_model(index: Index, model: Encoder) -> None:
    """Raise IndexingError unless `model` is the model `index` was built with."""
    rec = index.model
    if rec is None:
        raise IndexingError(
            "this index was built from plain vectors, not with a model, so it cannot check which model "
            "made them; search it with codes (Index.search) or rebuild it with `facespace index build`"
        )
    if int(model.code_size) != index.dim:
        raise IndexingError(
            f"the model makes codes of size {model.code_size} but the index holds codes of size {index.dim}; "
            f"use the model the index was built with ({rec.get('path') or rec.get('kind')})"
        )
    found = model_hash(model)
    if rec.get("hash") and found == rec["hash"]:
        return
    if rec.get("weights_hash") and weights_hash(model) == rec["weights_hash"]:
        return
    raise IndexingError(
        f"this index was built with another model ({rec.get('kind')} {rec.get('hash') or rec.get('weights_hash')}"
        f"{', ' + rec['path'] if rec.get('path') else ''}), not this one ({getattr(model, 'kind', '?')} "
        f"{found or weights_hash(model)}); search with that model or rebuild the index with this one"
    )


def index_model(index: Index) -> Any:
    """Load the model recorded in `index` from its checkpoint path, or say why that is impossible."""
    rec = index.model
    if rec is not None and not rec.get("path") and rec.get("builtin"):
        model = resolve_model(rec["builtin"])
        check_model(index, model)
        return model
    if rec is None or not rec.get("path"):
        raise IndexingError("this index records no model file; give the model explicitly (--model PATH)")
    if not os.path.exists(rec["path"]):
        raise IndexingError(f"the index's model file {rec['path']} is gone; give the model explicitly (--model PATH)")
    model = resolve_model(rec["path"])
    check_model(index, model)
    return model
