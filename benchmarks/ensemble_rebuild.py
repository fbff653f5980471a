"""Rebuild the LFW View 2 verifier ensemble from nothing in one command: recipes, per-fold training in
parallel lanes, then one scoring run.

Per-fold models are not kept between machines (they are run outputs, ~50 files), so the ensemble of
the README's table has to be retrained wherever it is scored. This does it in three steps:
1. a recipe checkpoint per member, `runs/recipes/<member>.safetensors`: an untrained network with the
   settings `verification.py --verifier-retrain` reads (network, objective, loop, crop), as
   `facespace train verifier` would store them;
2. `verification.py --verifier-retrain RECIPE --train-only --save-fold-models runs/folds-<member>` in
   `--lanes` processes of one thread each, the folds split between them, member after member (so the
   first members are complete when time runs short); started again after an interruption, each lane
   skips the folds already kept and trains only the rest;
3. `verification.py --fold-models runs/folds-<each member> --shift-test 2 --merge` scores their ensemble
   once, as a new row of benchmarks/results/verification.md (`--results-dir` elsewhere).

    .venv/bin/python benchmarks/ensemble_rebuild.py --lanes 2 --bf16            # the seven members, ~4 h on 2 cores
    .venv/bin/python benchmarks/ensemble_rebuild.py --members tight:24 wide:24 --dry-run

Members are `recipe:epochs` with the recipes below (all dropout 0.5, test-time shifts of 2 px).
`--bf16` trains with bfloat16 autocast and channels-last: 1.8x faster where the CPU has AVX-512 BF16
(verifier_speed.md), 10x slower where it has none. Measured on 2 cores with bf16, two lanes: the first
four members' 40 trainings took 1 h 50 min (beside other work), tight:48's ten ~35 min, 64px:48's and
inner:48's twenty 1 h 40 min; the rows: four members 89.4 %, five 89.7 %, seven 90.1 % (README).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from verification import LFW, ROOT

RECIPES = {  # name: (input side, first-stage width, crop)
    "tight": (48, 16, "tight"),
    "64px": (64, 12, "tight"),
    "wide": (48, 16, "50,45,210,205"),
    "inner": (48, 16, "lfw"),
}
DEFAULT_MEMBERS = ("tight:24", "64px:24", "wide:24", "inner:24", "tight:48", "64px:48", "inner:48")


def parse_member(spec: str) -> tuple[str, int]:
    """`wide:24` -> ("wide", 24); refuses an unknown recipe or a bad epoch count."""
    name, _, epochs = spec.partition(":")
    if name not in RECIPES or not epochs.isdigit() or int(epochs) < 1:
        raise SystemExit(f"member {spec!r}: expected RECIPE:EPOCHS with RECIPE one of {', '.join(RECIPES)}, e.g. wide:24")
    return name, int(epochs)


def write_recipe(path: Path, name: str, epochs: int, bf16: bool) -> Path:
    """An untrained verifier checkpoint carrying recipe `name`'s settings for `epochs` epochs."""
    import dataclasses

    from facespace.models.registry import save_model
    from facespace.data.crops import crop_record, parse_crop
    from facespace.training.loop import TrainConfig
    from facespace.models.verifier import VerifierConfig, VerifierNet
    from facespace.training.verifier import LOOP_DEFAULTS, ObjectiveConfig

    size, width, crop = RECIPES[name]
    net = VerifierNet(VerifierConfig(size=size, channels=3, width=width, dropout=0.5, shift_test=2))
    loop = TrainConfig(epochs=epochs, threads=1, bf16=bf16, channels_last=bf16, **LOOP_DEFAULTS)
    extra = {"objective": dataclasses.asdict(ObjectiveConfig()), "loop": dataclasses.asdict(loop),
             "crop": crop_record(parse_crop(crop)), "recipe": f"{name}:{epochs}"}
    return save_model(net, path, extra=extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", nargs="+", default=list(DEFAULT_MEMBERS), help="RECIPE:EPOCHS, e.g. tight:24 wide:24")
    ap.add_argument("--lanes", type=int, default=2, help="training processes side by side (one thread each)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast + channels-last (CPUs with AVX-512 BF16)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs", help="where recipes/ and folds-<member>/ go")
    ap.add_argument("--pairs", type=Path, default=LFW / "pairs.txt")
    ap.add_argument("--folds", type=int, default=10, help="folds of the pairs file")
    ap.add_argument("--results-dir", type=Path, default=None,
                    help="where the scoring run writes verification.{json,md} (default: a row merged into benchmarks/results)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    members = [parse_member(m) for m in args.members]
    if not 1 <= args.lanes <= args.folds:
        ap.error(f"--lanes must be 1 to {args.folds}")
    tag = "-bf16" if args.bf16 else ""
    py = [sys.executable, str(ROOT / "benchmarks" / "verification.py"), "--no-pixels", "--pca", "--pairs", str(args.pairs)]
    folders = [args.runs / f"folds-{name}-e{epochs}{tag}" for name, epochs in members]
    lanes = [",".join(str(k) for k in range(1, args.folds + 1) if (k - 1) % args.lanes == i) for i in range(args.lanes)]
    scripts = []
    for lane in lanes:
        steps = [[*py, "--threads", "1", "--train-only", "--folds", lane, "--verifier-retrain",
                  str(args.runs / "recipes" / f"{name}-e{epochs}{tag}.safetensors"), "--save-fold-models", str(folder)]
                 for (name, epochs), folder in zip(members, folders)]
        scripts.append(steps)
    score = [*py, "--threads", str(args.lanes), "--shift-test", "2", "--fold-models", *map(str, folders),
             *(["--results-dir", str(args.results_dir)] if args.results_dir else ["--merge"])]
    if args.dry_run:
        for i, steps in enumerate(scripts):
            print(f"# lane {i + 1}\n" + "\n".join(shlex.join(s) for s in steps))
        print("# then\n" + shlex.join(score))
        return
    for (name, epochs) in members:
        write_recipe(args.runs / "recipes" / f"{name}-e{epochs}{tag}.safetensors", name, epochs, args.bf16)
    procs = [subprocess.Popen(["bash", "-c", " && ".join(shlex.join(s) for s in steps)]) for steps in scripts]
    if any(p.wait() for p in procs):
        raise SystemExit("a training lane failed (its output is above); finished folds are kept in the folders")
    subprocess.run(score, check=True)


if __name__ == "__main__":
    sys.exit(main())
