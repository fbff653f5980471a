"""Keep the per-fold models of a retrained verifier, train them fold by fold, and score them again without training.

A View 2 run with a verifier retrained per fold costs ten trainings. `saving` keeps each fold's
model in a folder, named by a hash of the people it trained on; `replay` hands `evaluate_lfw` that
model back when it asks for a model of exactly those people (and refuses otherwise), so:
- two processes can train different folds (`--folds 1-5` and `--folds 6-10`) and one cheap run
  scores all ten folds (the full protocol) from the kept models;
- the same trained models can be scored with another test-time setting (`shift_test`), an
  ablation that costs no training;
- an ensemble of kept models keeps each member's codes of the scored images on disk
  (`<folder>/codes/`), so scoring it again, or with one more member, encodes only what is new.
The people hash is what keeps this honest: a kept model is only used for a fold whose training
people are exactly the people it was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facespace.data.load import load_faces
from facespace.data.pairs import read_pair_files
from facespace.errors import FacespaceError
from facespace.people.lfw_folds import fold_training_faces, tested_folds
from facespace.protocol import Encoder


def people_key(faces: Any) -> str:
    """A 16-hex-digit hash of the sorted set of people in `faces.names`."""
    names = sorted(set(str(n) for n in faces.names.tolist()))
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def kept_path(folder: Path, faces: Any) -> Path:
    """Where the model trained on exactly `faces`' people is kept: `folder/<people_key>.safetensors`."""
    return Path(folder) / f"{people_key(faces)}.safetensors"


def saving(train_fn: Callable[[Any], Any], folder: Path) -> Callable[[Any], Any]:
    """`train_fn` that also writes each trained model to `folder/<people_key>.safetensors`."""
    from facespace.models.registry import save_model

    def fn(faces: Any) -> Any:
        model = train_fn(faces)
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = kept_path(folder, faces)
        extra = dict(model.checkpoint_info.get("extra", {}), people_key=path.stem,
                     people=len(set(faces.names.tolist())), images=len(faces))
        save_model(model, path, extra=extra)
        return model

    return fn


def with_shift_test(model: Encoder, pixels: int) -> Any:
    """The same network and weights with `shift_test=pixels` in its config."""
    from facespace.models.verifier import VerifierNet

    if model.config.shift_test == pixels:
        return model
    other = VerifierNet(dataclasses.replace(model.config, shift_test=pixels))
    other.load_state_dict(model.state_dict())
    other.checkpoint_info = model.checkpoint_info
    return other.eval()


def replay(folder: Path, *, shift_test: int = 0) -> Callable[[Any], Any]:
    """`train_fn` that returns the kept model trained on exactly `faces`' people (no training)."""
    from facespace.models.registry import load_model

    def fn(faces: Any) -> Any:
        path = kept_path(folder, faces)
        if not path.exists():
            raise FacespaceError(
                f"{folder} holds no model trained on exactly these {len(set(faces.names.tolist()))} people "
                f"({path.name}); train that fold first with --verifier-retrain CKPT --save-fold-models {folder}"
            )
        return with_shift_test(load_model(path, kind="verifier"), shift_test)

    return fn


def replay_ensemble(folders: list[Path], *, shift_test: int = 0, size: int = 160,
                    cache: bool = True) -> Callable[[Any], Any]:
    """`train_fn` that returns the kept models of several folders (each trained on exactly `faces'`
    people, each with its own crop) as one `VerifierEnsemble` of input side `size`; with `cache`,
    wrapped in a `CachedEnsemble` that keeps each member's codes beside its file."""
    from facespace.models.ensemble import ensemble_verifiers

    members = [replay(folder, shift_test=shift_test) for folder in folders]

    def fn(faces: Any) -> Any:
        models = [member(faces) for member in members]
        ens = ensemble_verifiers(models, size=size)
        return CachedEnsemble(ens, [m.checkpoint_info for m in models]) if cache else ens

    return fn


