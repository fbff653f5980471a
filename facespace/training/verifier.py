"""Train a `VerifierNet` on identities: a cosine-margin softmax over the people of a FaceSet.

The network knows nothing of people or noise: `IdentityObjective` wraps it with the per-person
class centres and the augmentation, and the generic loop (`facespace.training.loop.fit`) calls its
`loss(batch)` on `(images, labels)` batches and saves `objective.network`.

Example:
    >>> faces = load_faces("lfw-deepfunneled", size=64, grayscale=True)  # doctest: +SKIP
    >>> model = train_verifier(faces, out="runs/verifier")  # doctest: +SKIP
    >>> model.encode(faces.images[:2]).shape  # doctest: +SKIP
    (2, 128)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from facespace.data.augment import AugmentConfig, augment
from facespace.data.faceset import FaceSet
from facespace.errors import FacespaceError
from facespace.training.metric_losses import MarginSoftmax
from facespace.models.verifier import VerifierConfig, VerifierNet

_UNSET = object()  # "not given", where None is a meaningful value


@dataclass(frozen=True)
class ObjectiveConfig:
    """Which people train the softmax, and how."""

    min_images: int = 2  # people with fewer images are left out (a class of one image teaches little)
    max_images: int | None = 80  # at most this many images per person (LFW has 530 of one man)
    val_min_images: int = 6  # people with at least this many images give one image to validation
    loss: str = "cosface"  # cosface | arcface
    margin: float = 0.35  # CosFace: cosine units; ArcFace: radians
    scale: float = 30.0  # the softmax's inverse temperature s
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # changes drawn per training batch


class IdentityObjective(nn.Module):
    """A network plus one learned centre per person; `loss` is the margin softmax on a batch.

    Args:
        network: the `VerifierNet` being trained (what gets saved).
        n_classes: the number of people in training.
        config: margin, scale, loss kind and augmentation.
    """

    def __init__(self, network: VerifierNet, n_classes: int, config: ObjectiveConfig = ObjectiveConfig()):
        super().__init__()
        self.network = network
        self.config = config
        self.head = MarginSoftmax(
            network.code_size, n_classes, margin=config.margin, scale=config.scale, kind=config.loss
        )

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """`batch` is `(images (B, C, H, W) float in [0, 1], labels (B,) int64)`."""
        images, labels = batch
        images = images.to(self.network.device)
        labels = labels.to(self.network.device).long()
        if self.training:
            images = augment(images, self.config.augment)  # fresh draws from torch's seeded RNG
        loss, acc = self.head(self.network.embed(images), labels)
        return loss, {"loss": float(loss.detach()), "acc": float(acc)}


def identity_split(
    faces: FaceSet, config: ObjectiveConfig = ObjectiveConfig(), *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Pick training and validation images and number the people.

    Returns:
        `(train_index, val_index, labels, people)`: image indices into `faces`, `(n,)` int64 class
        per image of `faces` (-1 for people left out), and the class names in label order.
    """
    if faces.names is None:
        raise FacespaceError(
            "training a verifier needs a name per image; load a folder laid out as <person>/<image>"
        )
    rng = np.random.default_rng(seed)
    counts = faces.people()
    people = sorted(p for p, c in counts.items() if c >= config.min_images)
    if len(people) < 2:
        raise FacespaceError(
            f"only {len(people)} people have >= {config.min_images} images; a verifier needs at least 2 "
            "such people (lower min_images or add images)"
        )
    label_of = {p: i for i, p in enumerate(people)}
    labels = np.array([label_of.get(n, -1) for n in faces.names], dtype=np.int64)
    train, val = [], []
    for person in people:
        idx = rng.permutation(np.flatnonzero(faces.names == person))
        if len(idx) >= config.val_min_images:
            val.append(idx[:1])
            idx = idx[1:]
        train.append(idx[: config.max_images] if config.max_images else idx)
    train_index = np.sort(np.concatenate(train))
    val_index = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return train_index, val_index, labels, people


def identity_dataset(faces: FaceSet, index: np.ndarray, labels: np.ndarray) -> torch.utils.data.TensorDataset:
    """A dataset of `(image (C, H, W) float32, label int64)` for the given images."""
    x = torch.from_numpy(np.ascontiguousarray(faces.images[index].transpose(0, 3, 1, 2), dtype=np.float32))
    return torch.utils.data.TensorDataset(x, torch.from_numpy(labels[index]))


