"""Generation benchmark: a VAE beside the plain conv autoencoder (and PCA as the closed-form reference).

Setting: deep-funneled LFW, central 90x90 crop -> 32x32 RGB, random 10% test split (seed 42),
code 32. Reports test reconstruction MSE (clipped posterior-mean / plain reconstructions), the VAE's
ELBO terms on the test split, fill-in and denoising errors, and writes side-by-side pictures:

    benchmarks/results/generation_samples.png   prior samples: VAE | conv (Gaussian of its codes) | PCA
    benchmarks/results/generation_morph.png     morphs between two test faces: VAE, conv, PCA, pixel cross-fade
    benchmarks/results/generation_vary.png      variations of one test face (strength 0.5)
    benchmarks/results/generation_fill.png      original | occluded | filled in, per model
    benchmarks/results/generation_denoise.png   original | noisy (sigma 0.1) | denoised, per model

    .venv/bin/python benchmarks/generation.py --data ../shared/data/lfw/lfw-deepfunneled
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = "generation"
FILL_BOX = (9, 19, 23, 27)  # x0, y0, x1, y1 in the 32x32 crop: the mouth and chin


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"))
    p.add_argument("--code", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--width", type=int, default=16, help="conv width of both networks (B1's default is 32)")
    p.add_argument("--epochs-conv", type=int, default=5)
    p.add_argument("--epochs-vae", type=int, default=30)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--runs", default=str(ROOT / "runs" / "generation"), help="run folders of the trained models")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images (smoke tests)")
    return p.parse_args(argv)


def train_vae(faces, args, out):
    """Train the VAE with the `train` verb when it knows kind 'vae', else with the same split and loop."""
    from facespace.training import recipes as train_mod
    common = dict(code_size=args.code, epochs=args.epochs_vae, arch="bn", width=args.width, beta=args.beta,
                  flip=True, schedule="onecycle", lr=args.lr, batch_size=args.batch_size, threads=args.threads,
                  test=0.1, split_seed=42, progress=False)  # fmt: skip
    if "vae" in train_mod.KINDS:
        return train_mod.train("vae", faces, out=out, **common), "facespace.training.recipes.train('vae', ...)"
    import torch

    from facespace.training.loop import TrainConfig, fit
    from facespace.models.vae import VAE, VAEConfig
    from facespace.training.objectives import Reconstruction

    class OwnLoss(Reconstruction):  # the VAE's own loss on randomly flipped batches
        def loss(self, batch):
            return self.network.loss(self.clean(batch))

    train_part, _ = train_mod.split_faces(faces, test=0.1, seed=42)
    x = train_part.images
    order = np.random.default_rng(43).permutation(len(x))  # as train.py: 5% validation, split seed + 1
    k = int(round(0.05 * len(x)))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    torch.manual_seed(0)
    net = VAE(VAEConfig(size=x.shape[1], channels=x.shape[3], code_size=args.code, width=args.width, beta=args.beta))
    net.checkpoint_info = {"extra": {"split": {"test": 0.1, "split_seed": 42, "val": 0.05}, "objective": "vae"}}
    config = TrainConfig(epochs=args.epochs_vae, batch_size=args.batch_size, lr=args.lr, schedule="onecycle",
                         threads=args.threads)
    result = fit(OwnLoss(net, flip=True), to_t(x[np.sort(order[k:])]), to_t(x[np.sort(order[:k])]), config,
                 out_dir=out, progress=False)
    from facespace.models.registry import load_model

    return load_model(result.best_path), "facespace.training.loop.fit (train.py has no kind 'vae' yet)"


def store_code_stats(model, images, path):
    """Record the code mean/std of the training images in the model's checkpoint (for vary/sample)."""
    from facespace.models.registry import save_model
    from facespace.pipelines.generation import code_stats

    info = dict(getattr(model, "checkpoint_info", {}))
    extra = {**info.get("extra", {}), **code_stats(model, images)}
    save_model(model, path, step=info.get("step", 0), best_val_loss=info.get("best_val_loss"), extra=extra)
    model.checkpoint_info = {**info, "extra": extra}


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from facespace.pipelines import generation as gen
    from facespace.pipelines.codes import encode, reconstruct
    from facespace.training.metrics import mse_psnr
    from facespace.data.corruptions import parse_corruption
    from facespace.data import load_faces
    from facespace.grid import make_grid, save_png
    from facespace.models.pca import PCAAutoencoder
    from facespace.data.splits import split_faces
    from facespace.training.recipes import train

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "loadavg_start": os.getloadavg()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "setting": vars(args), "rows": [], "notes": [],
    }  # fmt: skip
    t0 = time.perf_counter()
    faces = load_faces(args.data, size=32, progress=False)
    if args.limit:
        faces = faces.subset(np.arange(min(args.limit, len(faces))))
    train_part, test_part = split_faces(faces, test=0.1, seed=42)
    xtr, xte = np.asarray(train_part.images), np.asarray(test_part.images)
    report["notes"].append(f"{len(faces)} images: {len(xtr)} train (5% of it validation for the nets), {len(xte)} test; "
                           f"loaded in {time.perf_counter() - t0:.0f} s")
    runs = Path(args.runs)
    models = {}

    t = time.perf_counter()
    models["PCA"] = PCAAutoencoder(code_size=args.code).fit(xtr)
    pca_s = time.perf_counter() - t
    t = time.perf_counter()
    conv = train("conv", faces, out=runs / "conv", code_size=args.code, epochs=args.epochs_conv, arch="bn",
                 code_activation="linear", pca_skip=True, width=args.width, flip=True, schedule="onecycle",
                 lr=args.lr, batch_size=args.batch_size, threads=args.threads, test=0.1, split_seed=42,
                 progress=False)  # fmt: skip
    conv_s = time.perf_counter() - t
    store_code_stats(conv, xtr, runs / "conv" / "best.safetensors")
    models["conv (bn, PCA skip)"] = conv
    t = time.perf_counter()
    vae, how = train_vae(faces, args, runs / "vae")
    vae_s = time.perf_counter() - t
    store_code_stats(vae, xtr, runs / "vae" / "best.safetensors")
    models["VAE (bn)"] = vae
    report["notes"].append(f"VAE trained with {how}")
    seconds = {"PCA": pca_s, "conv (bn, PCA skip)": conv_s, "VAE (bn)": vae_s}
    epochs = {"PCA": "", "conv (bn, PCA skip)": args.epochs_conv, "VAE (bn)": args.epochs_vae}

    # --- numbers ------------------------------------------------------------------------
    noise = parse_corruption("gaussian:0.1")
    noisy = noise.apply(xte, seed=0)
    mask = gen.box_mask((32, 32), FILL_BOX)
    fill_idx = np.arange(0, len(xte), max(1, len(xte) // 100))[:100]  # 100 test faces (fill-in iterates)
    mean_fill = []
    for i in fill_idx:
        x = xte[i]
        mean_fill.append(np.mean((np.where(mask[..., None], x[~mask].mean(0), x) - x)[mask] ** 2))
    pca_mse = None
    for name, model in models.items():
        mse, psnr = mse_psnr(xte, reconstruct(model, xte))
        pca_mse = mse if name == "PCA" else pca_mse
        fills = [np.mean((gen.fill_in(model, xte[i], mask, iterations=30) - xte[i])[mask] ** 2) for i in fill_idx]
        row = {"model": name, "epochs": epochs[name], "train_s": round(seconds[name], 1), "test_mse": mse,
               "x_pca": mse / pca_mse, "psnr": psnr, "denoised_mse": mse_psnr(xte, gen.denoise(model, noisy))[0],
               "fill_mse": float(np.mean(fills)), "mean_fill_mse": float(np.mean(mean_fill))}  # fmt: skip
        if name.startswith("VAE"):
            row.update({f"elbo_{k}": v for k, v in model.elbo_terms(xte, seed=0).items()})
            row["elbo_recon"] = row["elbo_mse"] * int(np.prod(xte.shape[1:]))  # summed squared error per image
        report["rows"].append(row)
    report["noisy_mse"] = mse_psnr(xte, noisy)[0]

    # --- pictures -----------------------------------------------------------------------
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = list(models)
    n = 16
    grids = []
    for name in names:
        m = models[name]
        if name.startswith("VAE"):
            s = gen.sample(m, n, seed=0)
        elif name == "PCA":
            s = gen.sample(m, n, seed=0, codes=encode(m, xtr))
        else:
            s = gen.sample(m, n, seed=0)  # diagonal Gaussian of the stored code mean / std
        grids.append(make_grid(s, ncols=4, scale=3))
    save_png(_side_by_side(grids), RESULTS / f"{NAME}_samples.png")

    a, b = _two_faces(test_part)
    rows = [gen.morph(models[name], xte[a], xte[b], steps=7) for name in names]
    rows.append(np.stack([xte[a] * (1 - t) + xte[b] * t for t in np.linspace(0, 1, 7)]))  # pixel cross-fade
    save_png(make_grid(np.concatenate(rows), ncols=7, scale=3), RESULTS / f"{NAME}_morph.png")

    rows = [np.concatenate([xte[a][None], gen.vary(models[name], xte[a], n=7, strength=0.5, seed=0)]) for name in names]
    save_png(make_grid(np.concatenate(rows), ncols=8, scale=3), RESULTS / f"{NAME}_vary.png")

    show = fill_idx[:4]
    tiles = []
    for i in show:
        occluded = np.where(mask[..., None], 0.0, xte[i])
        tiles += [xte[i], occluded] + [gen.fill_in(models[name], xte[i], mask, iterations=30) for name in names]
    save_png(make_grid(np.stack(tiles), ncols=2 + len(names), scale=3), RESULTS / f"{NAME}_fill.png")
    tiles = []
    for i in show:
        tiles += [xte[i], np.clip(noisy[i], 0, 1)] + [gen.denoise(models[name], noisy[i])[0] for name in names]
    save_png(make_grid(np.stack(tiles), ncols=2 + len(names), scale=3), RESULTS / f"{NAME}_denoise.png")

    report["morph_faces"] = [str(test_part.paths[a]), str(test_part.paths[b])]
    report["columns"] = {"samples": names, "morph rows": names + ["pixel cross-fade"], "fill/denoise": ["original", "corrupted"] + names}
    report["machine"]["loadavg_end"] = os.getloadavg()
    report["total_s"] = round(time.perf_counter() - t0, 1)
    write(report)


def _two_faces(test_part) -> tuple[int, int]:
    """Two test faces of different people (the first and the first of another name)."""
    names = getattr(test_part, "names", None)
    if names is None:
        return 0, min(1, len(test_part) - 1)
    other = next((i for i in range(1, len(names)) if names[i] != names[0]), 1)
    return 0, other


def _side_by_side(pictures, gap: int = 12) -> np.ndarray:
    h = max(p.shape[0] for p in pictures)
    parts = []
    for p in pictures:
        pad = np.full((h, p.shape[1] + gap, 3), 255, np.uint8)
        pad[: p.shape[0], : p.shape[1]] = p
        parts.append(pad)
    return np.concatenate(parts, axis=1)


def write(report: dict) -> None:
    from facespace.files import write_text_atomic

    write_text_atomic(RESULTS / f"{NAME}.json", json.dumps(report, indent=2, default=str) + "\n")
    m = report["machine"]
    lines = [
        "# Generation benchmark", "", f"- command: `{report['command']}`", f"- date: {report['date']}",
        f"- machine: {m['cpu_count']} CPUs, {m['platform']}, load average at start "
        f"{tuple(round(v, 1) for v in m['loadavg_start'])}, at end {tuple(round(v, 1) for v in m['loadavg_end'])}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
        "- setting: deep-funneled LFW, central 90x90 crop -> 32x32 RGB, random 10% test split (seed 42), code "
        f"{report['setting']['code']}; MSE over [0, 1] pixels; total {report['total_s']} s", "",
        "| model | epochs | train s | test MSE | × PCA | denoised MSE (σ 0.1) | fill-in MSE (box) | × mean fill |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in report["rows"]:
        lines.append(
            f"| {r['model']} | {r['epochs']} | {r['train_s']} | {r['test_mse']:.5f} | {r['x_pca']:.3f} | "
            f"{r['denoised_mse']:.5f} | {r['fill_mse']:.5f} | {r['fill_mse'] / r['mean_fill_mse']:.3f} |"
        )
    lines += ["", f"Noisy input MSE: {report['noisy_mse']:.5f}. Fill-in: box x {FILL_BOX[0]}-{FILL_BOX[2]}, "
              f"y {FILL_BOX[1]}-{FILL_BOX[3]} (mouth and chin) on 100 test faces, 30 rounds; the mean-fill "
              "baseline paints the box with the visible pixels' mean colour.", ""]  # fmt: skip
    vae = next((r for r in report["rows"] if r["model"].startswith("VAE")), None)
    if vae:
        lines += [
            "## VAE ELBO terms on the test split (β = {:g}, one posterior draw per image, seed 0)".format(report["setting"]["beta"]),
            "", "| term | value |", "|---|---|",
            f"| reconstruction: summed squared error per image (sampled z) | {vae['elbo_recon']:.2f} |",
            f"| reconstruction: per-pixel MSE (sampled z) | {vae['elbo_mse']:.5f} |",
            f"| reconstruction: per-pixel MSE (posterior mean, unclipped) | {vae['elbo_mean_mse']:.5f} |",
            f"| KL(q(z given x) ‖ N(0, I)), nats per image | {vae['elbo_kl']:.2f} |",
            f"| loss = (SE + β·KL) / pixels | {vae['elbo_loss']:.5f} |", "",
        ]  # fmt: skip
    lines += ["## Pictures", "", f"Columns / rows: {json.dumps(report['columns'])}; morph between "
              f"{' and '.join(Path(p).name for p in report['morph_faces'])}.", ""]
    for pic in ("samples", "morph", "vary", "fill", "denoise"):
        lines.append(f"![{pic}]({NAME}_{pic}.png)")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    write_text_atomic(RESULTS / f"{NAME}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
