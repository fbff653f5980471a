"""Face verification: "are these two faces the same person?"

Any `facespace.protocol.Encoder` maps each face to a code; two faces are the same person when the
distance between their codes is at most a threshold. The threshold is calibrated on labelled pairs
(`facespace.people.thresholds.calibrate_threshold`) and stored with the model in its checkpoint's
`extra["verify"]`, so `verify` and `facespace people verify` use it from then on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facespace.data.crops import RECORDED
from facespace.data.inputs import as_images
from facespace.errors import FacespaceError
from facespace.models.registry import save_model
from facespace.checkpoint import file_hash, read_checkpoint
from facespace.people.distances import pair_distances
from facespace.people.thresholds import calibrate_threshold, pair_accuracy
from facespace.protocol import Encoder


# --- the threshold stored with a model --------------------------------------------------------


def stored_threshold(model: Encoder) -> dict[str, Any] | None:
    """The calibration stored with a loaded model (`{"threshold", "metric", ...}`), or None."""
    return (getattr(model, "checkpoint_info", None) or {}).get("extra", {}).get("verify")


def save_threshold(
    model: Encoder, threshold: float, *, metric: str = "cosine", target_far: float | None = None, **info: Any
) -> Path:
    """Store a calibrated threshold in the checkpoint the model was loaded from (atomic rewrite).

    Args:
        model: a model loaded with `load_model` (it knows its file).
        threshold: the distance threshold.
        metric: the distance it applies to.
        target_far: the false-accept rate it was chosen for (None: best accuracy).
        **info: more facts to keep (pairs file, number of pairs, accuracy).

    Returns:
        The checkpoint path.
    """
    path = (getattr(model, "checkpoint_info", None) or {}).get("path")
    if not path:
        raise FacespaceError("this model was never saved; save it with save_model before storing a threshold")
    meta, _ = read_checkpoint(path)
    extra = dict(meta.get("extra") or {})
    extra["verify"] = {"threshold": float(threshold), "metric": metric, "target_far": target_far, **info}
    save_model(model, path, step=meta.get("step", 0), best_val_loss=meta.get("best_val_loss"), extra=extra)
    model.checkpoint_info = {**model.checkpoint_info, "extra": extra}
    model.checkpoint_info["hash"] = file_hash(path)
    return Path(path)


def calibrate(
    model: Encoder,
    images_a: Any,
    images_b: Any,
    same: Any,
    *,
    target_far: float | None = None,
    metric: str = "cosine",
    save: bool = False,
) -> float:
    """Calibrate a model's verification threshold on labelled pairs of images.

    Args:
        model: any `Encoder`.
        images_a, images_b: `(n, H, W, C)` float32 arrays or lists of n image paths.
        same: `(n,)` bool.
        target_far: see `calibrate_threshold`.
        metric: "cosine" or "l2".
        save: also store it in the model's checkpoint (`save_threshold`).

    Returns:
        The threshold.
    """
    za = model.encode(as_images(model, images_a, check_faces=True))
    zb = model.encode(as_images(model, images_b, check_faces=True))
    d = pair_distances(za, zb, metric=metric)
    t = calibrate_threshold(d, same, target_far=target_far)
    if save:
        save_threshold(model, t, metric=metric, target_far=target_far, pairs=len(d), accuracy=pair_accuracy(d, same, t))
    return t


def verify(
    model: Encoder,
    image_a: Any,
    image_b: Any,
    *,
    max_distance: float | None = None,
    metric: str | None = None,
    crop: Any = RECORDED,
) -> tuple[float, bool]:
    """Are two faces the same person?

    Args:
        model: any `Encoder`; its stored threshold (`save_threshold`) is used unless `max_distance`
            is given.
        image_a, image_b: an `(H, W, C)` float32 image in [0, 1] at the model's shape, or a path.
        max_distance: the largest distance still counted as the same person (default: the stored threshold).
        metric: "cosine" (default) or "l2"; default: the metric the stored threshold was made for.
        crop: how image files are cut (`facespace.data.crops.parse_crop`); default: the crop the model
            was trained with.

    Returns:
        `(distance, same)`.

    Example:
        >>> from facespace.models.pixels import PixelEncoder
        >>> enc = PixelEncoder(size=4, channels=1)
        >>> a = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4, 1)
        >>> verify(enc, a, a, max_distance=0.1)
        (0.0, True)
    """
    stored = stored_threshold(model)
    if max_distance is None:
        if stored is None:
            raise FacespaceError(
                "this model has no calibrated verification threshold; calibrate one with "
                "`facespace people evaluate-lfw --model MODEL --pairs pairsDevTrain.txt --save-threshold` "
                "or pass max_distance="
            )
        max_distance = float(stored["threshold"])
        metric = metric or stored.get("metric", "cosine")
    metric = metric or "cosine"
    a = as_images(model, image_a, crop=crop, check_faces=True)
    b = as_images(model, image_b, crop=crop, check_faces=True)
    if len(a) != 1 or len(b) != 1:
        raise FacespaceError(f"verify compares one image with one image; got {len(a)} and {len(b)}")
    z = model.encode(np.concatenate([a, b]))
    d = float(pair_distances(z[:1], z[1:], metric=metric)[0])
    d = 0.0 if abs(d) < 1e-7 else d
    return d, bool(d <= max_distance)
