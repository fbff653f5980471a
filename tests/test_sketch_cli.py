import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny synthetic data file and one tiny trained model for every command."""
    from facespace.cli import main

    d = tmp_path_factory.mktemp("sketch_cli")
    for args in (
        ["sketch", "synth", "--n", "60", "--out", d / "faces.npz"],
        ["sketch", "train", "--data", d / "faces.npz", "--out", d / "run", "--epochs", "1", "--enc-hidden", "8",
         "--dec-hidden", "16", "--code-size", "8", "--max-len", "80", "--no-progress"],
    ):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            assert e.code in (0, None)
    return d


def test_synth_and_train_outputs(run_dir):
    from facespace.data.sketch_formats import read_npz

    test = read_npz(run_dir / "faces.npz", split="test")
    assert len(test) == 6 and "mouth" in test.labels and test.label_names["eyes"][0] == "dot"
    for name in ("best.safetensors", "metrics.csv", "samples.png"):
        assert (run_dir / "run" / name).exists()


def test_train_prints_json(run_dir, run_cli, tmp_path):
    code, out, err = run_cli("sketch", "train", "--data", run_dir / "faces.npz", "--out", tmp_path / "r", "--epochs", "1",
                             "--enc-hidden", "4", "--dec-hidden", "4", "--code-size", "4", "--limit", "16", "--no-progress")
    assert code == 0, err
    info = json.loads(out)
    assert info["model"].endswith("best.safetensors") and np.isfinite(info["best_val_loss"])


def test_reconstruct_writes_grid_and_svgs(run_dir, run_cli, tmp_path):
    code, out, err = run_cli("sketch", "reconstruct", "--model", run_dir / "run", "--data", run_dir / "faces.npz",
                             "--n", "4", "--out", tmp_path / "r.png", "--svg-dir", tmp_path / "svg")
    assert code == 0, err
    info = json.loads(out)
    assert info["n"] == 6 and np.isfinite(info["loss"])
    assert Image.open(tmp_path / "r.png").size[0] > 0
    assert len(list((tmp_path / "svg").glob("*.svg"))) == 4


def test_cluster_prints_csv_and_gallery(run_dir, run_cli, tmp_path):
    code, out, err = run_cli("sketch", "cluster", "--model", run_dir / "run", "--data", run_dir / "faces.npz",
                             "--split", "train", "--method", "dbscan", "--min-samples", "3", "--gallery", tmp_path / "g")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "index,cluster" and len(lines) == 61
    labels = {int(line.split(",")[1]) for line in lines[1:]}
    pngs = sorted(p.name for p in (tmp_path / "g").glob("*.png"))
    want = [f"cluster_{c:03d}.png" for c in sorted(labels) if c >= 0] + (["noise.png"] if -1 in labels else [])
    assert pngs == sorted(want)


def test_bad_input_exits_2(run_dir, run_cli, tmp_path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"drawing": [[[0, 10], [0, 10]]]}\n{oops\n')
    code, _, err = run_cli("sketch", "train", "--data", bad, "--out", tmp_path / "r", "--strict", "--no-progress")
    assert code == 2 and "line 2: malformed JSON" in err
    np.savez(tmp_path / "x.npz", images=np.zeros(2))
    code, _, err = run_cli("sketch", "cluster", "--model", run_dir / "run", "--data", tmp_path / "x.npz")
    assert code == 2 and "no 'test' array" in err
    code, _, err = run_cli("sketch", "cluster", "--model", run_dir / "run", "--data", run_dir / "faces.npz", "--method", "kmeans")
    assert code == 2 and "unknown clustering method" in err
    code, _, err = run_cli("sketch", "reconstruct", "--model", tmp_path / "none.safetensors", "--data", run_dir / "faces.npz")
    assert code == 2 and "does not exist" in err
