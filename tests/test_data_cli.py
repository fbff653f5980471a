"""`facespace info SOURCE`."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image


def test_info_on_a_folder(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FACESPACE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "lfw"
    for name, k in {"Ann_Lee": 2, "Bo_Wu": 1}.items():
        (root / name).mkdir(parents=True)
        for i in range(1, k + 1):
            Image.fromarray(np.full((250, 250, 3), 40 * i, np.uint8)).save(root / name / f"{name}_{i:04d}.jpg")
    code, out, err = run_cli("data", "info", root, "--size", "16", "--json")
    assert code == 0, err
    assert "decoding 3 images" in err  # the progress bar goes to stderr; stdout is one JSON object
    report = json.loads(out)
    assert report["images"] == 3 and report["people"] == 2 and report["people_with_2_or_more"] == 1
    assert report["image_size"] == "16x16x3" and report["original_size"] == "250x250"
    assert report["cache"].startswith(str(tmp_path / "cache")) and report["cache"].endswith(".npy")
    code, out, _ = run_cli("data", "info", root, "--size", "8", "--grayscale", "--no-cache")
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert code == 0 and lines["image_size"] == "8x8x1" and lines["cache"] == "not cached"


def test_info_embedded_and_errors(run_cli, tmp_path):
    code, out, _ = run_cli("data", "info", "embedded", "--json")
    report = json.loads(out)
    assert code == 0 and report["images"] == 200 and report["people"] == 0 and report["is_face"] == 100
    code, out, err = run_cli("data", "info", tmp_path / "nowhere")
    assert code == 2 and out == "" and "error:" in err and "nowhere: no such file or folder" in err
    code, _, err = run_cli("data", "info", "embedded", "--crop", "1,2")
    assert code == 2 and "four numbers" in err