def train_verifier(
    faces: FaceSet,
    *,
    model: VerifierConfig | None = None,
    objective: ObjectiveConfig = ObjectiveConfig(),
    loop: Any = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    crop: Any = _UNSET,
    source: str | None = None,
) -> VerifierNet:
    """Train a face verification network on the identities of `faces`.

    Args:
        faces: images `(n, H, W, C)` with `names`; only people with `objective.min_images` or more
            images train the softmax.
        model: the network's config; by default a `VerifierConfig` of the images' size and channels.
        objective: people selection, margin loss and augmentation.
        loop: a `facespace.training.loop.TrainConfig` (epochs, batch size, lr, schedule, seed, threads); by
            default 30 epochs of AdamW (lr 3e-3, weight decay 0.05, batches of 128, gradient
            norm clipped at 5) with a one-cycle schedule.
        out: a run folder for checkpoints, metrics and the loss plot; None keeps nothing on disk.
        progress: print progress to stderr.
        crop: how `faces` were cut from their files (`facespace.data.crops.parse_crop`); recorded in the
            checkpoint so that image files given to the model later are cut the same way. Not
            given: nothing is recorded and files get the default crop ("lfw").
        source: where `faces` came from, recorded as `extra["data"]`.

    Returns:
        The trained `VerifierNet` in eval mode; its `encode` gives unit-length `(n, d)` embeddings.
    """
    size, _, channels = faces.image_shape
    if model is None:
        model = VerifierConfig(size=size, channels=channels)
    if (model.size, model.size, model.channels) != tuple(faces.image_shape):
        raise FacespaceError(
            f"the images are {tuple(faces.image_shape)} but the model config takes "
            f"({model.size}, {model.size}, {model.channels}); load the faces with size={model.size} "
            f"and grayscale={model.channels == 1}"
        )
    from facespace.training.loop import TrainConfig, fit

    if loop is None:
        loop = TrainConfig(epochs=30, **LOOP_DEFAULTS)
    torch.manual_seed(loop.seed)
    train_index, val_index, labels, people = identity_split(faces, objective, seed=loop.seed)
    network = VerifierNet(model)
    network.checkpoint_info = {"extra": {
        "trained_people": len(people),
        "trained_images": int(len(train_index)),
        "objective": dataclasses.asdict(objective),
        "loop": dataclasses.asdict(loop),
    }}
    if crop is not _UNSET:
        from facespace.data.crops import crop_record

        network.checkpoint_info["extra"]["crop"] = crop_record(crop)
    if source is not None:
        network.checkpoint_info["extra"]["data"] = str(source)
    trainable = IdentityObjective(network, len(people), objective)
    val = identity_dataset(faces, val_index, labels) if len(val_index) else None
    result = fit(trainable, identity_dataset(faces, train_index, labels), val, loop,
                 out_dir=out, progress=progress)
    best = getattr(result, "best_path", None)
    if best is not None and os.path.exists(best):
        from facespace.models.registry import load_model

        return load_model(best, kind="verifier")
    network.eval()
    return network


# `train("verifier", ...)` options besides the loop's (`TrainConfig`) and the data's
MODEL_OPTIONS = ("width", "blocks", "dropout", "flip_test", "shift_test")
OBJECTIVE_OPTIONS = ("min_images", "max_images", "loss", "margin", "scale", "augment")
DATA_OPTIONS = ("size", "grayscale", "crop", "progress")
# the loop `train("verifier", ...)` runs unless told otherwise (measured on LFW: verifier_folds.md)
LOOP_DEFAULTS = dict(batch_size=128, lr=3e-3, optimizer="adamw", schedule="onecycle", weight_decay=5e-2, grad_clip=5.0)


