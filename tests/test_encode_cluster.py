"""`facespace encode --cluster`: a local Dask cluster writes the same shard folder as one process,
survives a dead worker and a killed driver, and says what is wrong with a bad address or no extra."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from facespace.pipelines.export.cluster import ClusterError, encode_on_cluster, parse_cluster
from facespace.pipelines.export.read import load_codes
from facespace.pipelines.export.shards import encode_to_shards

needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="the cluster engine is not installed: pip install 'facespace[cluster]'")
MODEL = "faces-ae"
SHARD = 12
N = 48  # of the embedded faces: enough for 4 shards, few enough to take seconds


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The first N embedded faces (scikit-image's lfw_subset) as PNG files a worker can read."""
    from skimage.data import lfw_subset

    d = tmp_path_factory.mktemp("cluster-photos")
    for i, img in enumerate(lfw_subset()[:N]):
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"face_{i:04d}.png")
    return d


@pytest.fixture(scope="module")
def one_thread():
    """torch with one thread here, as in each worker: codes are bit-identical only at equal thread counts."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def net():
    from facespace.models.registry import resolve_model

    return resolve_model(MODEL)


@pytest.fixture(scope="module")
def single(photos, net, one_thread, tmp_path_factory):
    """The single-process shard folder: the reference every cluster run must equal."""
    out = tmp_path_factory.mktemp("single") / "codes"
    encode_to_shards(net, [str(photos)], out, shard_size=SHARD)
    return out


@pytest.fixture(scope="module")
def cluster():
    """A running 2-worker cluster, joined by its address as `--cluster ADDRESS` would."""
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("the cluster engine is not installed: pip install 'facespace[cluster]'")
    import logging

    from distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR)
    client = Client(lc)
    yield lc.scheduler_address, client
    client.close()
    lc.close()


def same_folder(a, b) -> None:
    x, y = load_codes(a), load_codes(b)
    assert np.array_equal(x.codes, y.codes) and x.codes.dtype == np.float32
    assert x.sources == y.sources and x.names == y.names
    assert (a / "manifest.json").read_text() == (b / "manifest.json").read_text()


@needs_dask
@pytest.mark.slow  # worker processes import torch and load the model: seconds on an idle machine
def test_a_2_worker_local_cluster_writes_the_single_process_folder(photos, net, single, tmp_path):
    seen = []
    out = tmp_path / "codes"
    manifest = encode_on_cluster(net, [str(photos)], out, cluster="local:2", shard_size=SHARD, threads=1,
                                 progress=lambda d, n: seen.append((d, n)))
    assert manifest["n_shards"] == 4 and len(manifest["shards"]) == 4 and not manifest["failed"]
    assert seen[0] == (0, N) and seen[-1] == (N, N) and len(seen) == 5
    same_folder(out, single)
    assert len(load_codes(out)) == N


@needs_dask
@pytest.mark.slow  # worker processes import torch and load the model: seconds on an idle machine
def test_a_worker_killed_mid_job_is_replaced_and_the_codes_are_the_same(photos, net, single, cluster, tmp_path):
    address, client = cluster
    pids = client.run(os.getpid)  # worker address -> the worker's process (its nanny restarts it)
    killed = []

    def kill_one(done: int, total: int) -> None:
        if 0 < done < total and not killed:  # a shard is written and the others are in flight
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    out = tmp_path / "codes"
    encode_on_cluster(net, [str(photos)], out, cluster=address, shard_size=SHARD, threads=1, progress=kill_one)
    assert killed and killed[0] not in client.run(os.getpid).values()  # that worker is gone, a new one took over
    same_folder(out, single)


@needs_dask
@pytest.mark.slow  # worker processes import torch and load the model: seconds on an idle machine
def test_a_worker_dying_past_the_retries_fails_the_job_clearly_and_a_rerun_completes(photos, net, one_thread, cluster,
                                                                                    tmp_path):
    address, client = cluster
    out, ref = tmp_path / "codes", tmp_path / "ref"
    encode_to_shards(net, [str(photos)], ref, shard_size=4)

    def retries(n):
        def set_on(dask_scheduler):
            dask_scheduler.allowed_failures = n
        client.run_on_scheduler(set_on)

    def kill_one(done: int, total: int) -> None:
        if 0 < done < total and not killed:  # 12 shards on 2 workers: both hold one now
            killed.append(os.kill(sorted(client.run(os.getpid).values())[0], signal.SIGKILL))

    killed: list = []
    retries(0)  # as if the worker had died on its every try
    try:
        with pytest.raises(ClusterError, match="run the same command again"):
            encode_on_cluster(net, [str(photos)], out, cluster=address, shard_size=4, threads=1, progress=kill_one)
    finally:
        retries(3)
    assert 0 < len(json.loads((out / "manifest.json").read_text())["shards"]) < 12
    encode_on_cluster(net, [str(photos)], out, cluster=address, shard_size=4, threads=1)
    same_folder(out, ref)


@needs_dask
def test_the_cli_joins_a_cluster_by_its_address_and_reports_progress(photos, single, cluster, run_cli, tmp_path):
    address, _ = cluster
    code, out, err = run_cli("encode", photos, "--model", MODEL, "--out", tmp_path / "codes", "--cluster", address,
                             "--shard-size", SHARD)
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["format"] == "shards" and summary["count"] == N and summary["shards"] == 4
    assert f"{N}/{N} images" in err and "images/s" in err and "ETA" in err  # progress of the whole job
    same_folder(tmp_path / "codes", single)


@needs_dask
def test_a_model_without_a_name_is_sent_to_the_workers(photos, cluster, tmp_path):
    from facespace.models.pixels import PixelEncoder

    address, _ = cluster
    model = PixelEncoder(size=8, channels=1)  # built here, no name or file a worker could load it from
    encode_on_cluster(model, [str(photos)], tmp_path / "codes", cluster=address, shard_size=SHARD)
    encode_to_shards(model, [str(photos)], tmp_path / "ref", shard_size=SHARD)
    same_folder(tmp_path / "codes", tmp_path / "ref")


@needs_dask
@pytest.mark.slow  # worker processes import torch and load the model: seconds on an idle machine
def test_a_killed_driver_leaves_a_job_that_a_rerun_completes(photos, net, one_thread, cluster, tmp_path):
    address, _ = cluster
    out, ref = tmp_path / "codes", tmp_path / "ref"
    encode_to_shards(net, [str(photos)], ref, shard_size=1)  # an uninterrupted run, in this process
    cmd = [sys.executable, "-c", "from facespace.cli import main; main()", "encode", str(photos), "--model", MODEL,
           "--out", str(out), "--cluster", address, "--shard-size", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:  # kill it once a shard or more is on disk
        if any(out.glob("shard-*.done.json")):
            break
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    # each shard done left its record beside it (the manifest is written whole only at the end of a run)
    before = {r.name.split(".")[0]: json.loads(r.read_text()) for r in out.glob("shard-*.done.json")}
    assert 0 < len(before) < N, "the driver finished before it could be killed"
    assert len(json.loads((out / "manifest.json").read_text())["shards"]) < len(before)
    kept = {t: (out / r["file"]).stat().st_mtime_ns for t, r in before.items()}
    progress = []
    encode_on_cluster(net, [str(photos)], out, cluster=address, shard_size=1, threads=1,
                      progress=lambda d, n: progress.append(d))
    assert progress[0] == len(before)  # the rerun starts from the shards done
    assert len(progress) == 1 + N - len(before)  # and encodes only the missing ones
    assert all((out / f"{t}.npy").stat().st_mtime_ns == ns for t, ns in kept.items())
    same_folder(out, ref)


@needs_dask
def test_an_address_that_does_not_answer_is_a_clear_error_and_writes_nothing(photos, net, tmp_path):
    start = time.monotonic()
    with pytest.raises(ClusterError, match="no Dask scheduler answered"):
        encode_on_cluster(net, [str(photos)], tmp_path / "codes", cluster="tcp://127.0.0.1:9")
    with pytest.raises(ClusterError, match="not a scheduler address"):
        encode_on_cluster(net, [str(photos)], tmp_path / "codes", cluster="my-cluster")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "codes").exists()


def test_cluster_values_are_checked():
    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:x", "local", " "):
        with pytest.raises(ClusterError, match="local:N"):
            parse_cluster(bad)


def test_without_the_extra_cluster_names_the_pip_command_and_writes_nothing(photos, run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if `facespace[cluster]` were not installed
    code, out, err = run_cli("encode", photos, "--model", "pixels:8:grey", "--out", tmp_path / "codes",
                             "--cluster", "local:2")
    assert code == 2 and "pip install 'facespace[cluster]'" in err
    assert not (tmp_path / "codes").exists() and out == ""
    code, _, err = run_cli("encode", photos, "--model", "pixels:8:grey", "--out", tmp_path / "c.npy", "--cluster",
                           "local:2")
    assert code == 2 and "folder" in err and not (tmp_path / "c.npy").exists()
