"""Train the built-in models on all of LFW and ship them in the package: one command per model.

    .venv/bin/python benchmarks/builtin_models.py --model faces-id --lanes 2      # the 7-member verifier ensemble
    .venv/bin/python benchmarks/builtin_models.py --model faces-id --member-augment grey=0.25   # ... with grey copies
    .venv/bin/python benchmarks/builtin_models.py --model faces-ae                # the best conv autoencoder
    .venv/bin/python benchmarks/builtin_models.py --model faces-denoise
    .venv/bin/python benchmarks/builtin_models.py --model faces-vae
    .venv/bin/python benchmarks/builtin_models.py --model faces-id --ship-only    # ship what runs/builtin holds

Each model is trained with the `facespace` CLI (the commands are printed and kept in the model card),
on deep-funneled LFW (`../shared/data/lfw/lfw-deepfunneled`): the autoencoders hold out 2 % of the
images for their own validation, the verifier members train on every person with two or more images
(as `facespace train verifier` does). Started again, a step whose checkpoint exists is skipped, so an
interrupted build finishes only what is missing.

Shipping (`ship`) writes `facespace/models/builtin/<name>.safetensors` with its weights in fp16 when
that costs nothing measurable (the largest code difference and the changed verification decisions
on LFW View 1 DevTest pairs are measured and written into the card; above the bounds below the
weights stay fp32), and `<name>.json`, the model card: training data, recipe commands, training
time, measured numbers, the file's fingerprint, and the caveat that the model saw all of LFW. New
weights get their image quality reference measured again (`quality_card`); a re-ship of the same
weights keeps the card's.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw"
BUILTIN = ROOT / "facespace" / "models" / "builtin"
FACESPACE = [sys.executable, "-m", "facespace.cli"]

# a 7-member ensemble: the members of the README's 90.1 % View 2 row, each retrained on all of LFW
ID_MEMBERS = {  # name: (size, width, crop, epochs)
    "tight-e24": (48, 16, "tight", 24), "64px-e24": (64, 12, "tight", 24), "wide-e24": (48, 16, "50,45,210,205", 24),
    "inner-e24": (48, 16, "lfw", 24), "tight-e48": (48, 16, "tight", 48), "64px-e48": (64, 12, "tight", 48),
    "inner-e48": (48, 16, "lfw", 48),
}
AE_COMMON = ["--test", "0.02", "--flip", "--optimizer", "adamw", "--schedule", "onecycle", "--lr", "0.002", "--threads", "2"]
AUTOENCODERS = {
    # reconstruction_augment.py's round-5 choice: light augmentation, AdamW weight decay 0.3, 90 epochs
    "faces-ae": ["conv", "--code-size", "32", "--epochs", "90", "--arch", "res", "--width", "16", "--code-activation",
                 "linear", "--pca-skip", "--refine-steps", "20", "--augment", "flip=0,max_shift=0.03,max_rotation=4,"
                 "min_scale=0.96,max_scale=1.04,brightness=0.04,contrast=0.04,share=0.5", "--weight-decay", "0.3",
                 *AE_COMMON],
    "faces-denoise": ["denoise", "--code-size", "512", "--noise", "gaussian:0.1", "--epochs", "12", "--arch", "bn",
                      "--code-activation", "linear", "--pca-skip", *AE_COMMON],
    "faces-vae": ["vae", "--code-size", "32", "--epochs", "30", "--arch", "bn", "--width", "16", "--beta", "0.1",
                  "--batch-size", "32", *AE_COMMON],
}
HONEST = {  # what the recipe measured when its test data was held out (the numbers to quote)
    "faces-id": "LFW View 2 (image-unrestricted, labels of the other folds' people, no outside data): the same "
                "seven-member recipe retrained per fold gives 90.08 % +- 0.46, AUC 0.964 "
                "(benchmarks/results/verification.md)",
    "faces-ae": "reconstruction benchmark's split (LFW, central 90x90 -> 32x32, 10 % test split, seed 42), the recipe "
                "trained on its training part: test MSE 0.00366 (0.783x PCA-32) encoder only, 0.00336 (0.718x) with 20 "
                "refinement steps; recipe chosen on validation in five rounds, 5 configurations scored on the test "
                "split (benchmarks/results/reconstruction_augment.md)",
    "faces-denoise": "reconstruction benchmark: denoised test MSE 0.00124 from sigma-0.1 inputs at 0.01000 "
                     "(benchmarks/results/reconstruction.md)",
    "faces-vae": "generation benchmark (LFW, 32x32, 10 % test split): the same network, beta, schedule, flips and "
                 "batch trained with Adam (AdamW here) gives test MSE 0.00467 (0.997x PCA), KL 45.2 nats per image "
                 "(benchmarks/results/generation.md)",
}
GREY_NOTE = ("; the shipped members also train on grey copies (--augment grey=0.25), a change measured with "
             "the recipe retrained without 205 held-out people: grey 92x112 portraits 26/100 named at 1/100 strangers "
             "(18/100 without), friends 32/150 at 3/150 (22/150), colour pairs of the held-out people AUC 0.9667 "
             "(0.9628): benchmarks/results/heldout_identity.md; its View 2 per-fold number is not yet measured")
CAVEAT = ("trained on all of LFW: its numbers on LFW are not test numbers; the honest numbers are the recipe's, "
          "measured with the test people or images held out (see honest_numbers)")
FP16_MAX_CODE_DIFF = 1e-2  # largest |code difference| (unit codes) that still counts as "costs nothing"


def run(cmd: list[str], log: Path) -> float:
    """Run a command, its output appended to `log`; seconds taken."""
    print("$", shlex.join(cmd), flush=True)
    start = time.perf_counter()
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def member_command(name: str, out: Path, data: Path, extra: tuple[str, ...] = ()) -> list[str]:
    size, width, crop, epochs = ID_MEMBERS[name]
    return [*FACESPACE, "train", "verifier", "--data", str(data), "--size", str(size), "--width", str(width),
            "--crop", crop, "--epochs", str(epochs), "--dropout", "0.5", "--shift-test", "2", "--bf16",
            "--channels-last", "--threads", "1", *extra, "--out", str(out)]


def train_faces_id(args) -> tuple[Path, list[str], float]:
    """The members in `--lanes` processes (longest first), then their ensemble."""
    runs = args.runs / getattr(args, "folder", "faces-id")
    extra = tuple(getattr(args, "member_args", ()))  # options every member adds (e.g. --augment grey=0.25)
    runs.mkdir(parents=True, exist_ok=True)
    todo = [m for m in sorted(ID_MEMBERS, key=lambda m: -ID_MEMBERS[m][3] * ID_MEMBERS[m][0] ** 2)
            if not (runs / m / "run.json").exists()]  # run.json is written when a run has finished
    commands = [member_command(m, runs / m, args.data / "lfw-deepfunneled", extra) for m in ID_MEMBERS]
    start = time.perf_counter()
    lanes = [todo[i::args.lanes] for i in range(args.lanes)]
    procs = []
    for i, lane in enumerate(lanes):
        if lane:
            script = " && ".join(shlex.join(member_command(m, runs / m, args.data / "lfw-deepfunneled", extra)) for m in lane)
            print(f"# lane {i + 1}: {', '.join(lane)}", flush=True)
            procs.append(subprocess.Popen(["bash", "-c", script], stdout=open(runs / f"lane{i + 1}.log", "a"),
                                          stderr=subprocess.STDOUT))
    if any(p.wait() for p in procs):
        raise SystemExit(f"a training lane failed; see {runs}/lane*.log (finished members are kept)")
    ens = runs / "ensemble.safetensors"
    ensemble = [*FACESPACE, "models", "ensemble", *[str(runs / m) for m in ID_MEMBERS], "--out", str(ens)]
    run(ensemble, runs / "ensemble.log")
    return ens, [shlex.join(c) for c in commands + [ensemble]], time.perf_counter() - start


def train_autoencoder(name: str, args) -> tuple[Path, list[str], float]:
    out = args.runs / name
    command = [*FACESPACE, "train", *AUTOENCODERS[name], "--data", str(args.data / "lfw-deepfunneled"), "--out", str(out)]
    seconds = 0.0
    if not args.ship_only and not (out / "run.json").exists():  # written when the run has finished
        resume = ["--resume"] if (out / "resume.pt").exists() else []  # an interrupted build goes on
        seconds = run(command + resume, args.runs / f"{name}.log")
    return out / "best.safetensors", [shlex.join(command)], seconds


def fp16_check(model, name: str, data: Path) -> dict:
    """What storing the weights in fp16 changes: the largest code difference on LFW faces, and for the
    identity model the verification decisions on View 1 DevTest pairs at the fp32 model's best threshold."""
    import dataclasses

    from facespace.data.crops import model_crop
    from facespace.data.load import load_faces
    from facespace.data.pairs import pair_paths, read_pairs
    from facespace.pipelines.codes import encode

    # the model as it loads from an fp16 file: its weights rounded to fp16
    half = type(model).from_state(dataclasses.asdict(model.config), _Half(model).state_tensors())
    half.eval()
    half.checkpoint_info = model.checkpoint_info
    result: dict = {}
    if name == "faces-id":
        from facespace.people.distances import pair_distances
        from facespace.people.thresholds import calibrate_threshold

        pairs = read_pairs(data / "pairsDevTest.txt")
        paths = pair_paths(pairs, data / "lfw-deepfunneled")
        a, b = [p[0] for p in paths], [p[1] for p in paths]
        same = np.array([p.same for p in pairs])
        z32, z16 = encode(model, a), encode(half, a)
        d32 = pair_distances(z32, encode(model, b))
        d16 = pair_distances(z16, encode(half, b))
        t = calibrate_threshold(d32, same)
        result.update(pairs=len(pairs), decisions_changed=int(((d32 <= t) != (d16 <= t)).sum()),
                      max_distance_diff=float(np.abs(d32 - d16).max()))
    else:
        size, _, channels = model.image_shape
        faces = load_faces(str(data / "lfw-deepfunneled"), size=size, crop=model_crop(model), grayscale=channels == 1,
                           progress=False)
        x = np.asarray(faces.images[:: max(1, len(faces) // 500)])
        z32, z16 = encode(model, x), encode(half, x)
        r32 = np.clip(model.decode(z32), 0, 1)
        r16 = np.clip(half.decode(z16), 0, 1)
        result.update(images=len(x), mse_fp32=float(((r32 - x) ** 2).mean()), mse_fp16=float(((r16 - x) ** 2).mean()))
    scale = np.abs(z32).max()
    result["max_code_diff_relative"] = float(np.abs(z32 - z16).max() / max(scale, 1e-12))
    ok = result["max_code_diff_relative"] <= FP16_MAX_CODE_DIFF and result.get("decisions_changed", 0) == 0
    if "mse_fp16" in result:
        ok = ok and result["mse_fp16"] <= result["mse_fp32"] * 1.001
    result["fp16"] = bool(ok)
    return result


def ship(name: str, checkpoint: Path, commands: list[str], seconds: float, args) -> Path:
    """Write the package's built-in file and its model card."""
    from facespace.checkpoint import file_hash, weights_hash
    from facespace.models.registry import load_model, save_model

    model = load_model(checkpoint)
    check = fp16_check(model, name, args.data)
    BUILTIN.mkdir(parents=True, exist_ok=True)
    path = BUILTIN / f"{name}.safetensors"
    extra = dict(model.checkpoint_info.get("extra") or {})
    extra["builtin"] = name
    if name == "faces-id":
        extra["verify"] = view2_threshold()
    save_model(_Half(model) if check["fp16"] else model, path, step=model.checkpoint_info.get("step", 0),
               best_val_loss=model.checkpoint_info.get("best_val_loss"), extra=extra)
    shipped = load_model(path)
    old_card = BUILTIN / f"{name}.json"
    previous = json.loads(old_card.read_text()) if old_card.exists() else {}  # a re-ship keeps the training time
    card = {
        "name": name,
        "kind": shipped.kind,
        "image_shape": list(shipped.image_shape),
        "code_size": int(shipped.code_size),
        "training_data": "LFW deep-funneled (13,233 images of 5,749 people), ../shared/data/lfw",
        "recipe": [_portable(c) for c in commands],
        "rebuild": f"python benchmarks/builtin_models.py --model {name}",
        "training_seconds": round(seconds, 1) if seconds else previous.get("training_seconds"),
        "machine": f"{platform.machine()}, {platform.platform()}",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "weights": "fp16" if check["fp16"] else "fp32",
        "fp16_check": check,
        "honest_numbers": HONEST[name] + (GREY_NOTE if name == "faces-id" and getattr(args, "member_args", ()) else ""),
        "caveat": CAVEAT,
        "file_bytes": path.stat().st_size,
        "file_sha256_16": file_hash(path),
        "fingerprint": weights_hash(shipped),
    }
    same_weights = previous.get("fingerprint") == card["fingerprint"]
    if previous.get("extra") and same_weights:  # facts measured after shipping (the quality reference) stay
        card["extra"] = previous["extra"]
    (BUILTIN / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: card[k] for k in ("name", "weights", "file_bytes", "fingerprint")}))
    if not same_weights:  # new weights: the old reference measured another model
        quality_card(name, args.data)
    return path


def quality_card(name: str, data: Path, n: int = 400, seed: int = 7) -> None:
    """Keep in the card an image quality reference of good faces in the framings facespace accepts:
    `n` LFW photos (seed 7), half as the model's own crop, half cut tighter (a square of 90-150 px
    around the face, the framing of a portrait that is already a face crop), of those half in grey;
    each face at its source resolution, so the gate measures sharpness at each face's own resolution
    and flags blur without flagging small, tight or grey portraits."""
    from facespace.data.images import load_images
    from facespace.data.inputs import as_images
    from facespace.models.registry import load_model
    from facespace.people.quality_reference import quality_reference

    if name != "faces-id":
        return quality_card_autoencoder(name, data)
    model = load_model(name)
    rng = np.random.default_rng(seed)
    files = sorted((data / "lfw-deepfunneled").glob("*/*.jpg"))
    pick = [str(files[i]) for i in rng.permutation(len(files))[:n]]
    side = model.image_shape[0]
    own = as_images(model, pick[: n // 2])
    tight, sizes = [], []
    for i, path in enumerate(pick[n // 2:]):
        s = int(rng.integers(90, 151))
        top, left = 128 - s // 2 + int(rng.integers(-5, 6)), 125 - s // 2 + int(rng.integers(-5, 6))
        x = load_images([path], size=side, crop=(top, left, top + s, left + s), grayscale=i % 2 == 0)
        tight.append(np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x)
        sizes.append(s)
    faces = np.concatenate([own, *tight])
    ref = quality_reference(faces, native=True, sizes=[None] * len(own) + sizes,
                            source=f"{n} LFW photos as {name}'s crops and tighter, colour and grey (image checks)")
    path = BUILTIN / f"{name}.json"
    card = json.loads(path.read_text())
    card["extra"] = dict(card.get("extra") or {}, quality=ref.to_dict())
    path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{name}: quality reference of {n} LFW photos written to {path}")


def quality_card_autoencoder(name: str, data: Path) -> None:
    """An autoencoder's reference: the held-out test faces of its own training split (the faces it
    never learned from; the recipe's 2 % split, seed 42), each in colour and as grey, so that a grey
    portrait is judged face-like by how well the model draws grey faces, not against colour ones."""
    from facespace.data.load import load_training_faces
    from facespace.data.splits import split_faces
    from facespace.models.registry import load_model
    from facespace.people.quality_reference import quality_reference

    model = load_model(name)
    split = json.loads((ROOT / "runs" / "builtin" / name / "run.json").read_text())["split"] \
        if (ROOT / "runs" / "builtin" / name / "run.json").exists() else {"test": 0.02, "split_seed": 42}
    faces = load_training_faces(data / "lfw-deepfunneled", size=model.image_shape[0], crop="lfw", progress=False)
    _, test = split_faces(faces, test=float(split["test"]), seed=int(split["split_seed"]))
    x = test.images
    grey = np.repeat(x @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(x.shape)
    # the image checks from the faces as they are (grey copies have the same sharpness and would only
    # double the count the tails are read with); face-likeness from both
    colour = quality_reference(x, model=model, source="")
    both = quality_reference(np.concatenate([x, grey]), model=model, source="")
    model_measures = ("recon_error", "code_distance")
    ref = dataclasses.replace(
        colour, source=f"{len(x)} held-out test faces (face-likeness: in colour and grey)",
        code_mean=both.code_mean, code_std=both.code_std,
        quantiles={k: (both if k in model_measures else colour).quantiles[k] for k in colour.quantiles},
        fits={k: (both if k in model_measures else colour).fits[k] for k in colour.fits})
    path = BUILTIN / f"{name}.json"
    card = json.loads(path.read_text())
    card["extra"] = dict(card.get("extra") or {}, quality=ref.to_dict())
    path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{name}: quality reference of {len(x)} held-out faces (and their grey copies) written to {path}")


def view2_threshold() -> dict:
    """The threshold `verify` uses: the median of the ten per-fold thresholds the same seven-member recipe
    got under the View 2 protocol (each from models that never saw that fold's people), not one set on
    the LFW people this model trained on."""
    rows = json.loads((ROOT / "benchmarks" / "results" / "verification.json").read_text())["rows"]
    row = next(r for r in reversed(rows) if "folds-inner-e48" in r["model"] or "ensemble of 7" in r["model"]
               or r["model"].count("+") >= 6)
    t = float(np.median(row["thresholds"]))
    return {"threshold": t, "metric": "cosine", "target_far": None,
            "source": f"median of the per-fold View 2 thresholds of the same recipe ({row['model'][:80]}...), "
                      f"mean accuracy {row['mean_accuracy']:.4f}"}


def _portable(command: str) -> str:
    """A recipe command as a reader would type it from the repository root."""
    return (command.replace(shlex.join(FACESPACE), "facespace").replace(str(ROOT) + "/", "")
            .replace(str(ROOT.parent / "shared") + "/", "../shared/"))


class _Half:
    """A model whose `state_tensors` are its fp16 weights (what `save_model` writes)."""

    def __init__(self, model):
        self._model = model
        self.kind, self.config, self.checkpoint_info = model.kind, model.config, model.checkpoint_info

    def state_tensors(self):
        return {k: v.half() for k, v in self._model.state_tensors().items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, choices=["faces-id", *AUTOENCODERS], help="repeatable")
    ap.add_argument("--data", type=Path, default=LFW, help="the LFW folder holding lfw-deepfunneled/ and the pairs files")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "builtin")
    ap.add_argument("--lanes", type=int, default=2, help="faces-id: training processes side by side (one thread each)")
    ap.add_argument("--ship-only", action="store_true", help="ship what --runs holds, training nothing")
    ap.add_argument("--member-augment", help="faces-id: every member trains with this --augment (e.g. grey=0.25), "
                                             "in --runs/faces-id-augment")
    ap.add_argument("--quality-reference", action="store_true",
                    help="only measure the shipped model's image quality reference into its card")
    args = ap.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.member_augment:
        args.folder, args.member_args = "faces-id-augment", ("--augment", args.member_augment)
    for name in args.model:
        if args.quality_reference:
            quality_card(name, args.data)
            continue
        if name == "faces-id":
            if args.ship_only:
                runs = args.runs / getattr(args, "folder", "faces-id")
                extra = tuple(getattr(args, "member_args", ()))
                commands = [shlex.join(member_command(m, runs / m, args.data / "lfw-deepfunneled", extra)) for m in ID_MEMBERS]
                ship(name, runs / "ensemble.safetensors", commands, 0.0, args)
                continue
            ship(name, *train_faces_id(args), args)
        else:
            ship(name, *train_autoencoder(name, args), args)


if __name__ == "__main__":
    main()
