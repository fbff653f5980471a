"""Run reports (`facespace report`) and the end of the demo (report + `facespace serve` command)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shlex

import numpy as np
import pytest
from PIL import Image

from facespace.errors import DataError, DataWarning, FacespaceError
from facespace.grid import save_png
from facespace.reports.run_report import write_report

HOSTILE = '<script>alert("x")</script> & co'
URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def decoded_pictures(html: str) -> list[np.ndarray]:
    """Every inline PNG of a page, decoded (fails if one does not decode)."""
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in URI.findall(html)]


def section(html: str, heading: str) -> str:
    """The HTML from `<h2>heading</h2>` to the next `<h2>`."""
    start = html.index(f"<h2>{heading}</h2>")
    end = html.find("<h2>", start + 4)
    return html[start : end if end >= 0 else len(html)]


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r'(src|href)="(?!data:)', html), "a picture or link that is not inline"


def faces(n: int = 40, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth random images: a few blobs each, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        cy, cx, w = rng.random(3) * [1, 1, 0.3] + [0, 0, 0.1]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * w**2))
        out[i] = np.clip(blob[..., None] * rng.random(3) + 0.1, 0, 1)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A real 3-epoch conv run and a PCA run (run.json only), trained once for the module."""
    from facespace.training.recipes import train

    root = tmp_path_factory.mktemp("runs")
    x = faces()
    train("conv", x, size=16, code_size=4, epochs=3, batch_size=16, out=root / "conv", progress=False, seed=0)
    train("pca", x, size=16, code_size=4, out=root / "pca", progress=False)
    return root


@pytest.fixture
def fake_run(tmp_path):
    """A hand-written run folder with known values, hostile strings and one result of each kind."""
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    config = {"train": {"epochs": 3, "lr": 0.0025, "optimizer": "adam"}, "kind": "conv",
              "model_config": {"arch": HOSTILE, "code_size": 7}, "n_train": 11}
    (run / "config.json").write_text(json.dumps(config))
    (run / "run.json").write_text(json.dumps({"kind": "conv", "data": HOSTILE, "heldout_mse": 0.0123,
                                              "heldout_psnr": 19.1}))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "lr", "train_loss", "val_loss", "train_kl", "val_kl"])
        for e, (tl, vl, kl) in enumerate([(0.5, 0.4, 3.0), (0.25, 0.2, 2.0), (0.125, 0.1, 1.0)], start=1):
            w.writerow([e, 10 * e, 0.001 * e, tl, vl if e != 2 else "", kl, kl + 0.5])
    save_png(np.linspace(0, 1, 6 * 8 * 3).reshape(6, 8, 3), run / "reconstructions.png")
    (run / "eval" / "retrieval.json").write_text(json.dumps(
        {"title": "recall at k", "note": HOSTILE, "columns": ["k", "recall"], "rows": [[1, 0.625], [10, 0.875]]}))
    (run / "eval" / "verification.jsonl").write_text('{"fold": 1, "accuracy": 0.8125}\n{"fold": 2, "accuracy": 0.75}\n')
    save_png(np.zeros((5, 7, 3)), run / "eval" / "roc.png")
    (run / "eval" / "clusters.csv").write_text("cluster,size,purity\n0,12,0.9375\n1,4,0.5\n")
    (run / "eval" / "timing.json").write_text(json.dumps({"encode": {"seconds": 1.5, "per_s": 640}}))
    (run / "eval" / "log.txt").write_text("not a result")
    return run


def test_report_of_a_real_conv_run(runs):
    run = runs / "conv"
    path = write_report(run)
    assert path == run / "report.html"
    html = path.read_text()
    assert_self_contained(html)
    config = json.loads((run / "config.json").read_text())
    conf = section(html, "Configuration")
    for key in ("train.batch_size", "train.optimizer", "model_config.code_size", "model_config.arch", "n_train"):
        assert f"<td>{key}</td>" in conf
    assert f'<td class="num">{config["n_train"]}</td>' in conf and "<td>adam</td>" in conf
    metrics = section(html, "Metrics per epoch")
    assert metrics.count("<tr>") - 1 == 3  # one row per epoch under the header
    first_loss = float(next(csv.DictReader(open(run / "metrics.csv")))["train_loss"])
    assert f"{first_loss:.4g}" in metrics
    test = section(html, "Test split")
    assert f"{json.loads((run / 'run.json').read_text())['heldout_mse']:.5g}" in test
    pictures = decoded_pictures(html)
    assert len(pictures) == 3  # loss curves, reconstructions.png, samples.png
    on_disk = np.asarray(Image.open(run / "reconstructions.png").convert("RGB"))
    assert any(p.shape == on_disk.shape and np.array_equal(p, on_disk) for p in pictures)
    assert "<td>best.safetensors</td>" in section(html, "Checkpoints")


