"""Encode a shard job on a cluster of Dask distributed workers: `facespace encode ... --cluster local:N|ADDRESS`.

The driver (this process) cuts the files into shards and owns the folder exactly as
`facespace.pipelines.export.shards.encode_to_shards` does (`open_shard_job`); each worker loads the
model once (by its built-in name or checkpoint path, which the workers must see) and encodes whole
shards, reading the images where they lie: paths on a shared folder, or URLs (`s3://`, `gs://`,
`https://`, `file://`, ...) through fsspec where the workers have it (`facespace.data.urls`); a file
a worker cannot read is listed in the manifest with the reason. The driver writes each shard file
and its record atomically as results come back, and the manifest at the end of the run. So the
folder equals the single-process one bit for bit when each process uses the same number of torch
threads (torch's CPU kernels split their sums by thread count: different counts differ in the last
bits, which `faces-ae`'s 20 refinement steps can grow: at most 0.017 over LFW's 13,233 photos), and a re-run after a kill of the driver encodes only the missing
shards. A worker that dies is replaced and its shard given to another worker (Dask retries a task 3
times); past that the job fails with a message and the shards done are kept.

A cluster to join: `dask scheduler` on one machine, `dask worker tcp://HOST:8786 --nworkers N --nthreads 1`
on each machine with facespace installed (one single-threaded process per core: the model's own
threads then do not fight over the cores).

Why Dask and not Ray: `benchmarks/results/cluster_engines.md`. The engine is the optional extra
`facespace[cluster]` and is imported only inside these functions; without it `--cluster` says which
pip command adds it.

Example:
    >>> encode_on_cluster(load_model("faces-ae"), ["photos/"], "codes/", cluster="local:2")  # doctest: +SKIP
    {'format': 'facespace-codes-shards', ...}
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from facespace.allocator import roomy_malloc
from facespace.errors import FacespaceError
from facespace.models.registry import resolve_model
from facespace.pipelines.encoding import model_spec
from facespace.pipelines.export.formats import ExportedCodes
from facespace.pipelines.export.shards import SHARD_SIZE, encode_part, open_shard_job

INSTALL = "pip install 'facespace[cluster]'"
CONNECT_TIMEOUT = 15.0  # seconds to reach a cluster address before giving up (the issue asks for under 30)


class ClusterError(FacespaceError):
    """A cluster that cannot be used: the extra missing, a bad `--cluster` value, an address that does
    not answer, or a shard the workers could not finish."""


def parse_cluster(cluster: str) -> tuple[str, Any]:
    """`"local:N"` -> `("local", N)`; anything else is a scheduler address -> `("address", address)`.

    Raises:
        ClusterError: `local:` without a positive whole number, or an empty value.
    """
    cluster = str(cluster).strip()
    if cluster.startswith("local"):
        n = cluster.partition(":")[2] or "0"
        if not n.isdigit() or int(n) < 1:
            raise ClusterError(f"--cluster {cluster!r}: give local:N with N workers (e.g. local:2), "
                               "or the address of a running scheduler (e.g. tcp://10.0.0.5:8786)")
        return "local", int(n)
    if not cluster:
        raise ClusterError("--cluster needs local:N or a scheduler address (e.g. tcp://10.0.0.5:8786)")
    return "address", cluster


def engine_modules():
    """`distributed`, or ClusterError naming the pip command (exit status 2, nothing written)."""
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--cluster needs the cluster engine (Dask distributed); install it with: {INSTALL}") from None
    return distributed


# the worker side: one model per worker process, loaded by the first shard it encodes
_LOADED: dict[str, Any] = {}


def worker_model(spec: Any, threads: int | None = None) -> Any:
    """The model a worker encodes with: loaded once per process from `spec` (a built-in name or a
    checkpoint path), or `spec` itself when it is a model object; torch set to `threads` threads."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    if not isinstance(spec, str):
        return spec
    if spec not in _LOADED:
        if not _LOADED:  # the first model this worker loads: Dask started it with MALLOC_TRIM_THRESHOLD_=65536
            roomy_malloc()
        try:
            _LOADED[spec] = resolve_model(spec)
        except FacespaceError as e:
            raise ClusterError(f"a worker could not load the model {spec!r}: {e}; the workers need facespace and a "
                               "model they can see (a built-in name, or a checkpoint on a shared folder)") from None
    return _LOADED[spec]


def encode_shard(spec: Any, part: list[str], options: dict[str, Any],
                 threads: int | None = None) -> tuple[ExportedCodes, dict[str, str]]:
    """Run on a worker: one shard's rows and unreadable files (`encode_part` with one process).

    Args:
        spec: the model's built-in name or checkpoint path (or the model object).
        part: the shard's image files, absolute paths the worker can read.
        options: detect, detector, crop, batch_size (as `encode_sources`).
        threads: torch threads in this worker (None: leave as the worker has it).
    """
    return encode_part(worker_model(spec, threads), part, **options, workers=1)