class CachedEnsemble:
    """A `VerifierEnsemble` whose `encode` keeps each member's codes of an image batch on disk.

    The codes of member i for images X are `<member's folder>/codes/<hash of the member file>-shift<s>-
    <hash of X>.npy`: the same weights, test-time shifts and input give the same codes, so they are read
    back instead of computed. `encode` returns exactly what the ensemble's would: the members' unit
    codes side by side over sqrt(M).
    """

    def __init__(self, ensemble: Any, infos: list[dict]):
        """`infos`: each member's `checkpoint_info` from `load_model` (its file's path and hash)."""
        self.ensemble, self.infos = ensemble, infos
        self.kind, self.image_shape, self.code_size = ensemble.kind, ensemble.image_shape, ensemble.code_size
        self.checkpoint_info = ensemble.checkpoint_info

    def encode(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """`(n, size, size, C)` float32 images of the union box -> `(n, d)` float32 codes."""
        images = np.ascontiguousarray(images, np.float32)
        tag = hashlib.sha256(images.tobytes()).hexdigest()[:16]
        # the member's box in the union follows from its file (its recorded crop) and the union's pixels
        # (their hash), so weights, shifts and images are the whole key
        paths = [Path(info["path"]).parent / "codes" / f"{info['hash']}-shift{m.config.shift_test}-{tag}.npy"
                 for m, info in zip(self.ensemble.members, self.infos)]
        cuts = None if all(p.exists() for p in paths) else self.ensemble.member_images(images, batch_size=batch_size)
        parts = [np.load(p) if p.exists() else _save(p, m.encode(cuts[i], batch_size=batch_size))
                 for i, (m, p) in enumerate(zip(self.ensemble.members, paths))]
        return (np.concatenate(parts, 1) / np.sqrt(len(parts))).astype(np.float32)


def _save(path: Path, codes: np.ndarray) -> np.ndarray:
    """Write `codes` to `path` through a temporary name (a killed run leaves a .part, never a truncated entry)."""
    path.parent.mkdir(exist_ok=True)
    part = path.with_suffix(f".{os.getpid()}.part")
    with open(part, "wb") as f:
        np.save(f, codes)
    os.replace(part, path)
    return codes


def ensemble_settings(folders: list[Path], size: int = 160) -> dict:
    """`evaluate_lfw` keywords and input label for `replay_ensemble(folders, size=size)`."""
    from facespace.data.crops import crop_name
    from facespace.models.ensemble import ensemble_verifiers

    models = [_first_model(folder) for folder in folders]
    ens = ensemble_verifiers(models, size=size)
    members = " + ".join(input_label(m) for m in models)
    return {"size": size, "grayscale": ens.config.channels == 1, "crop": ens.crop,
            "input": f"{size}px of the union box {crop_name(ens.crop)}, cut for each member: {members}"}


def settings(folder: Path) -> dict:
    """`evaluate_lfw` keywords (size, grayscale, crop) and the input label of the kept models."""
    from facespace.data.crops import model_crop

    m = _first_model(folder)
    size, _, c = m.image_shape
    return {"size": size, "grayscale": c == 1, "crop": model_crop(m), "input": input_label(m)}


def _first_model(folder: Path) -> Any:
    """One kept model of `folder` (they all share size, channels and crop)."""
    from facespace.models.registry import load_model

    paths = sorted(Path(folder).glob("*.safetensors"))
    if not paths:
        raise FacespaceError(f"{folder} holds no kept fold models; make them with --save-fold-models {folder}")
    return load_model(paths[0], kind="verifier")


def input_label(model: Encoder) -> str:
    """`48px colour, crop tight`: how a kept model sees a face."""
    from facespace.data.crops import crop_name, model_crop

    size, _, c = model.image_shape
    return f"{size}px {'grey' if c == 1 else 'colour'}, crop {crop_name(model_crop(model))}"


def train_folds(
    pairs: list[str | os.PathLike],
    lfw: str | os.PathLike,
    train_fn: Callable[[Any], Any],
    *,
    keep_dir: str | os.PathLike,
    size: int,
    crop: Any,
    grayscale: bool,
    folds: Any = None,
    held_out: bool = False,
    untested: bool = False,
    label: str = "",
) -> None:
    """Train (and keep, through `train_fn = saving(...)`) each tested fold's model on exactly the
    people `evaluate_lfw` would train it on; nothing is encoded or scored. A fold whose model is
    already kept in `keep_dir` (same people) is skipped, so an interrupted run started again trains
    only the folds it had not finished.

    Args:
        pairs: the pairs files (as `read_pair_files`).
        lfw: the LFW image folder.
        train_fn: called with each fold's training `FaceSet`.
        keep_dir: where the kept models live (`kept_path`).
        size, crop, grayscale: how the faces are loaded.
        folds: which folds (as `evaluate_lfw(folds=)`; None: all).
        held_out: also keep out the fold after the tested one (`calibrate="held-out-fold"`).
        untested: train on everyone outside the tested fold (`train_people="untested"`).
        label: what progress lines on stderr call the run.
    """
    plist = read_pair_files(pairs)
    labels = np.unique([int(p.fold) for p in plist])
    tested = tested_folds(folds, labels, pairs)
    faces = load_faces(str(lfw), size=size, crop=crop, grayscale=grayscale)
    todo = labels if tested is None else tested
    for n, k in enumerate(todo):
        train, _ = fold_training_faces(plist, faces, k, held_out=held_out, untested=untested)
        which = f"{label}: fold {k + 1} ({n + 1}/{len(todo)})"
        kept = kept_path(Path(keep_dir), train)
        if kept.exists():  # written atomically, so a file there is a whole model
            print(f"{which}: already kept as {kept}, skipped", file=sys.stderr, flush=True)
            continue
        print(f"{which}: training on {len(train)} images of {len(set(train.names.tolist()))} people",
              file=sys.stderr, flush=True)
        train_fn(train)