def test_report_of_a_pca_run_has_no_epochs(runs, tmp_path):
    path = write_report(runs / "pca", tmp_path / "sub" / "pca.html")
    html = path.read_text()
    assert path == tmp_path / "sub" / "pca.html" and not (runs / "pca" / "report.html").exists()
    assert "<h2>Summary</h2>" in html and "<h2>Test split</h2>" in html and "<td>pca</td>" in html
    assert "Metrics per epoch" not in html and "Loss curves" not in html and "Configuration" not in html
    assert len(decoded_pictures(html)) == 1  # reconstructions.png


def test_known_content_escaping_and_result_sections(fake_run):
    html = write_report(fake_run).read_text()
    assert_self_contained(html)
    assert "<script>" not in html and html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co") == 3
    conf = section(html, "Configuration")
    assert '<td>train.lr</td><td class="num">0.0025</td>' in conf and '<td class="num">7</td>' in conf
    rows = section(html, "Metrics per epoch").split("<tr>")[2:]
    assert len(rows) == 3
    assert '<td class="num">0.25</td><td></td>' in rows[1]  # epoch 2 had no validation: a blank cell
    headings = re.findall(r"<h2>([^<]+)</h2>", html)
    results = ["Retrieval", "Verification", "Clustering", "More results"]
    assert [h for h in headings if h in results] == results
    assert "<h3>recall at k</h3>" in html and '<td class="num">0.875</td>' in section(html, "Retrieval")
    verification = section(html, "Verification")
    assert "<h3>verification.jsonl</h3>" in verification and '<td class="num">0.8125</td>' in verification
    assert "roc.png" in verification
    assert '<td class="num">0.9375</td>' in section(html, "Clustering")
    assert '<td>encode.per_s</td><td class="num">640</td>' in section(html, "More results")
    assert "log.txt" not in html and "Notes" not in html
    pictures = decoded_pictures(html)
    assert any(p.shape == (5, 7, 3) and not p.any() for p in pictures)  # roc.png, pixel for pixel
    assert any(p.shape[0] > 100 for p in pictures)  # the redrawn loss curves (loss, kl, lr panels)


def test_loss_png_is_used_without_metrics(fake_run):
    (fake_run / "metrics.csv").unlink()
    save_png(np.full((9, 4, 3), 0.5), fake_run / "loss.png")
    html = write_report(fake_run).read_text()
    shapes = [p.shape for p in decoded_pictures(section(html, "Loss curves"))]
    assert shapes == [(9, 4, 3)] and "Metrics per epoch" not in html


def test_damaged_files_in_the_run_become_notes(fake_run):
    (fake_run / "eval" / "retrieval.json").write_text("{not json")
    (fake_run / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.warns(DataWarning):
        html = write_report(fake_run).read_text()
    notes = section(html, "Notes")
    assert "retrieval.json" in notes and "samples.png" in notes
    assert "Retrieval" not in re.findall(r"<h2>([^<]+)</h2>", html)


def test_bad_run_folders_raise_and_write_nothing(tmp_path, fake_run):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for bad, words in ((tmp_path / "missing", "does not exist"), (tmp_path / "file.txt", "not a run folder"),
                       (tmp_path / "empty", "no config.json or run.json")):
        with pytest.raises(FacespaceError, match=words):
            write_report(bad)
    (fake_run / "config.json").write_text("[1, 2")
    with pytest.raises(FacespaceError, match="config.json is damaged"):
        write_report(fake_run)
    with pytest.raises(FacespaceError, match="is a folder"):
        write_report(tmp_path / "empty", tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if "report" in p.name or p.suffix == ".tmp") == []


def test_cli_report_prints_the_path_and_takes_extras(run_cli, fake_run, tmp_path):
    table = tmp_path / "people.json"
    table.write_text(json.dumps([{"name": "Ada", "rank1": 0.5}, {"name": "Bo", "rank1": 1}]))
    save_png(np.ones((3, 3, 3)), tmp_path / "roc_extra.png")
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).save(tmp_path / "photo.jpg")
    out = tmp_path / "r.html"
    code, stdout, stderr = run_cli("report", fake_run, "--out", out, "--extra", table, "--extra",
                                   tmp_path / "roc_extra.png", "-e", tmp_path / "photo.jpg")
    assert code == 0, stderr
    assert stdout == f"{out}\n" and out.exists() and not (fake_run / "report.html").exists()
    html = out.read_text()
    assert "<td>Ada</td>" in section(html, "More results") and "roc_extra.png" in section(html, "Verification")
    assert any(p.shape == (4, 6, 3) for p in decoded_pictures(html))  # the JPEG, as PNG
    code, stdout, _ = run_cli("report", fake_run)
    assert code == 0 and stdout == f"{fake_run / 'report.html'}\n"


