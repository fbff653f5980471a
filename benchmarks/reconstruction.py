"""Reconstruction benchmark: PCA, linear, the seed's conv, the best conv and denoising, side by side.

Setting (the course's): deep-funneled LFW, central 90x90 crop -> 32x32 RGB, random 10% test split
with seed 42, code 32. Test MSE is over pixels in [0, 1] of reconstructions clipped to [0, 1].
Writes `benchmarks/results/reconstruction.{json,md}` (and `reconstruction_sweep.png`) after every
finished row, so a run cut short still leaves a table.

    .venv/bin/python benchmarks/reconstruction.py --data ../shared/data/lfw
    .venv/bin/python benchmarks/reconstruction.py --epochs-seed 3 --epochs-best 3 ...   # a short run

The Keras reference (the course's framework) runs in a separate Python that has TensorFlow
(`--keras-python /work/tfvenv/bin/python`); without one it is skipped with a note.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

KERAS_SCRIPT = r"""
import json, os, sys, time
threads = int(sys.argv[2]); epochs = int(sys.argv[3]); code = int(sys.argv[4])
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, keras
from keras import layers as L
tf.config.threading.set_intra_op_parallelism_threads(threads); tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(0)
d = np.load(sys.argv[1]); xtr, xte = d["train"], d["test"]
H, W, C = xtr.shape[1:]
enc = keras.Sequential([keras.Input((H, W, C))] + sum([[L.Conv2D(f, 3, padding="same", activation="relu"), L.MaxPooling2D(2)] for f in (32, 64, 128, 256)], []) + [L.Flatten(), L.Dense(code, activation="relu")])
dec = keras.Sequential([keras.Input((code,)), L.Dense(H // 16 * W // 16 * 256), L.Reshape((H // 16, W // 16, 256))] + [L.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu") for f in (128, 64, 32)] + [L.Conv2DTranspose(C, 3, strides=2, padding="same")])
inp = keras.Input((H, W, C)); model = keras.Model(inp, dec(enc(inp)))
model.compile(keras.optimizers.Adam(1e-3), "mse")
start = model.get_weights()
model.fit(xtr[:640], xtr[:640], epochs=1, batch_size=64, verbose=0)  # warm-up (graph building)
model.set_weights(start)  # then from the same start as facespace: initial weights, fresh optimizer state
for v in model.optimizer.variables:
    if "learning_rate" not in v.path:  # step count, moments
        v.assign(tf.zeros_like(v))
t = time.perf_counter(); model.fit(xtr, xtr, epochs=epochs, batch_size=64, verbose=0, shuffle=True); dt = time.perf_counter() - t
pred = np.clip(model.predict(xte, batch_size=256, verbose=0), 0, 1)
print(json.dumps({"images_per_s": epochs * len(xtr) / dt, "seconds": dt, "test_mse": float(np.mean((pred - xte) ** 2)),
                  "tensorflow": tf.__version__, "keras": keras.__version__}))
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--code", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs-linear", type=int, default=10)
    p.add_argument("--epochs-seed", type=int, default=25)
    p.add_argument("--epochs-best", type=int, default=30)
    p.add_argument("--epochs-denoise", type=int, default=25)
    p.add_argument("--epochs-sweep", type=int, default=20)
    p.add_argument("--sweep", default="8,32,128,512", help="code sizes: PCA against the best conv")
    p.add_argument("--best", default='{"arch": "res", "width": 16, "code_activation": "linear", "pca_skip": true, '
                   '"flip": true, "optimizer": "adamw", "schedule": "onecycle", "lr": 0.002, "refine_steps": 20}',
                   help="JSON options of the best conv")
    p.add_argument("--denoise", default='{"arch": "bn", "code_activation": "linear", "pca_skip": true, "flip": true, '
                   '"optimizer": "adamw", "schedule": "onecycle", "lr": 0.002}', help="JSON options of the denoising conv")
    p.add_argument("--save-dir", default=str(ROOT / "runs" / "reconstruction"),
                   help="where the best conv and denoising checkpoints are kept (for the verification benchmark)")
    p.add_argument("--speed-images", type=int, default=3200, help="training images for the speed rows")
    p.add_argument("--speed-epochs", type=int, default=2)
    p.add_argument("--keras-python", default="/work/tfvenv/bin/python")
    p.add_argument("--name", default="reconstruction", help="results file stem under benchmarks/results")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of the earlier results file that this run does not redo (rows keep their date and command)")
    p.add_argument("--skip", default="", help="comma list of rows to skip: linear,seed,relu,best,denoise,sweep,speed,keras")
    return p.parse_args(argv)


class Report:
    """Collects rows and rewrites the JSON and Markdown results after each one."""

    def __init__(self, args):
        import torch

        self.name = args.name
        self.data = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "processor": platform.processor(), "loadavg_start": os.getloadavg()},
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
            "setting": vars(args), "rows": [], "sweep": [], "speed": [], "notes": [],
        }  # fmt: skip
        old = RESULTS / f"{self.name}.json"
        if getattr(args, "merge", False) and old.exists():
            before = json.loads(old.read_text())
            stamp = {"date": before["date"], "command": before["command"]}
            self.data["earlier"] = [*before.get("earlier", []), stamp]
            for table in ("rows", "speed"):
                self.data[table] = [{**stamp, **r} for r in before[table]]
            self.data["sweep"], self.data["notes"] = before["sweep"], before["notes"]

    def _key(self, table: str, row: dict) -> str:
        return row["trainer"] if table == "speed" else row["model"]

    def add(self, table: str, row: dict) -> None:
        """Append a row, replacing an earlier run's row of the same model (with --merge)."""
        row = {"date": self.data["date"], "command": self.data["command"], **row}
        self.data[table] = [r for r in self.data[table] if self._key(table, r) != self._key(table, row)] + [row]
        self.data["machine"]["loadavg_now"] = os.getloadavg()
        self.write()

    def note(self, text: str) -> None:
        if text not in self.data["notes"]:
            self.data["notes"].append(text)
        self.write()

    def write(self) -> None:
        from facespace.files import write_text_atomic

        RESULTS.mkdir(parents=True, exist_ok=True)
        write_text_atomic(RESULTS / f"{self.name}.json", json.dumps(self.data, indent=2, default=str) + "\n")
        write_text_atomic(RESULTS / f"{self.name}.md", self.markdown())
        if self.data["sweep"]:
            plot_sweep(self.data["sweep"], RESULTS / f"{self.name}_sweep.png")

    def markdown(self) -> str:
        d = self.data
        pca = next((r["test_mse"] for r in d["rows"] if r["model"].startswith("PCA")), None)
        earlier = [f"- earlier run kept for the rows it alone has (`--merge`; each row's date and command are in the "
                   f"JSON): `{e['command']}` on {e['date']}" for e in d.get("earlier", [])]
        lines = ["# Reconstruction benchmark", "", f"- command: `{d['command']}`", f"- date: {d['date']}", *earlier,
                 f"- machine: {d['machine']['cpu_count']} CPUs, {d['machine']['platform']}, load average at start "
                 f"{tuple(round(v, 1) for v in d['machine']['loadavg_start'])}, last "
                 f"{tuple(round(v, 1) for v in d['machine'].get('loadavg_now', (0, 0, 0)))}",
                 f"- versions: {', '.join(f'{k} {v}' for k, v in d['versions'].items())}",
                 "- setting: deep-funneled LFW, central 90x90 crop -> 32x32 RGB, random 10% test split (seed 42); "
                 "MSE over [0, 1] pixels of clipped reconstructions", "",
                 "| model | code | epochs | test MSE | × PCA | train s | images/s | threads |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in sorted(d["rows"], key=_row_rank):
            ratio = f"{r['test_mse'] / pca:.3f}" if pca and r.get("code") == d["setting"]["code"] else ""
            lines.append(f"| {r['model']} | {r.get('code', '')} | {r.get('epochs', '')} | {r['test_mse']:.5f} | {ratio} | "
                         f"{r.get('train_s', 0):.1f} | {r.get('images_per_s', 0):.0f} | {_threads(r)} |")
        if d["sweep"]:
            lines += ["", "## Code-size sweep", "", "| code | PCA test MSE | best conv test MSE | conv / PCA | conv epochs |",
                      "|---|---|---|---|---|"]
            for r in d["sweep"]:
                conv = r.get("conv_mse")
                cells = ("", "") if conv is None else (f"{conv:.5f}", f"{conv / r['pca_mse']:.3f}")
                lines.append(f"| {r['code']} | {r['pca_mse']:.5f} | {cells[0]} | {cells[1]} | {r.get('epochs', '')} |")
        if d["speed"]:
            keras = next((r["images_per_s"] for r in d["speed"] if r["trainer"].startswith("Keras")), None)
            lines += ["", "## Training speed, the seed's model (batch 64, same data and threads)", "",
                      "| trainer | images/s | × Keras | test MSE after the same epochs |", "|---|---|---|---|"]
            for r in d["speed"]:
                ratio = f"{r['images_per_s'] / keras:.2f}" if keras else "n/a"
                lines.append(f"| {r['trainer']} | {r['images_per_s']:.0f} | {ratio} | {r['test_mse']:.5f} |")
        if d["notes"]:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in d["notes"]]
        return "\n".join(lines) + "\n"