def start_client(cluster: str, *, threads: int | None = None, timeout: float = CONNECT_TIMEOUT):
    """A Dask client: on a new local cluster (`local:N`, one single-threaded worker process each) or
    joined to the scheduler at an address. Returns `(client, threads per worker or None)`.

    Raises:
        ClusterError: the extra is missing, the value is bad, or the address does not answer in `timeout` s.
    """
    kind, where = parse_cluster(cluster)
    engine_modules()
    import logging

    from distributed import Client, LocalCluster

    if kind == "local":
        lc = LocalCluster(n_workers=where, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR)
        client = Client(lc)
        return client, threads or max(1, (os.cpu_count() or 1) // where)
    _probe(where, timeout)
    try:
        return Client(where, timeout=timeout), threads
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"--cluster {where}: no Dask scheduler answered in {timeout:.0f} s ({e}); start one with "
                           "`dask scheduler` and `dask worker ADDRESS`, or use --cluster local:N") from None
    except Exception as e:  # a malformed address, a TLS address without its certificates, ...
        raise ClusterError(f"--cluster {where}: cannot join ({type(e).__name__}: {e}); give local:N or a scheduler "
                           "address such as tcp://10.0.0.5:8786") from None


def _probe(address: str, timeout: float) -> None:
    """Fail at once, before any Dask client exists, where a tcp address is malformed, its host unknown or
    nothing listens on its port; wait at most `timeout` s where the host does not answer at all."""
    import socket

    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return  # tls://, ucx://, ...: the client checks those itself
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--cluster {address}: not a scheduler address; give local:N or tcp://HOST:PORT "
                           "(e.g. tcp://10.0.0.5:8786)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except socket.gaierror as e:
        raise ClusterError(f"--cluster {address}: unknown host {host!r} ({e.strerror}); check the scheduler's "
                           "address") from None
    except OSError as e:
        why = "nothing listens on that port" if isinstance(e, ConnectionRefusedError) else \
            f"no answer in {timeout:.0f} s" if isinstance(e, TimeoutError) else str(e)
        raise ClusterError(f"--cluster {address}: no Dask scheduler answered ({why}); start one with "
                           "`dask scheduler` and `dask worker ADDRESS`, or use --cluster local:N") from None


def close_client(client: Any) -> None:
    """Close the client and, when this process started it, its local cluster."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def encode_on_cluster(
    model: Any,
    sources: list[str],
    out_dir: str | os.PathLike,
    *,
    cluster: str,
    shard_size: int = SHARD_SIZE,
    detect: bool = False,
    detector: str = "auto",
    crop: Any = "recorded",
    batch_size: int = 256,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """`encode_to_shards` with the shards encoded by the workers of a Dask cluster.

    Args:
        model: the model (the driver's copy names the job; workers load their own by name or path).
        sources: image folders (recursive), files, `.txt` lists or URLs (as `encode_to_shards`), at
            paths or URLs every worker can read.
        out_dir: the shard folder (written by this process only).
        cluster: `local:N` for a local cluster of N workers, or a scheduler address (`tcp://host:8786`).
        shard_size, detect, detector, crop, batch_size: as `encode_to_shards`.
        threads: torch threads per worker (default: the cores over N for `local:N`; a joined
            cluster's workers keep their own).
        progress: called with (files done, files in all) as each shard is written.
        client: a Dask client to use instead of `cluster` (left open).
        connect_timeout: seconds to reach a cluster address before giving up.

    Returns:
        The manifest, as `encode_to_shards` returns it.

    Raises:
        ClusterError: no engine, a bad cluster value or address, a model the workers cannot load, or a
            shard that failed on every try (the shards written are kept; re-run to finish).
        ExportError: the folder holds another job's shards.
    """
    job = open_shard_job(model, sources, out_dir, shard_size=shard_size, detect=detect, detector=detector, crop=crop)
    pending = job.pending()
    if not pending:
        return job.finish()  # a run killed after its last shard: the manifest from the records
    own = client is None
    if own:  # nothing is written before the cluster answers
        client, threads = start_client(cluster, threads=threads, timeout=connect_timeout)
    try:
        _run(client, model, job, pending, dict(detect=detect, detector=detector, crop=crop, batch_size=batch_size),
             threads, progress)
    finally:
        job.finish()  # the manifest whole, once per run (each shard wrote only its own record)
        if own:
            close_client(client)
    return job.manifest


def _run(client, model, job, pending, options, threads, progress) -> None:
    from distributed import as_completed

    spec = model_spec(model)
    if spec is not None and os.path.exists(spec):  # a checkpoint: the same file wherever the worker runs
        spec = os.path.abspath(spec)
    if spec is None:  # a model that lives only here (pixels:SIZE, one built in code): sent once to each worker
        spec = client.scatter(model, broadcast=True, hash=False)
    futures = {client.submit(encode_shard, spec, part, options, threads, key=f"facespace-shard-{k:05d}-{time.time_ns()}",
                             pure=False): k for k, part, _ in pending}
    done = job.files_done()
    if progress is not None:
        progress(done, job.files)  # the start: what a killed run left done
    try:
        for future in as_completed(futures):
            k = futures[future]
            try:
                rows, failed = future.result()
            except FacespaceError:
                raise
            except Exception as e:  # KilledWorker and the like: the engine gave up on this shard
                raise ClusterError(f"shard {k:05d} could not be encoded on the cluster ({type(e).__name__}: {e}); the "
                                   f"{len(job.manifest['shards'])} shards done are kept in {job.out}: run the same "
                                   "command again to encode the rest") from None
            job.write_shard(k, rows, failed)
            future.release()
            done += len(job.chunks[k][1])
            if progress is not None:
                progress(done, job.files)
    finally:
        client.cancel(list(futures))
