"""The public verbs `train`, `encode` and `reconstruct` on small data."""

import json

import numpy as np
import pytest

from facespace.models.registry import load_model
from facespace.pipelines.codes import encode, reconstruct
from facespace.data import FaceSet
from facespace.errors import FacespaceError
from facespace.training.recipes import train

TINY = dict(width=4, batch_size=16, progress=False)


@pytest.fixture(scope="module")
def faces():
    """(60, 16, 16, 3) smooth random images: blurred noise, so PCA and convs have structure to find."""
    rng = np.random.default_rng(0)
    base = rng.random((60, 4, 4, 3)).astype(np.float32)
    return base.repeat(4, axis=1).repeat(4, axis=2)


@pytest.fixture(scope="module")
def conv_run(faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv")
    model = train("conv", faces, out=out, code_size=4, epochs=2, seed=1, **TINY)
    return model, out


def test_pca_run_folder_and_reload(faces, tmp_path):
    model = train("pca", faces, out=tmp_path / "pca", code_size=5, progress=False)
    assert model.kind == "pca" and model.encode(faces).shape == (60, 5)
    info = json.loads((tmp_path / "pca" / "run.json").read_text())
    assert info["split"] == {"test": 0.1, "split_seed": 42, "val": 0.05} and info["heldout_mse"] > 0
    assert (tmp_path / "pca" / "reconstructions.png").stat().st_size > 0
    loaded = load_model(tmp_path / "pca")  # the run folder's best.safetensors
    assert np.array_equal(loaded.encode(faces), model.encode(faces))
    assert loaded.checkpoint_info["extra"]["split"]["split_seed"] == 42


def test_conv_run_writes_checkpoints_metrics_and_grids(conv_run, faces):
    model, out = conv_run
    for name in ("best.safetensors", "last.safetensors", "metrics.csv", "config.json", "loss.png",
                 "reconstructions.png", "samples.png", "run.json"):
        assert (out / name).exists(), name
    assert model.kind == "conv" and model.code_size == 4
    loaded = load_model(out / "best.safetensors")
    assert np.array_equal(loaded.encode(faces), model.encode(faces))
    info = json.loads((out / "run.json").read_text())
    assert info["epochs_run"] == 2 and info["model_config"]["width"] == 4


def test_same_seed_and_data_give_the_same_model(faces):
    # a linear code: the seed's ReLU code of so tiny a network can die entirely (all-zero codes for
    # every seed), which would hide whether the seeds differ
    opts = dict(TINY, code_activation="linear")
    first = train("conv", faces, code_size=4, epochs=1, seed=1, **opts)
    again = train("conv", faces, code_size=4, epochs=1, seed=1, **opts)
    other = train("conv", faces, code_size=4, epochs=1, seed=2, **opts)
    x = faces[:5]
    assert np.array_equal(first.encode(x), again.encode(x))
    assert not np.allclose(other.encode(x), first.encode(x))


def test_linear_and_denoise_kinds(faces, tmp_path):
    lin = train("linear", faces, code_size=3, epochs=1, batch_size=16, progress=False)
    assert lin.kind == "linear" and reconstruct(lin, faces[:2]).shape == (2, 16, 16, 3)
    den = train("denoise", faces, out=tmp_path / "d", code_size=4, epochs=1, noise="gaussian:0.05+rect:1", **TINY)
    extra = load_model(tmp_path / "d").checkpoint_info["extra"]
    assert den.kind == "conv" and extra["noise"] == "gaussian:0.05+rect:1:0.5" and extra["objective"] == "denoise"


def test_augmented_training_changes_the_batches_but_never_validation(faces, tmp_path, monkeypatch):
    import facespace.training.objectives as objectives

    seen = []
    real = objectives.augment
    monkeypatch.setattr(objectives, "augment", lambda x, config: seen.append(config) or real(x, config))
    spec = "flip=0,max_shift=0.1,max_rotation=10,share=1"
    model = train("conv", faces, out=tmp_path / "a", code_size=4, epochs=1, augment=spec, **TINY)
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["augment"].startswith("flip=0,max_shift=0.1,max_rotation=10,") and info["augment"].endswith("share=1")
    steps = -(-int(len(faces) * 0.9 * 0.95) // TINY["batch_size"])  # training batches of one epoch (ceil)
    assert 1 <= len(seen) <= steps + 1 and all(c.max_shift == 0.1 for c in seen)  # training batches only
    plain = train("conv", faces, code_size=4, epochs=1, **TINY)
    assert not np.allclose(model.encode(faces[:4]), plain.encode(faces[:4]))  # same seed, other batches
    with pytest.raises(FacespaceError, match="unknown augmentation 'spin'"):
        train("conv", faces, augment="spin=3", epochs=1, **TINY)


def test_bad_requests_say_what_to_do(faces):
    with pytest.raises(FacespaceError, match="unknown model kind 'gan'; expected one of: pca, linear, conv, denoise, vae"):
        train("gan", faces)
    with pytest.raises(FacespaceError, match="unknown training option"):
        train("conv", faces, learning_rate=0.1)
    with pytest.raises(FacespaceError, match="noise option is for kind 'denoise'"):
        train("conv", faces, noise="gaussian:0.1", epochs=1, **TINY)
    with pytest.raises(FacespaceError, match="apply to conv models"):
        train("linear", faces, arch="bn", epochs=1, progress=False)
    bad = faces.copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(FacespaceError, match="NaN"):
        train("conv", bad, epochs=1, **TINY)
    with pytest.raises(FacespaceError, match="multiple of 16"):
        train("conv", np.zeros((10, 20, 20, 3), np.float32), epochs=1, **TINY)


def test_encode_and_reconstruct_take_arrays_facesets_and_paths(conv_run, faces, tmp_path):
    from PIL import Image

    model, _ = conv_run
    fs = FaceSet(images=faces[:3], names=None, paths=np.array(["a", "b", "c"]))
    assert np.array_equal(encode(model, fs), encode(model, faces[:3]))
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((faces[i] * 255).astype(np.uint8)).resize((40, 40), Image.NEAREST).save(paths[-1])
    codes = encode(model, paths)  # files of another size are resized to the model's
    assert codes.shape == (2, 4)
    out = reconstruct(model, [str(p) for p in paths])
    assert out.shape == (2, 16, 16, 3) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(FacespaceError, match="model takes"):
        encode(model, np.zeros((1, 32, 32, 3), np.float32))


def test_trained_model_carries_a_quality_reference_of_held_out_faces(tmp_path):
    from facespace.people.quality import face_quality

    rng = np.random.default_rng(1)
    many = rng.random((240, 4, 4, 3)).astype(np.float32).repeat(4, axis=1).repeat(4, axis=2)
    train("pca", many, out=tmp_path / "pca", code_size=5, progress=False)
    loaded = load_model(tmp_path / "pca")
    ref = loaded.checkpoint_info["extra"]["quality"]
    assert "24 held-out test faces" in json.dumps(ref)
    flat = np.full((1, 16, 16, 3), 0.5, np.float32)
    assert not face_quality(flat, model=loaded)[0].ok  # a flat image fails against that reference


@pytest.mark.parametrize("option, message", [({"code_size": 0}, "code_size .* at least 1; got 0"),
                                             ({"epochs": -1}, "epochs .* at least 1; got -1"),
                                             ({"size": 7}, "size .* at least 8 pixels; got 7")])
def test_settings_that_cannot_train_are_refused_for_every_kind(option, message):
    from facespace.errors import FacespaceError
    from facespace.training.recipes import train

    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    for kind in ("pca", "linear"):
        with pytest.raises(FacespaceError, match=message):
            train(kind, x, **{"code_size": 4, "epochs": 1, **option})


def test_no_test_part_reports_training_mse_not_a_held_out_one(tmp_path):
    import json

    from facespace.errors import DataWarning
    from facespace.training.recipes import train

    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    with pytest.warns(DataWarning, match="no test part"):
        train("pca", x, code_size=4, test=0, out=tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "heldout_mse" not in info and info["train_mse"] >= 0
    with pytest.warns(DataWarning, match="3 validation image"):  # 60 images: 54 train, 3 validation
        train("linear", np.concatenate([x, x[:20]]), code_size=4, epochs=1, progress=False)
    from facespace.errors import FacespaceError

    with pytest.raises(FacespaceError, match="only 1 training image"):
        train("pca", x[:1], code_size=1, test=0)


def test_a_run_folder_is_not_trained_over_and_a_resume_keeps_its_data(tmp_path):
    """#27.2 and #27.3: an existing run is refused unless --resume or --overwrite; a resume on other
    data is refused, naming what changed."""
    from facespace.errors import FacespaceError
    from facespace.training.recipes import train

    rng = np.random.default_rng(0)
    a, b = rng.random((60, 8, 8, 1), dtype=np.float32), rng.random((60, 8, 8, 1), dtype=np.float32)
    run = tmp_path / "run"
    train("linear", a, code_size=4, epochs=2, out=run, progress=False)
    best = (run / "best.safetensors").read_bytes()
    with pytest.raises(FacespaceError, match="already holds a run .*--resume.*--overwrite"):
        train("linear", a, code_size=4, epochs=1, out=run, progress=False)
    assert (run / "best.safetensors").read_bytes() == best  # nothing was changed
    folder_a, folder_b = tmp_path / "a", tmp_path / "b"
    from PIL import Image

    for folder, x in ((folder_a, a), (folder_b, b)):
        folder.mkdir()
        for i, img in enumerate(x):
            Image.fromarray((img[..., 0] * 255).astype(np.uint8)).save(folder / f"p{i:02d}.png")
    run2 = tmp_path / "run2"
    train("linear", str(folder_a), code_size=4, epochs=1, out=run2, progress=False, size=8, grayscale=True, crop=None)
    with pytest.raises(FacespaceError, match="cannot resume .* with a different data"):
        train("linear", str(folder_b), code_size=4, epochs=2, out=run2, progress=False, size=8, grayscale=True,
              crop=None, resume=True)
    train("linear", a, code_size=4, epochs=1, out=run, progress=False, overwrite=True)  # asked for: replaced
    assert (run / "best.safetensors").read_bytes() != best
