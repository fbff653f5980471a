"""Output paths never destroy another kind of file: a model, an index, a gallery or a user's file."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.errors import FacespaceError
from facespace.files import file_kind
from facespace.index import Index
from facespace.models.pca import PCAAutoencoder
from facespace.models.registry import load_model, save_model
from facespace.people.gallery.gallery import Gallery


@pytest.fixture
def files(tmp_path):
    x = np.random.default_rng(0).random((12, 8, 8, 1), dtype=np.float32)
    pca = PCAAutoencoder(code_size=3).fit(x)
    save_model(pca, tmp_path / "model.safetensors")
    index = Index(3)
    index.add(pca.encode(x))
    index.save(tmp_path / "faces.index")
    with Gallery(tmp_path / "people.db", pca) as g:
        g.enroll("a", x[:3], force=True)
    (tmp_path / "notes.txt").write_text("mine")
    return tmp_path, pca, index


def test_file_kinds_are_told_apart(files):
    root, _, _ = files
    assert [file_kind(root / n) for n in ("model.safetensors", "faces.index", "people.db", "notes.txt")] == [
        "model", "index", "gallery", None]


@pytest.mark.parametrize("target", ["model.safetensors", "people.db", "notes.txt"])
def test_an_index_is_not_written_over_another_kind(files, target):
    root, _, index = files
    before = (root / target).read_bytes()
    with pytest.raises(FacespaceError, match="would destroy it: choose another name"):
        index.save(root / target)
    assert (root / target).read_bytes() == before


@pytest.mark.parametrize("target", ["faces.index", "people.db", "notes.txt"])
def test_a_model_is_not_written_over_another_kind(files, target):
    root, pca, _ = files
    before = (root / target).read_bytes()
    with pytest.raises(FacespaceError, match="would destroy it"):
        save_model(pca, root / target)
    assert (root / target).read_bytes() == before


def test_the_same_kind_is_rewritten_and_a_folder_is_refused_by_name(files):
    root, pca, index = files
    save_model(pca, root / "model.safetensors")  # a model saved again: allowed
    assert load_model(root / "model.safetensors").kind == "pca"
    index.save(root / "faces.index")
    (root / "folder").mkdir()
    with pytest.raises(FacespaceError, match="is a folder; give a file name for the index"):
        index.save(root / "folder")


def test_the_cli_refuses_an_index_over_a_model(files, run_cli):
    root, _, _ = files
    before = (root / "model.safetensors").read_bytes()
    code, _, err = run_cli("index", "build", "embedded", "--model", "pixels:8", "--out", root / "model.safetensors")
    assert code == 2 and "is a model file" in err and (root / "model.safetensors").read_bytes() == before
    code, _, err = run_cli("index", "build", "embedded", "--model", "pixels:8", "--out", root)
    assert code == 2 and "is a folder" in err
