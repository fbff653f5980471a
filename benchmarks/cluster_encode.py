"""Throughput of `facespace encode --cluster` against the single-process command, and the projection to 10M photos.

Runs the real commands on the LFW photos (13,233 by default), each into a fresh shard folder:
`facespace encode LFW --model M --out DIR/` (one process), then with `--cluster local:1` and
`--cluster local:2`; wall time of each command and, for the cluster, the job's own rate (the last
progress line: from the first task to the last shard written, the cluster's start-up left out).
Then the engine's overhead per task (1,000 tiny tasks on the 2-worker cluster) and the driver's
cost per shard (writing a shard and rewriting a manifest of 10,000 shards), from which the
projection to 10M photos on 100 workers is written. Writes benchmarks/results/cluster_encode.{json,md}.

    nice -n 10 .venv/bin/python benchmarks/cluster_encode.py [--photos 13233] [--dlib 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
OUT = ROOT / "benchmarks" / "results"
FACESPACE = str(Path(sys.executable).with_name("facespace"))
TARGET_PHOTOS, TARGET_WORKERS, SHARD = 10_000_000, 100, 1000
RATE = re.compile(r"(\d+)/(\d+) images, ([\d.]+) images/s")


def photo_folder(n: int, tmp: Path) -> str:
    """LFW itself, or a folder of links to its first `n` photos (sorted) for a subset."""
    files = sorted(LFW.rglob("*.jpg"))
    if n >= len(files):
        return str(LFW)
    d = tmp / f"lfw-{n}"
    d.mkdir(parents=True, exist_ok=True)
    for f in files[:n]:
        (d / f.name).symlink_to(f)
    return str(d)


def run_encode(photos: str, model: str, out: Path, cluster: str | None, shard: int = SHARD) -> dict:
    cmd = [FACESPACE, "encode", photos, "--model", model, "--out", f"{out}/", "--shard-size", str(shard)]
    if cluster:
        cmd += ["--cluster", cluster]
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # the command and its workers
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    res = {"command": " ".join(["facespace"] + cmd[1:]), "wall_s": wall, "images": summary["files"],
           "codes": summary["count"], "failed": summary["failed"], "images_per_s": summary["files"] / wall,
           "cpu_s": cpu, "images_per_cpu_s": summary["files"] / cpu}
    rates = RATE.findall(p.stderr)
    if rates:
        res["job_images_per_s"] = float(rates[-1][2])  # from the first task to the last shard
    print(json.dumps(res), flush=True)
    return res


def task_overhead(n: int = 1000) -> dict:
    """The engine's cost of one task on a 2-worker local cluster: tiny tasks, submitted together."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
            Client(lc) as client:
        client.wait_for_workers(2)
        client.gather([client.submit(abs, -i, pure=False) for i in range(50)])  # warm
        t = time.perf_counter()
        client.gather([client.submit(abs, -i, pure=False) for i in range(n)])
        return {"tasks": n, "ms_per_task": 1000 * (time.perf_counter() - t) / n}