ROW_ORDER = ("PCA", "linear", "seed conv (", "seed conv,", "best conv", "the same best", "denoising")


def _row_rank(row: dict) -> int:
    """The rows' order in the table: PCA, linear, the seed's two, the best conv, denoising."""
    return next((i for i, start in enumerate(ROW_ORDER) if row["model"].startswith(start)), len(ROW_ORDER))


def _threads(row: dict) -> int:
    """The threads a row was trained with (from its command; 2, the default, when not given)."""
    words = row.get("command", "").split()
    return int(words[words.index("--threads") + 1]) if "--threads" in words else 2


def plot_sweep(sweep: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    codes = [r["code"] for r in sweep]
    ax.plot(codes, [r["pca_mse"] for r in sweep], "o-", label="PCA")
    pts = [(r["code"], r["conv_mse"]) for r in sweep if r.get("conv_mse") is not None]
    if pts:
        ax.plot(*zip(*pts), "s-", label="best conv")
    ax.set(xscale="log", yscale="log", xlabel="code size", ylabel="test MSE")
    ax.set_xticks(codes, [str(c) for c in codes])
    ax.legend()
    fig.tight_layout()
    from facespace.files import atomic_write

    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def test_mse(model, images: np.ndarray) -> float:
    from facespace.training.metrics import mse_psnr
    from facespace.pipelines.codes import reconstruct

    return mse_psnr(images, reconstruct(model, images))[0]


def run_train(kind, train_images, code, epochs, threads, save=None, **options):
    """Train through the public verb on the training part only; returns (model, seconds, images/s).

    `save`: a path to keep the best checkpoint at (the run folder itself is temporary).
    """
    import shutil

    from facespace.training.recipes import train

    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        model = train(kind, train_images, out=out, code_size=code, epochs=epochs, test=0.0, threads=threads,
                      progress=False, **options)
        seconds = time.perf_counter() - t
        import csv

        with open(Path(out) / "metrics.csv") as f:
            rates = [float(r["examples_per_s"]) for r in csv.DictReader(f)]
        if save is not None:
            Path(save).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(out) / "best.safetensors", save)
    # training throughput of the steady epochs (the first pays one-time costs), as the loop measures it
    return model, seconds, float(np.mean(rates[1:] if len(rates) > 1 else rates))


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    from facespace.data import load_faces, random_split
    from facespace.models.pca import PCAAutoencoder

    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    report = Report(args)
    faces = load_faces(args.data, size=args.size, crop="lfw", progress=False)
    train_set, test_set = random_split(faces, test=0.1, seed=42)
    xtr, xte = train_set.images, test_set.images
    report.note(f"{len(faces)} images: {len(xtr)} train (5% of it held for validation by the trainer), {len(xte)} test")
    print(f"data: {len(xtr)} train, {len(xte)} test", file=sys.stderr)

    # PCA at every code size (closed form, seconds)
    codes = sorted({int(c) for c in args.sweep.split(",")} | {args.code}) if "sweep" not in skip else [args.code]
    pca_mse = {}
    for code in codes:
        t = time.perf_counter()
        pca = PCAAutoencoder(code_size=code).fit(xtr)
        secs = time.perf_counter() - t
        pca_mse[code] = test_mse(pca, xte)
        if code == args.code:
            report.add("rows", {"model": "PCA (closed form)", "code": code, "epochs": "", "test_mse": pca_mse[code],
                                "train_s": secs, "images_per_s": len(xtr) / secs})
    log = lambda r: print(json.dumps(r, default=str), file=sys.stderr, flush=True)  # noqa: E731
    log(pca_mse)

    def row(name, kind, epochs, code=args.code, save=None, **options):
        model, secs, ips = run_train(kind, xtr, code, epochs, args.threads, save=save, **options)
        t = time.perf_counter()
        mse = test_mse(model, xte)
        r = {"model": name, "code": code, "epochs": epochs, "test_mse": mse, "train_s": secs,
             "images_per_s": ips, "options": options, "test_encode_s": time.perf_counter() - t}
        report.add("rows", r)
        log(r)
        return model, r

    save_dir = Path(args.save_dir)
    best_opts = json.loads(args.best)
    if not (args.merge and report.data["sweep"]):  # a merged run keeps the earlier sweep
        report.data["sweep"] = [{"code": c, "pca_mse": pca_mse[c]} for c in codes]
    if "best" not in skip:  # first, while the machine is at its quietest
        name = f"best conv ({', '.join(f'{k}={v}' for k, v in best_opts.items())})"
        model, best = row(name, "conv", args.epochs_best, save=save_dir / f"best-conv-{args.code}.safetensors", **best_opts)
        if best_opts.get("refine_steps"):
            import dataclasses

            refined = model.config
            model.config = dataclasses.replace(refined, refine_steps=0)
            plain = {**best, "model": "the same best conv, encoder only (no refinement of the code)",
                     "test_mse": test_mse(model, xte)}
            model.config = refined
            report.add("rows", plain)
            report.note(f"best conv: refining each code by {refined.refine_steps} Adam steps through the frozen decoder "
                        f"(lr {refined.refine_lr}) lowers test MSE from {plain['test_mse']:.5f} to {best['test_mse']:.5f}; "
                        f"encoding the {len(xte)} test images took {best['test_encode_s']:.1f} s with it and is one "
                        "network pass without it")
        next(r for r in report.data["sweep"] if r["code"] == args.code).update(conv_mse=best["test_mse"], epochs=args.epochs_best)
        report.write()
    if "denoise" not in skip:
        from facespace.training.metrics import mse_psnr
        from facespace.pipelines.codes import reconstruct
        from facespace.data.corruptions import Corruption

        opts = json.loads(args.denoise)
        model, secs, ips = run_train("denoise", xtr, 512, args.epochs_denoise, args.threads,
                                     save=save_dir / "denoise-512.safetensors", noise="gaussian:0.1", **opts)
        noisy = Corruption(sigma=0.1).apply(xte, seed=0)
        r = {"model": f"denoising conv, code 512, sigma 0.1 ({', '.join(f'{k}={v}' for k, v in opts.items())})",
             "code": 512, "epochs": args.epochs_denoise, "test_mse": mse_psnr(xte, reconstruct(model, noisy))[0],
             "noisy_input_mse": mse_psnr(xte, noisy)[0], "clean_input_mse": test_mse(model, xte), "train_s": secs,
             "images_per_s": ips}
        report.add("rows", r)
        report.note(f"denoising: noisy test inputs have MSE {r['noisy_input_mse']:.5f} against the clean images; "
                    f"the model's output {r['test_mse']:.5f} (clean inputs through it: {r['clean_input_mse']:.5f})")
        log(r)
    if "linear" not in skip:
        row("linear autoencoder (Adam, one-cycle)", "linear", args.epochs_linear, lr=3e-3, schedule="onecycle")
    if "seed" not in skip:
        row("seed conv (ReLU code, Adam 1e-3, b64)", "conv", args.epochs_seed, arch="seed")
    if "relu" not in skip:
        row("seed conv, linear code", "conv", args.epochs_seed, arch="seed", code_activation="linear")
    if "sweep" not in skip:
        for entry in report.data["sweep"]:
            if entry.get("conv_mse") is not None:
                continue
            model, secs, _ = run_train("conv", xtr, entry["code"], args.epochs_sweep, args.threads, **best_opts)
            entry.update(conv_mse=test_mse(model, xte), epochs=args.epochs_sweep, train_s=secs)
            report.write()
            log(entry)
    if "speed" not in skip:
        speed_rows(args, xtr, xte, report, skip)
    report.data["machine"]["loadavg_end"] = os.getloadavg()
    report.write()


