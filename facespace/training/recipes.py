"""Public verb `train`: learn a model of faces and write its run folder.

Kinds: "pca" (closed form), "linear" (Dense/Dense by gradient), "conv" (the deep convolutional
autoencoder, `arch="seed"` or `"bn"`), "denoise" (the conv network trained on corrupted inputs),
"vae", and "verifier" (an identity embedding trained on named people; its own options and run
folder, see `facespace.training.verifier.train_verifier_run`).
The data is split once: a held-out test part (`test`, `split_seed`; what `facespace models evaluate`
scores) and, from the rest, a validation part (`val`) for early stopping and the best checkpoint.

Example:
    >>> import facespace as fs                                              # doctest: +SKIP
    >>> model = fs.train("conv", "embedded", size=32, code_size=32, epochs=5, out="runs/c32")
    >>> model.encode(images).shape                                          # doctest: +SKIP
    (n, 32)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from facespace.data.load import load_training_faces
from facespace.data.splits import split_faces
from facespace.errors import FacespaceError
from facespace.files import locked

KINDS = ("pca", "linear", "conv", "denoise", "vae", "verifier")
# options of the model (conv/linear config fields besides size/channels/code_size)
MODEL_OPTIONS = ("arch", "code_activation", "width", "depth", "pca_skip", "refine_steps", "refine_lr", "beta")
# options of the data split and objective
DATA_OPTIONS = ("size", "grayscale", "crop", "test", "val", "split_seed", "flip", "augment", "noise", "svd_solver", "resume", "progress",
                "overwrite")


def train(
    kind: str,
    data: Any,
    *,
    out: str | os.PathLike | None = None,
    code_size: int | None = None,
    epochs: int = 10,
    **options: Any,
):
    """Train a model of `kind` on `data` and return it (the best checkpoint's weights).

    Args:
        kind: "pca", "linear", "conv", "denoise", "vae" or "verifier" (named people; options in
            `facespace.training.verifier.train_verifier_run`).
        data: a FaceSet, an `(n, H, W, C)` float32 array in [0, 1], or a source for `load_faces`
            (a folder, an LFW archive, or "embedded").
        out: run folder; gets best/last.safetensors, metrics.csv, config.json, loss.png,
            run.json and reconstructions.png. None trains in memory only.
        code_size: length `d` of a code (default 32; 128 for "verifier").
        epochs: passes over the training part (ignored by "pca").
        **options: model options (arch, code_activation, width, depth, pca_skip, refine_steps,
            refine_lr), data options
            (size=32, grayscale, crop, test=0.1, val=0.05, split_seed=42, flip, augment (an
            `AugmentConfig` or its text, `facespace.data.augment.parse_augment`), noise for
            "denoise" = "gaussian:0.1", svd_solver for "pca", resume, progress) and any
            `facespace.training.loop.TrainConfig` field (batch_size, lr, optimizer, schedule, seed, ...).

    Returns:
        A model honouring `facespace.protocol.Autoencoder`.

    Raises:
        FacespaceError: an unknown kind or option, or unusable data.
    """
    if kind not in KINDS:
        raise FacespaceError(f"unknown model kind {kind!r}; expected one of: {', '.join(KINDS)}")
    options = dict(options)
    if options.get("augment") is not None:  # a bad spec is refused before any run folder is made
        from facespace.data.augment import parse_augment

        options["augment"] = parse_augment(options["augment"])
    if out is None:
        return _train(kind, data, out, code_size, epochs, options)
    if Path(out).is_file():
        raise FacespaceError(f"{out} is a file; --out names the run's folder: give a new folder name")
    # one writer per run folder: a second training into it is refused at once, not interleaved
    with locked(Path(out) / "run", timeout=0):
        _check_run_folder(out, resume=bool(options.get("resume")), overwrite=bool(options.pop("overwrite", False)))
        return _train(kind, data, out, code_size, epochs, options)


def _train(kind: str, data: Any, out: Any, code_size: int | None, epochs: int, options: dict):
    options.pop("overwrite", None)
    if kind == "verifier":
        from facespace.training.verifier import train_verifier_run

        return train_verifier_run(data, out=out, code_size=code_size or 128, epochs=epochs, **options)
    code_size = 32 if code_size is None else int(code_size)
    _check_sizes(code_size, epochs, options.get("size", 32))
    from facespace.training.loop import TrainConfig

    loop_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - loop_fields - set(MODEL_OPTIONS) - set(DATA_OPTIONS))
    if unknown:
        raise FacespaceError(
            f"unknown training option(s) {', '.join(unknown)}; expected: "
            + ", ".join(sorted(loop_fields | set(MODEL_OPTIONS) | set(DATA_OPTIONS)))
        )
    opt = dict(options)
    progress = bool(opt.pop("progress", True))
    from facespace.data.crops import crop_record, parse_crop

    crop = parse_crop(opt.pop("crop", "lfw"))
    faces = load_training_faces(
        data, size=int(opt.pop("size", 32)), grayscale=bool(opt.pop("grayscale", False)),
        crop=crop, progress=progress,
    )  # fmt: skip
    from facespace.protocol import check_images

    check_images(faces.images, faces.images.shape[1:], what="training images")  # NaN/inf refused here
    test, split_seed, val = float(opt.pop("test", 0.1)), int(opt.pop("split_seed", 42)), float(opt.pop("val", 0.05))
    train_part, test_part = split_faces(faces, test=test, seed=split_seed)
    _check_counts(kind, len(train_part), len(test_part), val)
    run_info = {
        "kind": kind, "data": getattr(faces, "source", ""), "n_images": len(faces),
        "split": {"test": test, "split_seed": split_seed, "val": val},
        "image_shape": list(faces.images.shape[1:]), "code_size": code_size,
    }  # fmt: skip
    if isinstance(data, (str, os.PathLike)):  # the crop is part of the model: files get it again at use
        run_info["crop"] = crop_record(crop)
    t0 = time.perf_counter()
    if kind == "pca":
        model = _train_pca(train_part.images, code_size, opt, run_info)
        result = None
    else:
        model, result = _train_net(kind, train_part.images, code_size, epochs, opt, run_info, out, progress, loop_fields)
    run_info["train_seconds"] = round(time.perf_counter() - t0, 3)
    _store_code_stats(model, train_part.images)
    if len(test_part) >= 20 and getattr(model, "checkpoint_info", None) is not None:
        from facespace.people.quality_reference import quality_reference

        model.checkpoint_info.setdefault("extra", {})["quality"] = quality_reference(
            test_part.images, model=model, source=f"{len(test_part)} held-out test faces").to_dict()
    if out is not None:
        _write_run(model, Path(out), run_info, test_part.images if len(test_part) else train_part.images[:2000], result,
                   held_out=len(test_part) > 0)
    return model


# what a finished or interrupted run folder holds
RUN_FILES = ("run.json", "best.safetensors", "last.safetensors", "resume.pt")


def _check_run_folder(out: Any, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train over an existing run unless asked to continue it or replace it (#27.2)."""
    if out is None or resume or overwrite:
        return
    out = Path(out)
    if out.is_file():
        raise FacespaceError(f"{out} is a file; --out names the run's folder: give a new folder name")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held:
        raise FacespaceError(f"{out} already holds a run ({', '.join(held)}); continue it with --resume, replace it "
                             "with --overwrite, or give another --out (nothing was changed)")


def _check_resume_data(out: Path, extra: dict, model_config: dict) -> None:
    """Refuse to resume a run on other data or another model (#27.3): the resumed run's checkpoints,
    best validation loss and run.json would describe a mix of the two."""
    from facespace.checkpoint import read_checkpoint

    last = out / "last.safetensors"
    if not last.exists():
        return
    before = read_checkpoint(last)[0]
    was = before.get("extra") or {}
    changed = [key for key in ("data", "split", "crop", "noise", "objective") if was.get(key) != extra.get(key)]
    if before.get("config") != json.loads(json.dumps(model_config)):  # as JSON stored it: tuples are lists
        changed.append("model settings")
    if changed:
        detail = "; ".join(f"{k}: {was.get(k)!r} then, {extra.get(k)!r} now" for k in changed if k != "model settings")
        raise FacespaceError(f"cannot resume {out} with a different {', '.join(changed)} ({detail or 'see config.json'}); "
                             "resume with the run's own settings, or start a new run with another --out")


def _check_sizes(code_size: int, epochs: int, size: Any) -> None:
    """Refuse settings that cannot train a useful model, naming the option."""
    if code_size < 1:
        raise FacespaceError(f"code_size (--code-size) must be at least 1; got {code_size}")
    if int(epochs) < 1:
        raise FacespaceError(f"epochs (--epochs) must be at least 1; got {epochs}")
    if int(size) < 8:
        raise FacespaceError(f"size (--size) must be at least 8 pixels; got {size}")


# below these, a run still trains, but its numbers mean little: say so
MIN_TRAIN_IMAGES, MIN_VAL_IMAGES = 2, 10


def val_count(n_train: int, val: float) -> int:
    """How many of `n_train` training images a network run holds out for validation (at least one,
    never all)."""
    return min(max(int(round(val * n_train)), 1), n_train - 1) if n_train > 1 else 0


def _check_counts(kind: str, n_train: int, n_test: int, val: float) -> None:
    import warnings

    from facespace.errors import DataWarning

    if n_train < MIN_TRAIN_IMAGES:
        raise FacespaceError(f"only {n_train} training image(s) after the test split; give at least "
                             f"{MIN_TRAIN_IMAGES} images (or a smaller --test)")
    n_val = val_count(n_train, val)
    if kind != "pca" and n_val < MIN_VAL_IMAGES:
        warnings.warn(f"training on {n_train} images with {n_val} validation image(s): the best checkpoint and "
                      f"its loss rest on too few images to mean much; use {MIN_VAL_IMAGES * 20} images or more",
                      DataWarning, stacklevel=3)
    if n_test == 0:
        warnings.warn("no test part (test=0): the run reports its training images' MSE (train_mse), not a "
                      "held-out one", DataWarning, stacklevel=3)


def _train_pca(images: np.ndarray, code_size: int, opt: dict, run_info: dict):
    from facespace.models.pca import PCAAutoencoder

    solver = opt.pop("svd_solver", "auto")
    seed = int(opt.pop("seed", 0))
    for k in ("flip", "augment", "noise", "resume"):
        opt.pop(k, None)
    model = PCAAutoencoder(code_size=code_size, svd_solver=solver, seed=seed).fit(images)
    crop = {"crop": run_info["crop"]} if "crop" in run_info else {}
    model.checkpoint_info = {"extra": {"split": run_info["split"], "data": run_info["data"], **crop}}
    return model


def _build_network(kind: str, shape: tuple[int, int, int], code_size: int, model_opts: dict):
    size, _, channels = shape
    if size != shape[1]:
        raise FacespaceError(f"images must be square; got {shape[0]}x{shape[1]}: load them with size=N")
    if kind == "linear":
        from facespace.models.linear import LinearAutoencoder, LinearConfig

        if model_opts:
            raise FacespaceError(f"option(s) {', '.join(model_opts)} apply to conv models, not 'linear'")
        return LinearAutoencoder(LinearConfig(size=size, channels=channels, code_size=code_size))
    if kind == "vae":
        from facespace.models.vae import VAE, VAEConfig

        bad = sorted(set(model_opts) - {"arch", "width", "depth", "beta"})
        if bad:
            raise FacespaceError(f"option(s) {', '.join(bad)} do not apply to 'vae' (its code is a Gaussian, with no PCA path)")
        return VAE(VAEConfig(size=size, channels=channels, code_size=code_size, **model_opts))
    if "beta" in model_opts:
        raise FacespaceError("the beta option is for kind 'vae'; use `train('vae', ...)`")
    from facespace.models.conv import ConvAutoencoder, ConvConfig

    return ConvAutoencoder(ConvConfig(size=size, channels=channels, code_size=code_size, **model_opts))


def _train_net(kind, images, code_size, epochs, opt, run_info, out, progress, loop_fields):
    import torch

    from facespace.training.loop import TrainConfig, fit
    from facespace.training.objectives import Denoising, ModelLoss, Reconstruction
    from facespace.training.runs import reconstruction_sampler

    model_opts = {k: opt.pop(k) for k in MODEL_OPTIONS if k in opt}
    from facespace.data.augment import augment_spec

    flip = bool(opt.pop("flip", False))
    augment = opt.pop("augment", None)  # an AugmentConfig or None: `train` parsed it
    noise = opt.pop("noise", "gaussian:0.1" if kind == "denoise" else None)
    resume = bool(opt.pop("resume", False))
    opt.pop("svd_solver", None)
    if noise and kind != "denoise":
        raise FacespaceError("the noise option is for kind 'denoise'; use `train('denoise', ...)`")
    config = TrainConfig(epochs=int(epochs), **{k: v for k, v in opt.items() if k in loop_fields})
    torch.manual_seed(config.seed)  # the loop seeds shuffling and noise; the initial weights are ours
    network = _build_network(kind, tuple(images.shape[1:]), code_size, model_opts)
    # validation: a fixed slice of the training part, chosen by the split seed
    order = np.random.default_rng(run_info["split"]["split_seed"] + 1).permutation(len(images))
    k = val_count(len(images), run_info["split"]["val"])
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    train_t, val_t = to_t(images[np.sort(order[k:])]), to_t(images[np.sort(order[:k])])
    if k == 0:
        val_t = train_t
    if getattr(network.config, "pca_skip", False):
        from facespace.models.pca import PCAAutoencoder

        network.init_from_pca(PCAAutoencoder(code_size=code_size, seed=config.seed).fit(images[np.sort(order[k:])]))
    if kind == "linear":
        network.set_mean(train_t)
    if kind == "denoise":
        objective = Denoising(network, noise, flip=flip, augment=augment)
    elif kind == "vae":  # the VAE's own loss: reconstruction + beta * KL
        objective = ModelLoss(network, flip=flip, augment=augment)
    else:
        objective = Reconstruction(network, flip=flip, augment=augment)
    purpose = {"denoise": "denoise", "vae": "elbo"}.get(kind, "reconstruct")
    extra = {"split": run_info["split"], "data": run_info["data"], "objective": purpose}
    if "crop" in run_info:
        extra["crop"] = run_info["crop"]
    if kind == "denoise":
        extra["noise"] = objective.corruption.spec()
    network.checkpoint_info = {"extra": extra}
    run_info.update(extra, flip=flip, augment=augment_spec(augment), model_config=dataclasses.asdict(network.config))
    if resume and out is not None:
        _check_resume_data(Path(out), extra, dataclasses.asdict(network.config))
    result = fit(objective, train_t, val_t, config, out_dir=out, progress=progress, resume=resume,
                 sample_fn=reconstruction_sampler(val_t[:8].numpy().transpose(0, 2, 3, 1)))
    best = getattr(result, "best_path", None)
    if best and Path(best).exists():
        from facespace.models.registry import load_model

        network = load_model(best)
    network.eval()
    return network, result


def _store_code_stats(model, images: np.ndarray) -> None:
    """Record the mean and per-dimension std of the training codes in the model's checkpoint extra
    (what `facespace.pipelines.generation.vary` scales its noise by and `sample` draws plain models' codes from).
    At most 2,000 evenly spaced images are encoded: enough for the statistics, and quick even for
    models that refine their codes at encode time."""
    if len(images) > 2000:
        images = images[np.linspace(0, len(images) - 1, 2000).astype(int)]
    z = model.encode(images).astype(np.float64)
    info = getattr(model, "checkpoint_info", None)
    if info is None or len(z) < 2:
        return
    info.setdefault("extra", {}).update(code_mean=z.mean(0).tolist(), code_std=z.std(0).tolist())


def _write_run(model, out: Path, run_info: dict, sample: np.ndarray, result, *, held_out: bool = True) -> None:
    from facespace.models.registry import save_model
    from facespace.training.metrics import mse_psnr
    from facespace.files import write_text_atomic
    from facespace.grid import make_grid, save_png

    out.mkdir(parents=True, exist_ok=True)
    if result is None:  # closed form: the one model is both best and last
        for name in ("best.safetensors", "last.safetensors"):
            save_model(model, out / name)
    else:  # best.safetensors again, now with the code statistics in its extra
        info = model.checkpoint_info
        save_model(model, out / "best.safetensors", step=info.get("step", 0),
                   best_val_loss=info.get("best_val_loss"), extra=info.get("extra", {}))
        run_info["epochs_run"] = getattr(result, "epochs_run", None)
        run_info["best_val_loss"] = getattr(result, "best_val_loss", None)
    recon = np.clip(model.decode(model.encode(sample)), 0.0, 1.0)  # every kind trained here decodes
    # with no test part (test=0) the reconstructions are of training images: say so, never "held-out"
    prefix = "heldout" if held_out else "train"
    run_info[f"{prefix}_mse"], run_info[f"{prefix}_psnr"] = mse_psnr(sample, recon)
    show = min(len(sample), 10)
    save_png(make_grid(np.concatenate([sample[:show], recon[:show]]), ncols=show, scale=2), out / "reconstructions.png")
    write_text_atomic(out / "run.json", json.dumps(run_info, indent=2, default=str) + "\n")