def driver_write_cost(tmp: Path, n_shards: int = TARGET_PHOTOS // SHARD) -> dict:
    """The driver's work per shard late in a 10M-photo job: write one shard of 1,000 rows and rewrite
    the manifest that lists the others (it grows with the job)."""
    from facespace.pipelines.export.formats import ExportedCodes
    from facespace.pipelines.export.shards import ShardJob

    files = [f"/photos/{i // 1000:05d}/img_{i:08d}.jpg" for i in range(SHARD)]
    chunks = [(k, files, [None] * SHARD) for k in range(n_shards)]
    manifest = {"format": "facespace-codes-shards", "version": 1, "job": "x", "model": None, "settings": {},
                "files": n_shards * SHARD, "n_shards": n_shards, "failed": {},
                "shards": {f"{k:05d}": {"file": f"shard-{k:05d}.npy", "rows": SHARD, "crc": 123456789, "files": SHARD}
                           for k in range(n_shards - 1)}}
    out = tmp / "write-cost"
    job = ShardJob(out, manifest, chunks, False, None)
    rows = ExportedCodes(np.random.default_rng(0).normal(size=(SHARD, 32)).astype(np.float32), files,
                         [None] * SHARD, None)
    times = []
    for _ in range(5):
        job.manifest["shards"].pop(f"{n_shards - 1:05d}", None)
        t = time.perf_counter()
        job.write_shard(n_shards - 1, rows, {})
        times.append(time.perf_counter() - t)
    return {"shards_listed": n_shards, "ms_per_shard": 1000 * sorted(times)[2],
            "manifest_bytes": (out / "manifest.json").stat().st_size}


def codes_match(a: Path, b: Path) -> dict:
    from facespace.pipelines.export.read import load_codes

    x, y = load_codes(a), load_codes(b)
    return {"bit_identical": bool(np.array_equal(x.codes, y.codes)) and x.sources == y.sources,
            "max_abs_diff": float(np.abs(x.codes - y.codes).max()) if x.codes.shape == y.codes.shape else None}


PARTIAL = ROOT / "runs" / "cluster_encode.partial.json"


def measure(model: str, n: int, tmp: Path, res: dict, shard: int = SHARD) -> dict:
    """The three commands on the same photos (results saved after each, in runs/, should a long run be cut)."""
    photos = photo_folder(n, tmp)
    enc = {"model": model, "photos": None, "shard_size": shard, "runs": {}, "codes_vs_single": {}}
    res["encode"].append(enc)
    for name, cluster in (("single", None), ("local:2", "local:2"), ("local:1", "local:1")):
        enc["runs"][name] = run_encode(photos, model, tmp / f"{model}-{name.replace(':', '')}", cluster, shard)
        enc["photos"] = enc["runs"][name]["images"]
        if name != "single":
            enc["codes_vs_single"][name] = codes_match(tmp / f"{model}-single", tmp / f"{model}-{name.replace(':', '')}")
        PARTIAL.write_text(json.dumps(res, indent=1))
    return enc


def projection(enc: dict, overhead: dict, write: dict) -> dict:
    """10M photos on 100 workers, each a process with one core of its own, as a `local:2` worker here.

    The rate of one such worker is taken from the CPU time of the `local:2` command (its workers and
    driver together, start-up and model loads included): images per CPU second, what one core gives
    when no one else uses it. (The wall-clock rate here is lower: other jobs shared the 2 cores.)
    """
    run = enc["runs"]["local:2"]
    per_worker = run["images_per_cpu_s"]
    shards = TARGET_PHOTOS // SHARD
    compute = TARGET_PHOTOS / (TARGET_WORKERS * per_worker)
    serial = shards * (overhead["ms_per_task"] + write["ms_per_shard"]) / 1000  # scheduler + driver, one at a time
    return {"photos": TARGET_PHOTOS, "workers": TARGET_WORKERS, "shard_size": SHARD, "tasks": shards,
            "per_worker_images_per_s": per_worker, "per_worker_wall_here": run.get("job_images_per_s", 0) / 2,
            "compute_s": compute, "serial_overhead_s": serial,
            "total_s": max(compute, serial),  # the two overlap: the slower one sets the pace
            "images_per_s": TARGET_PHOTOS / max(compute, serial)}


def full_set(err: Path) -> dict:
    """The whole of LFW through `--cluster local:2`, from `/usr/bin/time -v`'s report and the command's summary."""
    text = err.read_text()

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", text).group(1).strip()

    clock = [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(x * 60 ** i for i, x in enumerate(reversed(clock)))
    summary = json.loads(err.with_suffix(".out").read_text().strip().splitlines()[-1])
    rates = RATE.findall(text)
    return {"command": field("Command being timed").strip('"').replace(str(ROOT) + "/", ""), "wall_s": wall,
            "images": summary["files"], "codes": summary["count"], "failed": summary["failed"],
            "shards": summary["shards"], "images_per_s": summary["files"] / wall,
            "job_images_per_s": float(rates[-1][2]) if rates else None,
            "cpu_s": float(field("User time (seconds)")) + float(field("System time (seconds)")),
            "max_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024}


def write_results(res: dict) -> None:
    m = res["machine"]
    lines = [
        "# `facespace encode --cluster`: throughput here and projected to 10M photos",
        "",
        f"Command: `{res['command']}`; {m['platform']}, {m['cpu_count']} cores, python "
        f"{m['python']}, torch {m['torch']}, dask distributed {m['distributed']}; load average "
        f"{m['load_start'][0]:.2f} at the start, {m['load_end'][0]:.2f} at the end (1-minute; the benchmark's "
        "own processes count in it: above 2 others shared the cores, so read the rates as lower bounds).",
        "",
        *[f"- {line}" for line in res.get("notes", [])],
        *([""] if res.get("notes") else []),
    ]
    first = res["encode"][0]
    if first["photos"] < 13233:
        wall = first["runs"]["single"]["images_per_s"]
        lines += [f"The first {first['photos']:,} of LFW's 13,233 photos (sorted by path) stand for the set: other "
                  "jobs held the 2 cores (load average about 10), so one command over all 13,233 would have taken "
                  f"about {13233 / wall / 60:.0f} min here. Images per CPU second does not depend on that load, and "
                  "the projection is made from it.", ""]
    if "full_set" in res:
        f = res["full_set"]
        lines += [f"All {f['images']:,} photos through 2 workers, once: `{f['command']}` took {f['wall_s'] / 60:.1f} min "
                  f"({f['images_per_s']:.1f} images/s; the job {f['job_images_per_s']:.1f}), {f['codes']:,} codes in "
                  f"{f['shards']} shards, {f['failed']} failed, {f['cpu_s']:.0f} CPU s ({f['images'] / f['cpu_s']:.1f} "
                  f"images per CPU second), the largest process {f['max_rss_mb']:.0f} MB resident"
                  f"{'; ' + f['note'] if f.get('note') else ''}.", ""]
    for enc in res["encode"]:
        lines += [f"## {enc['photos']:,} LFW photos, `--model {enc['model']}`, shards of {enc.get('shard_size', SHARD)}",
                  "",
                  "| how | wall s | images/s (wall) | images/s (the job, start-up left out) | CPU s | images per CPU s "
                  "| codes vs one process |",
                  "|---|---|---|---|---|---|---|"]
        for name in ("single", "local:1", "local:2"):
            if name not in enc["runs"]:
                continue
            r = enc["runs"][name]
            same = enc["codes_vs_single"].get(name)
            cmp = "—" if same is None else ("bit-identical" if same["bit_identical"] else
                                             f"max difference {same['max_abs_diff']:.1e}")
            job = f"{r['job_images_per_s']:.1f}" if "job_images_per_s" in r else "—"
            shown = (f"facespace encode PHOTOS --model {enc['model']} --out CODES/ --shard-size "
                     f"{enc.get('shard_size', SHARD)}" + (f" --cluster {name}" if name != "single" else ""))
            lines.append(f"| `{shown}` "
                         f"| {r['wall_s']:.1f} | {r['images_per_s']:.1f} | {job} | {r['cpu_s']:.0f} "
                         f"| {r['images_per_cpu_s']:.1f} | {cmp} |")
        lines.append("")
    p, o, w = res["projection"], res["task_overhead"], res["driver_write"]
    lines += [
        "`local:1` is one worker with both cores' torch threads (the same threads as one process, so the same "
        "bits); `local:2` is two single-threaded workers (torch splits its sums by thread count, so codes differ "
        "from a 2-thread process in the last bits; dlib's encoder runs one thread, so its codes are the same at "
        "any count). One process with dlib already runs 2 processes (`--workers`, every core by default), as "
        "many as `local:2`. Dask starts its workers with `MALLOC_TRIM_THRESHOLD_=65536`, under which glibc maps "
        "and unmaps every block over 128 KiB afresh; facespace's workers raise glibc's thresholds when they load "
        "their model (`facespace.allocator.roomy_malloc`; the command line calls it too).",
        "",
        f"## Projection: {p['photos']:,} photos on {p['workers']} workers",
        "",
        f"- per worker (one core of its own, as a `local:2` worker here): {p['per_worker_images_per_s']:.1f} images/s "
        f"(`{res['encode'][0]['model']}`: the `local:2` command's images per CPU second, start-up and model loads "
        f"included; its wall-clock job rate over 2 was {p['per_worker_wall_here']:.1f} here)",
        f"- the engine's overhead per task: {o['ms_per_task']:.2f} ms (1,000 tiny tasks on the 2-worker cluster); "
        f"the driver's per shard late in the job: {w['ms_per_shard']:.1f} ms (a shard of 1,000 rows written and "
        f"a manifest listing {w['shards_listed']:,} shards, {w['manifest_bytes'] / 2**20:.1f} MB, rewritten)",
        f"- {p['tasks']:,} shards: compute {p['compute_s'] / 3600:.2f} h spread over the workers; scheduler and "
        f"driver, one shard at a time, {p['serial_overhead_s'] / 60:.1f} min, overlapping the compute",
        f"- **about {p['total_s'] / 3600:.1f} h for 10M photos** ({p['images_per_s']:.0f} images/s), plus the "
        "cluster's start-up and one model load per worker (seconds). The workers set the pace by far; "
        f"the driver would be the limit only past about {p['compute_s'] / p['serial_overhead_s'] * p['workers']:.0f} "
        "such workers. Assumed, not measured: the photos are read from shared storage as fast as from a local "
        "disk, and the workers' cores are like these.",
    ]
    for enc in res["encode"][1:]:  # the other models, the same way
        rate = enc["runs"]["local:2"]["images_per_cpu_s"]
        lines.append(f"- `--model {enc['model']}` ({rate:.1f} images per CPU second in `local:2`, whole photos read, "
                     f"located, aligned and encoded): about {TARGET_PHOTOS / (TARGET_WORKERS * rate) / 3600:.1f} h on "
                     f"{TARGET_WORKERS} workers")
    lines.append("")
    (OUT / "cluster_encode.md").write_text("\n".join(lines))
    (OUT / "cluster_encode.json").write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=13233, help="LFW photos for faces-ae (13,233: all)")
    ap.add_argument("--dlib", type=int, default=0, help="also --model dlib on this many photos (0: skip)")
    ap.add_argument("--full-log", type=Path, help="with --report: the stderr of `/usr/bin/time -v facespace encode "
                    "LFW ... --cluster local:2` over every photo, its stdout beside it as .out")
    ap.add_argument("--note", action="append", default=[], help="a line for the results' notes (repeat)")
    ap.add_argument("--report", type=Path, help="write the results from a (partial) JSON of an earlier run, "
                    "measuring only the overheads")
    a = ap.parse_args()
    if a.report:
        res = json.loads(a.report.read_text())
        res["encode"] = [e for e in res["encode"] if "local:2" in e["runs"]]
        with tempfile.TemporaryDirectory(dir=ROOT / "runs") as tmp:
            if a.dlib:  # dlib's rows added to an earlier run, in shards of 250 so that 2 workers share them
                res["encode"] = [e for e in res["encode"] if e["model"] != "dlib"]
                measure("dlib", a.dlib, Path(tmp), res, shard=250)
                res["command"] += f"; then --report ... --dlib {a.dlib}"
            if "task_overhead" not in res:  # a partial run: measured now
                res["task_overhead"] = task_overhead()
            if "driver_write" not in res:
                res["driver_write"] = driver_write_cost(Path(tmp))
        if a.full_log:
            res["full_set"] = {**full_set(a.full_log),
                               "note": f"load average about {os.getloadavg()[1]:.0f} at its end"}
        res["projection"] = projection(res["encode"][0], res["task_overhead"], res["driver_write"])
        if a.dlib or "load_end" not in res["machine"]:
            res["machine"]["load_end"] = os.getloadavg()
        write_results(res)
        print((OUT / "cluster_encode.md").read_text())
        return
    import distributed
    import torch

    shown = [v for i, v in enumerate(sys.argv[1:]) if v != "--note" and (i == 0 or sys.argv[i] != "--note")]
    res = {"command": "python benchmarks/cluster_encode.py " + " ".join(shown + ["--note ..."] * bool(a.note)),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                       "torch": torch.__version__, "distributed": distributed.__version__,
                       "load_start": os.getloadavg()}, "encode": [], "notes": a.note}
    tmp = Path(tempfile.mkdtemp(prefix="cluster-encode-", dir=ROOT / "runs"))
    try:
        measure("faces-ae", a.photos, tmp, res)
        if a.dlib:
            measure("dlib", a.dlib, tmp, res, shard=250)
        res["task_overhead"] = task_overhead()
        res["driver_write"] = driver_write_cost(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["projection"] = projection(res["encode"][0], res["task_overhead"], res["driver_write"])
    res["machine"]["load_end"] = os.getloadavg()
    write_results(res)
    print((OUT / "cluster_encode.md").read_text())


if __name__ == "__main__":
    main()