def speed_rows(args, xtr, xte, report, skip) -> None:
    """The seed's model trained for the same epochs on the same images by each trainer."""
    sub = xtr[: args.speed_images]
    trainers = [("facespace fp32", {}), ("facespace channels-last fp32", {"channels_last": True}),
                ("facespace channels-last + bf16", {"channels_last": True, "bf16": True})]
    for name, opts in trainers:
        model, secs, ips = run_train("conv", sub, args.code, args.speed_epochs, args.threads, arch="seed", val=0.02, **opts)
        report.add("speed", {"trainer": name, "images_per_s": ips, "seconds": secs,
                             "test_mse": test_mse(model, xte)})
    if "keras" in skip:
        return
    py = Path(args.keras_python)
    if not py.exists():
        report.note(f"Keras reference skipped: no Python with TensorFlow at {py} (install tensorflow-cpu in a separate venv)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        # Keras trains on exactly the images facespace's trainer trains on (it holds 2% for validation,
        # chosen as `facespace.training.recipes` does with its default split seed 42)
        order = np.random.default_rng(42 + 1).permutation(len(sub))
        np.savez(data, train=sub[np.sort(order[int(round(0.02 * len(sub))):])], test=xte)
        script = Path(tmp) / "keras_seed.py"
        script.write_text(KERAS_SCRIPT)
        proc = subprocess.run([str(py), str(script), str(data), str(args.threads), str(args.speed_epochs), str(args.code)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        report.note(f"Keras reference failed: {proc.stderr.strip().splitlines()[-1:]}")
        return
    k = json.loads(proc.stdout.strip().splitlines()[-1])
    report.data["versions"].update(tensorflow=k["tensorflow"], keras=k["keras"])
    report.add("speed", {"trainer": f"Keras {k['keras']} on TensorFlow-CPU {k['tensorflow']}", "images_per_s": k["images_per_s"],
                         "seconds": k["seconds"], "test_mse": k["test_mse"]})
    report.note("speed: facespace's images/s are its training steps' throughput after the first epoch (the loop's "
                "metrics.csv, whose epoch time includes validation); Keras's are over all its epochs after a warm-up epoch on 640 images, after which its weights and "
                "optimizer state are reset to the start; both train on the same images from Glorot-uniform weights")


if __name__ == "__main__":
    main()