def test_cli_report_bad_input_exits_2_and_writes_nothing(run_cli, fake_run, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "fake.png").write_bytes(b"not a png")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in fake_run.rglob("*"))
    cases = [
        (("report", tmp_path / "missing"), "does not exist"),
        (("report", tmp_path / "empty"), "not a training run folder"),
        (("report", fake_run, "--extra", tmp_path / "nope.json"), "does not exist"),
        (("report", fake_run, "--extra", tmp_path / "notes.txt"), "unknown type '.txt'"),
        (("report", fake_run, "--extra", tmp_path / "broken.json"), "not valid JSON"),
        (("report", fake_run, "--extra", tmp_path / "fake.png"), "cannot show the picture"),
    ]
    for args, words in cases:
        code, stdout, stderr = run_cli(*args)
        assert code == 2 and stdout == "" and stderr.startswith("error: ") and words in stderr, (args, stderr)
    assert sorted(p.name for p in fake_run.rglob("*")) == before
    assert not (tmp_path / "empty" / "report.html").exists()


def test_extras_raise_data_error(fake_run, tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="holds no table"):
        write_report(fake_run, extras=[tmp_path / "list.json"])
    assert not (fake_run / "report.html").exists()


def test_demo_ends_with_a_report_and_the_serve_command(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli("demo", "--train", "--out", "outputs/demo", "--epochs", "2")
    assert code == 0, stderr
    demo = tmp_path / "outputs" / "demo"
    serve = stdout.strip().splitlines()[-1]
    model, index = "outputs/demo/conv-run/best.safetensors", "outputs/demo/embedded.index"
    assert serve == f"facespace serve --model {model} --index {index}"  # paths as typed, from the working folder
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["serve"] == serve and summary["outputs"]["report"] == "outputs/demo/report.html"
    assert all((tmp_path / p).exists() for p in summary["outputs"].values())
    html = (demo / "report.html").read_text()
    assert_self_contained(html)
    assert "<td>onecycle</td>" in section(html, "Configuration")  # the demo's conv recipe
    assert section(html, "Metrics per epoch").count("<tr>") - 1 == 2
    retrieval = json.loads((demo / "conv-run" / "eval" / "retrieval.json").read_text())
    assert [r[:2] for r in retrieval["rows"]] == [["pca", "l2"], ["pca", "cosine"], ["conv", "l2"], ["conv", "cosine"]]
    assert all(0 <= v <= 1 for r in retrieval["rows"] for v in r[2:])
    assert "Retrieval" in html and "<td>cosine</td>" in section(html, "Retrieval")
    assert len(decoded_pictures(html)) == 5  # loss curves, reconstructions, samples, comparison grid, morph

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facespace.web import create_app

    args = shlex.split(serve)
    app = create_app(model=args[args.index("--model") + 1], index=args[args.index("--index") + 1])
    info = TestClient(app).get("/api/info").json()
    assert info["index_size"] == 200 and info["model_kind"] == "conv" and info["code_size"] == 16


def test_the_demo_runs_the_builtin_models(run_cli, tmp_path, monkeypatch):
    """`make demo`: neighbours and a morph with faces-ae, two verifications and a gallery with faces-id, one
    report page, and the serve command on stdout."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli("demo", "--out", "outputs/demo")
    assert code == 0, stderr
    demo = tmp_path / "outputs" / "demo"
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["models"] == {"autoencoder": "faces-ae", "identity": "faces-id"}
    moved, other = summary["verification"]
    assert moved["same"] is True and other["same"] is False and moved["distance"] < other["distance"]
    known, stranger = summary["gallery"]["answers"]
    assert known["name"] == "person-03" and stranger["name"] == "unknown"
    assert summary["neighbours_that_are_faces"] > 0.5
    html = (demo / "report.html").read_text()
    assert "Identity gallery (faces-id)" in html and html.count("<img") >= 2
    assert stdout.strip().splitlines()[-1].startswith("facespace serve --index")
