"""The built-in models that ship in the package: they load by name, encode the embedded faces to
finite codes, match the fingerprints their cards recorded, and fit the size budget; bad names and
altered files are refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facespace.errors import CheckpointError
from facespace.models import registry
from facespace.models.registry import BUILTIN_DIR, builtin_card, builtin_names, extra_names, load_model

SHIPPED = ("faces-id", "faces-ae", "faces-denoise", "faces-vae")
MAX_TOTAL_BYTES = 40 * 1024 * 1024


def test_what_ships_fits_the_budget_and_every_file_has_a_card():
    files = sorted(BUILTIN_DIR.glob("*.safetensors"))
    assert {f.stem for f in files} == set(builtin_names())
    assert set(builtin_names()) <= set(SHIPPED)
    assert sum(f.stat().st_size for f in files) <= MAX_TOTAL_BYTES


@pytest.mark.parametrize("name", builtin_names())
def test_a_builtin_loads_by_name_encodes_and_matches_its_card(name):
    from facespace.checkpoint import weights_hash
    from facespace.data import load_faces
    from facespace.pipelines.codes import encode

    card = builtin_card(name)
    model = load_model(name)
    assert model.kind == card["kind"] and weights_hash(model) == card["fingerprint"]
    assert list(model.image_shape) == card["image_shape"] and model.code_size == card["code_size"]
    for key in ("training_data", "recipe", "rebuild", "honest_numbers", "caveat"):
        assert card[key], key
    size, _, channels = model.image_shape
    faces = load_faces("embedded", size=size, grayscale=channels == 1, progress=False)
    codes = encode(model, faces.images[:16])
    assert codes.shape == (16, card["code_size"]) and np.isfinite(codes).all()
    assert model.checkpoint_info["builtin"] == name


def test_an_unknown_name_lists_the_builtin_names():
    with pytest.raises(CheckpointError, match="unknown model 'faces-nope'; built-in models:"):
        load_model("faces-nope")


def test_a_path_that_exists_wins_over_a_builtin_name(tmp_path, monkeypatch):
    from facespace.models.pca import PCAAutoencoder
    from facespace.models.registry import save_model

    monkeypatch.chdir(tmp_path)
    pca = PCAAutoencoder(code_size=2).fit(np.random.default_rng(0).random((10, 4, 4, 1), dtype=np.float32))
    save_model(pca, tmp_path / "faces-id")  # a file named like a built-in, in the working folder
    assert load_model("faces-id").kind == "pca"


def test_an_altered_builtin_file_is_refused(tmp_path, monkeypatch):
    from facespace.models.pca import PCAAutoencoder
    from facespace.models.registry import save_model

    x = np.random.default_rng(0).random((10, 4, 4, 1), dtype=np.float32)
    save_model(PCAAutoencoder(code_size=2).fit(x), tmp_path / "tiny.safetensors")
    good = load_model(tmp_path / "tiny.safetensors")
    from facespace.checkpoint import weights_hash

    (tmp_path / "tiny.json").write_text(json.dumps({"fingerprint": weights_hash(good), "kind": "pca"}))
    monkeypatch.setattr(registry, "BUILTIN_DIR", tmp_path)
    assert load_model("tiny").checkpoint_info["builtin"] == "tiny"
    shutil.copyfile(tmp_path / "tiny.safetensors", tmp_path / "orig.safetensors")
    save_model(PCAAutoencoder(code_size=2).fit(x[::-1] * 0.5), tmp_path / "tiny.safetensors")  # other weights
    with pytest.raises(CheckpointError, match="does not match its recorded fingerprint"):
        load_model("tiny")


def test_models_lists_and_shows_the_cards(run_cli):
    code, out, _ = run_cli("models")
    assert code == 0 and out.splitlines()[0].startswith("name,kind,image_shape")
    assert len(out.splitlines()) == 1 + len(builtin_names()) + len(extra_names())
    code, _, err = run_cli("models", "show", "faces-nope")
    assert code == 2 and "built-in models:" in err


def test_the_identity_model_calls_a_face_too_small_by_its_members_resolution_not_its_input_side():
    from facespace.people.quality import face_quality

    model = load_model("faces-id")
    side = model.min_face_side
    assert 48 <= side < model.image_shape[0]  # each member's box at its own input size: below the 160-px input
    x = np.full((2, *model.image_shape), 0.5, np.float32)
    x[:, ::4] = 0.9  # some texture
    q = face_quality(x, model=model, sizes=[92, side - 20])
    assert not any(r.startswith("too small") for r in q[0].reasons)  # a 92x112 portrait is big enough
    assert any(r.startswith("too small") for r in q[1].reasons)


def test_builtin_bad_requests_end_to_end(run_cli, tmp_path):
    """The identity model asked to decode, and a model whose input differs from the index's: exit 2,
    a message that names the fix, nothing written."""
    from PIL import Image
    from skimage.data import lfw_subset

    faces = tmp_path / "faces"
    faces.mkdir()
    for i, img in enumerate(lfw_subset()[:6]):
        Image.fromarray((img * 255).astype(np.uint8)).resize((100, 100)).save(faces / f"f{i}.png")
    a, b = faces / "f0.png", faces / "f1.png"
    code, _, err = run_cli("generate", "morph", a, b, "--model", "faces-id", "--out", tmp_path / "m.png")
    assert code == 2 and "decoder" in err and not (tmp_path / "m.png").exists()
    assert run_cli("index", "build", faces, "--model", "faces-ae", "--out", tmp_path / "ae.index")[0] == 0
    code, out, err = run_cli("index", "search", tmp_path / "ae.index", a, "--model", "faces-id")
    assert code == 2 and "model" in err and "index" in err and not out
