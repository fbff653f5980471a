"""The web app under load: does /api/info still answer while a big request runs?

Serves `create_app` (PCA-16 on the embedded faces) on a free loopback port, then, for each heavy
request below, sends it from one thread while another asks /api/info every 50 ms, and records the
heavy request's status and time and /api/info's latencies:

- a 50 MB JSON body to /api/decode (refused with 413 before it is read);
- a 9 MB noise PNG to /api/search (decoded, resized, encoded, searched in a worker thread);
- a search with a 4000x3000 photo and face detection.

    .venv/bin/python benchmarks/web_load.py

Writes benchmarks/results/web_load.{json,md} with the machine, versions, load and command.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, content_type: str) -> tuple[int, float, int]:
    """`(status, seconds, reply bytes)` of one POST."""
    start = time.perf_counter()
    request = urllib.request.Request(url, data=body, headers={"content-type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, time.perf_counter() - start, len(r.read())
    except urllib.error.HTTPError as e:
        return e.code, time.perf_counter() - start, len(e.read())


def post_headers_only(host: str, port: int, path: str, length: int) -> tuple[int, float, int]:
    """Announce a `length`-byte JSON body, send none of it, and wait for the answer: a server that
    refuses before reading answers at once (a client sending all 50 MB first only sees the closed pipe)."""
    import http.client

    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.putrequest("POST", path)
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(length))
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, time.perf_counter() - start, len(body)


def multipart(field: str, filename: str, data: bytes, extra: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "facespaceLoad"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (extra or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def info_latencies_once(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url + "/api/info", timeout=30) as r:
        r.read()
    return time.perf_counter() - start


def info_latencies(url: str, stop: threading.Event) -> list[float]:
    """/api/info's latency every 50 ms until `stop` is set."""
    seen = []
    while not stop.is_set():
        seen.append(info_latencies_once(url))
        time.sleep(0.05)
    return seen


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    import uvicorn

    import facespace as fs
    from facespace.web import create_app

    work = Path(tempfile.mkdtemp())
    faces = fs.load_faces("embedded", size=32, progress=False)
    model = fs.train("pca", faces, code_size=16)
    fs.save_model(model, work / "pca.safetensors")
    index = fs.build_index(fs.load_model(work / "pca.safetensors"), faces)
    index.save(work / "faces.index")
    app = create_app(model=work / "pca.safetensors", index=work / "faces.index")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)

    rng = np.random.default_rng(0)
    noise = png((rng.random((1800, 1800, 3)) * 255).astype(np.uint8))
    photo = jpeg(np.clip(np.add.outer(np.linspace(40, 200, 3000), np.linspace(0, 40, 4000))[..., None]
                         + rng.normal(0, 8, (3000, 4000, 1)), 0, 255).repeat(3, axis=2).astype(np.uint8))
    heavy = [
        ("50 MB JSON body announced to /api/decode", lambda: post_headers_only("127.0.0.1", port, "/api/decode", 50 * 2**20)),
        (f"{len(noise) / 2**20:.1f} MB noise PNG to /api/search",
         lambda: post(url + "/api/search", *multipart("file", "noise.png", noise))),
        (f"4000x3000 photo ({len(photo) / 2**20:.1f} MB) to /api/search with detection",
         lambda: post(url + "/api/search", *multipart("file", "photo.png", photo, {"detect": "true"}))),
    ]
    idle = [info_latencies_once(url) for _ in range(20)]
    rows = []
    for label, send in heavy:
        stop = threading.Event()
        box: dict = {}
        poller = threading.Thread(target=lambda: box.update(lat=info_latencies(url, stop)))
        poller.start()
        time.sleep(0.2)
        status, seconds, size = send()
        stop.set()
        poller.join()
        lat = box["lat"]
        rows.append({"request": label, "status": status, "seconds": round(seconds, 3), "reply_bytes": size,
                     "info_calls": len(lat), "info_median_ms": round(1000 * statistics.median(lat), 1),
                     "info_max_ms": round(1000 * max(lat), 1)})
        print(rows[-1], flush=True)
    server.should_exit = True
    result = {
        "command": "python " + " ".join(["benchmarks/web_load.py", *sys.argv[1:]]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, load average {os.getloadavg()}",
        "versions": f"python {platform.python_version()}, numpy {np.__version__}, uvicorn {uvicorn.__version__}",
        "idle_info_median_ms": round(1000 * statistics.median(idle), 1), "rows": rows,
    }
    (RESULTS / "web_load.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# The web app under load", "", f"- command: `{result['command']}`", f"- date: {result['date']}",
          f"- machine: {result['machine']}", f"- versions: {result['versions']}", "",
          f"/api/info alone: median {result['idle_info_median_ms']} ms.", "",
          "| heavy request | status | its time s | reply bytes | /api/info calls meanwhile | median ms | max ms |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['request']} | {r['status']} | {r['seconds']} | {r['reply_bytes']} | {r['info_calls']} | "
           f"{r['info_median_ms']} | {r['info_max_ms']} |" for r in rows]
    (RESULTS / "web_load.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
