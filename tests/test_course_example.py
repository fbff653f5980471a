"""examples/course.py: the course notebook's steps run end to end on the embedded faces."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_the_course_example_writes_its_pictures(tmp_path):
    spec = importlib.util.spec_from_file_location("course", ROOT / "examples" / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    results = course.main(["--data", "embedded", "--epochs", "1", "--code-size", "8", "--out", str(tmp_path)])
    for name in ("pca", "conv", "denoise", "retrieval", "morph"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0, name
    assert json.loads((tmp_path / "results.json").read_text()) == results
    # PCA is the best linear reconstruction: a finite MSE well under the faces' own variance
    assert 0 < results["pca_test_mse"] < 0.05 and np.isfinite(results["conv_test_mse"])
    from PIL import Image

    pca = np.asarray(Image.open(tmp_path / "pca.png"), np.float32)
    assert pca.std() > 10  # faces over their reconstructions, not a blank picture
