"""`facespace train | reconstruct | denoise | evaluate` end to end on a tiny image folder."""

import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """40 smooth 16x16 RGB PNGs in two person folders."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for i in range(40):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        tile = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
        Image.fromarray(tile).resize((16, 16), Image.NEAREST).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def conv_model(image_dir, tmp_path_factory):
    from facespace.training.recipes import train

    out = tmp_path_factory.mktemp("run") / "conv"
    train("conv", str(image_dir), out=out, size=16, code_size=4, epochs=1, width=4, batch_size=16, progress=False)
    return out


def test_train_pca_prints_a_json_summary(run_cli, image_dir, tmp_path):
    code, out, err = run_cli("train", "pca", "--data", image_dir, "--size", 16, "--code-size", 3, "--out", tmp_path / "p")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["kind"] == "pca" and summary["code_size"] == 3 and summary["heldout_mse"] > 0
    assert (tmp_path / "p" / "best.safetensors").exists()


def test_train_conv_options_reach_the_model(run_cli, image_dir, tmp_path):
    code, out, err = run_cli("train", "conv", "--data", image_dir, "--size", 16, "--code-size", 2, "--epochs", 1,
                             "--arch", "bn", "--code-activation", "linear", "--width", 4, "--flip", "--schedule",
                             "onecycle", "--batch-size", 8, "--threads", 1, "--augment", "max_shift=0.05,share=0.5",
                             "--out", tmp_path / "c")
    assert code == 0, err
    info = json.loads((tmp_path / "c" / "run.json").read_text())
    assert info["model_config"]["arch"] == "bn" and info["model_config"]["width"] == 4 and info["flip"] is True
    assert "max_shift=0.05," in info["augment"] and info["augment"].endswith("share=0.5")
    assert json.loads((tmp_path / "c" / "config.json").read_text())  # the loop's config, written


def test_train_conv_res_with_refinement_keeps_the_setting_in_the_checkpoint(run_cli, image_dir, tmp_path):
    from facespace.models.registry import load_model

    code, out, err = run_cli("train", "conv", "--data", image_dir, "--size", 16, "--code-size", 2, "--epochs", 1,
                             "--arch", "res", "--width", 4, "--code-activation", "linear", "--refine-steps", 3,
                             "--batch-size", 8, "--threads", 1, "--out", tmp_path / "r")
    assert code == 0, err
    model = load_model(tmp_path / "r" / "best.safetensors")
    assert (model.config.arch, model.config.refine_steps) == ("res", 3)
    code, _, err = run_cli("train", "conv", "--data", image_dir, "--size", 16, "--refine-steps", -1, "--out", tmp_path / "bad")
    assert code == 2 and "refine_steps must be >= 0" in err


def test_reconstruct_writes_a_grid(run_cli, conv_model, image_dir, tmp_path):
    files = sorted(image_dir.rglob("*.png"))[:3]
    code, out, err = run_cli("generate", "reconstruct", "--model", conv_model, *files, "--out", tmp_path / "grid.png")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 3 and result["mse"] > 0
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape[0] > grid.shape[1] / 3  # two rows of three tiles


def test_denoise_writes_input_noisy_and_output(run_cli, conv_model, image_dir, tmp_path):
    image = sorted(image_dir.rglob("*.png"))[0]
    code, out, err = run_cli("generate", "denoise", "--model", conv_model, image, "--noise", "gaussian:0.1", "--out", tmp_path / "d.png")
    assert code == 0, err
    result = json.loads(out)
    assert result["noise"] == "gaussian:0.1" and result["noisy_mse"] == pytest.approx(0.01, rel=0.5)
    assert (tmp_path / "d.png").exists()


def test_evaluate_prints_mse_and_psnr_on_the_test_split(run_cli, conv_model, image_dir):
    code, out, err = run_cli("models", "evaluate", "--model", conv_model, "--data", image_dir, "--noise", "gaussian:0.1")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_test"] == 4  # 10% of 40, the split recorded at training
    assert result["psnr"] == pytest.approx(10 * np.log10(1 / result["mse"]))
    assert result["noisy_mse"] > 0 and "denoised_mse" in result


def test_bad_input_exits_2_with_a_message(run_cli, conv_model, image_dir, tmp_path):
    code, _, err = run_cli("train", "gan", "--data", image_dir)
    assert code == 2 and "unknown model kind 'gan'" in err
    code, _, err = run_cli("train", "conv", "--data", image_dir, "--augment", "wobble=1", "--out", tmp_path / "w")
    assert code == 2 and "unknown augmentation 'wobble'" in err and not (tmp_path / "w").exists()
    code, _, err = run_cli("generate", "reconstruct", "--model", tmp_path / "missing.safetensors", sorted(image_dir.rglob("*.png"))[0])
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli("generate", "denoise", "--model", conv_model, sorted(image_dir.rglob("*.png"))[0], "--noise", "blur:2")
    assert code == 2 and "cannot read corruption" in err
    assert not (tmp_path / "denoised.png").exists()