def train_verifier_run(
    data: Any, *, out: str | os.PathLike | None = None, code_size: int = 128, epochs: int = 30, **options: Any
) -> VerifierNet:
    """`facespace.training.recipes.train("verifier", ...)`: load named faces, train, write the run folder.

    Args:
        data: a named FaceSet, or a source for `load_faces` (LFW, or any `<person>/<image>` folder).
        out: run folder: best/last.safetensors, metrics.csv, loss.png, config.json, run.json.
        code_size: embedding length d.
        epochs: passes over the training images.
        **options: data (`size`=48, `grayscale`, `crop`="lfw" (a name or box, see
            `facespace.data.crops`), `progress`), network (`width`, `blocks`, `dropout`, `flip_test`, `shift_test`),
            objective (`min_images`, `max_images`, `loss`, `margin`, `scale`, `augment`: an
            `AugmentConfig` or its text, e.g. "grey=0.25" for the default changes plus grey copies) and any
            `facespace.training.loop.TrainConfig` field (defaults `LOOP_DEFAULTS`).

    Raises:
        FacespaceError: an unknown option, images without names, or fewer than 2 people with
            `min_images` images.
    """
    import json
    import time
    from pathlib import Path

    from facespace.data.crops import crop_name, parse_crop
    from facespace.training.loop import TrainConfig
    from facespace.data.load import load_training_faces

    loop_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"epochs"}
    known = loop_fields | set(MODEL_OPTIONS) | set(OBJECTIVE_OPTIONS) | set(DATA_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise FacespaceError(
            f"option(s) {', '.join(unknown)} do not apply to kind 'verifier'; expected: {', '.join(sorted(known))}"
        )
    opt = dict(options)
    progress = bool(opt.pop("progress", True))
    is_source = isinstance(data, (str, os.PathLike))
    crop = parse_crop(opt.pop("crop", "lfw"))
    faces = load_training_faces(data, size=int(opt.pop("size", 48)), grayscale=bool(opt.pop("grayscale", False)),
                                crop=crop, progress=progress)
    if getattr(faces, "names", None) is None:
        raise FacespaceError(
            f"{getattr(faces, 'source', 'the data')} has no person names: a verifier learns from named people; "
            "give a folder laid out as <person>/<image> (LFW's layout)"
        )
    size, _, channels = faces.image_shape
    model = VerifierConfig(size=size, channels=channels, code_size=int(code_size),
                           **{k: (tuple(opt.pop(k)) if k == "blocks" else opt.pop(k)) for k in MODEL_OPTIONS if k in opt})
    if "augment" in opt:  # text or an AugmentConfig; None or "none" trains without any change
        from facespace.data.augment import NO_CHANGE, parse_augment

        opt["augment"] = parse_augment(opt["augment"]) or NO_CHANGE
    objective = ObjectiveConfig(**{k: opt.pop(k) for k in OBJECTIVE_OPTIONS if k in opt})
    loop = TrainConfig(**{**LOOP_DEFAULTS, **opt, "epochs": int(epochs)})
    t0 = time.perf_counter()
    net = train_verifier(faces, model=model, objective=objective, loop=loop, out=out, progress=progress,
                         crop=crop if is_source or "crop" in options else _UNSET,
                         source=getattr(faces, "source", None))
    if out is not None:
        from facespace.files import write_text_atomic
        from facespace.training.runs import read_metrics

        extra = net.checkpoint_info.get("extra", {})
        metrics = Path(out) / "metrics.csv"
        info = {
            "kind": "verifier", "data": getattr(faces, "source", ""), "n_images": len(faces),
            "people": len(faces.people()), "crop": crop_name(crop), "image_shape": list(faces.image_shape),
            "code_size": net.code_size, "model_config": dataclasses.asdict(net.config),
            "trained_people": extra.get("trained_people"), "trained_images": extra.get("trained_images"),
            "epochs_run": len(read_metrics(metrics)) if metrics.exists() else None,
            "best_val_loss": net.checkpoint_info.get("best_val_loss"),
            "train_seconds": round(time.perf_counter() - t0, 3),
        }  # fmt: skip
        write_text_atomic(Path(out) / "run.json", json.dumps(info, indent=2, default=str) + "\n")
    return net


def retrainer(
    model: VerifierNet, *, progress: bool = False, threads: int | None = None, epochs: int | None = None
) -> Callable[[FaceSet], VerifierNet]:
    """A `train_fn(faces) -> model` that trains a fresh network with `model`'s settings.

    For protocols that retrain per fold (`facespace.people.lfw.evaluate_lfw(train_fn=...)`): the
    network config comes from `model.config`, the objective and loop settings from what
    `train_verifier` stored in the checkpoint (defaults where the checkpoint has none); `threads`
    and `epochs` override the loop's torch threads and length. Each fresh model records the checkpoint's crop.
    """
    from facespace.training.loop import TrainConfig

    extra = getattr(model, "checkpoint_info", {}).get("extra", {})
    obj = dict(extra.get("objective") or {})
    objective = ObjectiveConfig(**{**obj, "augment": AugmentConfig(**obj.get("augment", {}))}) if obj else ObjectiveConfig()
    loop = TrainConfig(**extra["loop"]) if extra.get("loop") else None
    if threads is not None:
        loop = dataclasses.replace(loop or TrainConfig(epochs=30, **LOOP_DEFAULTS), threads=threads)
    if epochs is not None:
        loop = dataclasses.replace(loop or TrainConfig(epochs=30, **LOOP_DEFAULTS), epochs=int(epochs))
    config = model.config
    crop = extra["crop"] if "crop" in extra else _UNSET

    def train_fn(faces: FaceSet) -> VerifierNet:
        return train_verifier(faces, model=config, objective=objective, loop=loop, progress=progress, crop=crop)

    return train_fn


def ensemble_retrainer(
    ensemble: Any, *, progress: bool = False, threads: int | None = None, epochs: int | None = None
) -> Callable[[FaceSet], Any]:
    """A `train_fn(faces) -> VerifierEnsemble` that trains every member afresh with its own settings.

    `faces` are at the ensemble's input (its union crop, `(n, size, size, C)`); each member trains on
    its own box cut from them exactly as the ensemble cuts it at use (`member_images`), with the
    network, objective and loop recorded for it by `ensemble_verifiers` (see `retrainer`).
    """
    from types import SimpleNamespace

    from facespace.models.ensemble import ensemble_verifiers

    infos = (getattr(ensemble, "checkpoint_info", {}).get("extra") or {}).get("members") or []
    if len(infos) != len(ensemble.members) or any("crop" not in i for i in infos):
        raise FacespaceError("this ensemble records no crop for each member; rebuild it with `facespace models ensemble`")
    fns = [retrainer(SimpleNamespace(config=m.config, checkpoint_info={"extra": info}), progress=progress,
                     threads=threads, epochs=epochs) for m, info in zip(ensemble.members, infos)]

    def train_fn(faces: FaceSet) -> Any:
        cuts = ensemble.member_images(faces.images)  # each (n, s_k, s_k, C)
        models = [fn(dataclasses.replace(faces, images=c)) for fn, c in zip(fns, cuts)]
        return ensemble_verifiers(models, crops=[i["crop"] for i in infos], size=ensemble.config.size)

    return train_fn
