"""Generation pipelines (morph, vary, sample, denoise, fill in) and their CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facespace.pipelines import generation as gen
from facespace.models.registry import save_model
from facespace.errors import FacespaceError
from facespace.models.pca import PCAAutoencoder
from facespace.models.vae import VAE, VAEConfig


@pytest.fixture(scope="module")
def faces():
    from facespace.data import load_faces

    return np.asarray(load_faces("embedded", size=16, progress=False).images[:100])  # the faces half


@pytest.fixture(scope="module")
def pca(faces):
    return PCAAutoencoder(code_size=8).fit(faces)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VAE(VAEConfig(size=16, channels=3, code_size=4, width=4)).eval()


class EncoderOnly:
    """A verification-style model: codes, no decoder."""

    kind = "verifier"
    image_shape = (16, 16, 3)
    code_size = 4

    def encode(self, images, *, batch_size=256):
        return np.zeros((len(images), 4), np.float32)


def clipped_decode(model, z):
    return np.clip(model.decode(np.asarray(z, np.float32)), 0, 1)


@pytest.mark.parametrize("which", ["pca", "vae"])
def test_morph_ends_are_the_reconstructions(which, faces, pca, vae):
    model = pca if which == "pca" else vae
    a, b = faces[0], faces[5]
    strip = gen.morph(model, a, b, steps=5)
    assert strip.shape == (5, 16, 16, 3) and strip.dtype == np.float32
    np.testing.assert_allclose(strip[0], clipped_decode(model, model.encode(a[None]))[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], clipped_decode(model, model.encode(b[None]))[0], atol=1e-5)


def test_linear_morph_midpoint_is_the_decoded_mean_code(faces, pca):
    a, b = faces[1], faces[2]
    strip = gen.morph(pca, a, b, steps=7)
    mid = (pca.encode(a[None]) + pca.encode(b[None])) / 2
    np.testing.assert_allclose(strip[3], clipped_decode(pca, mid)[0], atol=1e-5)
    # and a linear model's morph is linear in pixels wherever nothing was clipped
    raw = pca.decode(pca.encode(np.stack([a, b])))
    t = 1 / 6
    expect = raw[0] * (1 - t) + raw[1] * t
    inside = (expect > 0.01) & (expect < 0.99)
    np.testing.assert_allclose(strip[1][inside], expect[inside], atol=1e-5)


def test_vary_strength_zero_is_the_reconstruction(faces, pca):
    out = gen.vary(pca, faces[3], n=4, strength=0.0)
    recon = clipped_decode(pca, pca.encode(faces[3][None]))
    assert out.shape == (4, 16, 16, 3)
    for v in out:
        np.testing.assert_allclose(v, recon[0], atol=1e-6)


def test_vary_is_seeded_and_scales_with_strength(faces, pca):
    a = gen.vary(pca, faces[3], n=6, strength=0.5, seed=1)
    np.testing.assert_array_equal(a, gen.vary(pca, faces[3], n=6, strength=0.5, seed=1))
    assert not np.allclose(a, gen.vary(pca, faces[3], n=6, strength=0.5, seed=2))
    recon = clipped_decode(pca, pca.encode(faces[3][None]))
    small = np.abs(gen.vary(pca, faces[3], n=6, strength=0.1, seed=1) - recon).mean()
    big = np.abs(gen.vary(pca, faces[3], n=6, strength=1.0, seed=1) - recon).mean()
    assert 0 < small < big


def test_code_spread_sources(faces, pca, vae):
    # PCA: the std along each axis is sqrt(explained variance), which its training codes show too
    measured = gen.code_spread(pca, faces)
    np.testing.assert_allclose(gen.code_spread(pca), measured, rtol=0.02)
    np.testing.assert_allclose(gen.code_spread(vae), np.ones(4))  # the VAE's prior
    stats = gen.code_stats(vae, faces)
    vae.checkpoint_info = {"extra": stats}
    try:
        np.testing.assert_allclose(gen.code_spread(vae), stats["code_std"], rtol=1e-6)
    finally:
        vae.checkpoint_info = {}
    np.testing.assert_array_equal(gen.code_spread(pca, np.arange(8.0)), np.arange(8.0, dtype=np.float32))
    with pytest.raises(FacespaceError, match="8 finite std"):
        gen.code_spread(pca, np.ones(3))


def test_sample_vae_prior_and_plain_gaussian(faces, pca, vae):
    a = gen.sample(vae, 5, seed=3)
    assert a.shape == (5, 16, 16, 3) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, gen.sample(vae, 5, seed=3))
    assert not np.allclose(a, gen.sample(vae, 5, seed=4))
    with pytest.raises(FacespaceError, match="no prior"):
        gen.sample(pca, 3)
    s = gen.sample(pca, 3, seed=0, codes=pca.encode(faces))
    assert s.shape == (3, 16, 16, 3)
    # temperature 0 on a fitted Gaussian decodes the mean code
    np.testing.assert_allclose(
        gen.sample(pca, 2, seed=0, codes=pca.encode(faces), temperature=0.0)[0],
        clipped_decode(pca, pca.encode(faces).mean(0, keepdims=True))[0], atol=1e-5,
    )


def test_denoise_removes_noise(faces, pca):
    from facespace.data.corruptions import parse_corruption

    noisy = parse_corruption("gaussian:0.1").apply(faces[:20], seed=0)
    clean = gen.denoise(pca, noisy)
    noisy_mse = np.mean((noisy - faces[:20]) ** 2)
    # PCA keeps 8 of 768 noise directions: the output sits by the clean faces' reconstructions
    assert np.mean((clean - clipped_decode(pca, pca.encode(faces[:20]))) ** 2) < 0.1 * noisy_mse


def test_fill_in_recovers_an_image_the_linear_model_explains(faces, pca):
    target = pca.decode(pca.encode(faces[4][None]))[0]  # exactly in PCA's subspace
    target = np.clip(target, 0, 1)
    target = pca.decode(pca.encode(target[None]))[0]  # clipping moved it; project once more
    mask = gen.box_mask((16, 16), (5, 10, 11, 14))
    damaged = np.where(mask[..., None], 0.0, target)
    filled = gen.fill_in(pca, damaged, mask, iterations=300)
    np.testing.assert_array_equal(filled[~mask], np.clip(damaged, 0, 1)[~mask])  # known pixels untouched
    start = np.abs(np.where(mask[..., None], target[~mask].mean(0), target) - target)[mask].max()
    err = np.abs(filled - np.clip(target, 0, 1))[mask].max()
    assert err < 0.05 * start


def test_bad_input(faces, pca):
    with pytest.raises(FacespaceError, match="image_a is 16x16x3 but image_b is 8x8x3"):
        gen.morph(pca, faces[0], faces[1][:8, :8])
    with pytest.raises(FacespaceError, match="steps must be a whole number >= 2"):
        gen.morph(pca, faces[0], faces[1], steps=1)
    for strength in (-0.1, 3.5, float("nan")):
        with pytest.raises(FacespaceError, match="strength must be between 0 and 3"):
            gen.vary(pca, faces[0], strength=strength)
    with pytest.raises(FacespaceError, match="n \\(number of variations\\)"):
        gen.vary(pca, faces[0], n=0)
    for call in (
        lambda m: gen.morph(m, faces[0], faces[1]),
        lambda m: gen.vary(m, faces[0]),
        lambda m: gen.sample(m, 2),
        lambda m: gen.denoise(m, faces[:2]),
        lambda m: gen.fill_in(m, faces[0], np.ones((16, 16), bool)),
    ):
        with pytest.raises(FacespaceError, match="'verifier' model only encodes"):
            call(EncoderOnly())
    with pytest.raises(FacespaceError, match="mask must be"):
        gen.fill_in(pca, faces[0], np.ones((8, 8), bool))
    with pytest.raises(FacespaceError, match="hides the whole image"):
        gen.fill_in(pca, faces[0], np.ones((16, 16), bool))
    with pytest.raises(FacespaceError, match="box"):
        gen.box_mask((16, 16), (4, 4, 20, 8))
    with pytest.raises(FacespaceError, match="the model takes"):
        gen.vary(pca, np.zeros((32, 32, 3), np.float32))


# --- CLI ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory, faces, pca, vae):
    from facespace.grid import save_png

    root = tmp_path_factory.mktemp("gen")
    save_png(faces[0], root / "a.png")
    save_png(faces[7], root / "b.png")
    save_png(np.zeros((20, 12, 3)), root / "odd.png")
    save_model(pca, root / "pca.safetensors", extra=gen.code_stats(pca, faces))
    save_model(vae, root / "vae.safetensors")
    return root


def test_cli_morph_png_and_gif(run_cli, files):
    from PIL import Image

    code, out, err = run_cli("generate", "morph", "--model", files / "pca.safetensors", files / "a.png", files / "b.png", "--steps", "5",
                             "--out", files / "m.png", "--gif", files / "m.gif", "--scale", "2")  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == {"model": str(files / "pca.safetensors"), "out": str(files / "m.png"), "steps": 5, "gif": str(files / "m.gif")}
    assert Image.open(files / "m.png").size == (2 + 5 * (32 + 2), 2 + 32 + 2)
    gif = Image.open(files / "m.gif")
    assert gif.n_frames == 8  # forward 5, back 3
    code, _, err = run_cli("generate", "morph", "--model", files / "pca.safetensors", files / "a.png", files / "b.png", "--steps", "1")
    assert code == 2 and "steps must be" in err and not (files / "morph.png").exists()


def test_cli_vary_sample_fill(run_cli, files, tmp_path):
    from PIL import Image

    code, out, err = run_cli("generate", "vary", "--model", files / "pca.safetensors", files / "a.png", "-n", "4", "--strength", "0.5",
                             "--out", tmp_path / "v.png")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["n"] == 4
    assert (tmp_path / "v.png").exists()
    code, _, err = run_cli("generate", "vary", "--model", files / "pca.safetensors", files / "a.png", "--strength", "9", "--out", tmp_path / "x.png")
    assert code == 2 and "strength" in err and not (tmp_path / "x.png").exists()
    for model in ("vae", "pca"):  # the VAE's prior; PCA from the stored code statistics
        code, out, err = run_cli("generate", "sample", "--model", files / f"{model}.safetensors", "-n", "6", "--seed", "1",
                                 "--out", tmp_path / f"s_{model}.png")  # fmt: skip
        assert code == 0, err
        assert Image.open(tmp_path / f"s_{model}.png").size == (2 + 3 * (48 + 2), 2 + 2 * (48 + 2))
    code, out, err = run_cli("generate", "fill", "--model", files / "pca.safetensors", files / "a.png", "--box", "4,8,12,14",
                             "--out", tmp_path / "f.png")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["box"] == [4, 8, 12, 14] and result["masked_mse"] >= 0
    code, out, err = run_cli("generate", "fill", "--model", files / "pca.safetensors", files / "a.png", "--box", "0.25,0.5,0.75,0.875",
                             "--out", tmp_path / "f2.png")  # fmt: skip
    assert code == 0 and json.loads(out)["box"] == [4, 8, 12, 14]
    code, _, err = run_cli("generate", "fill", "--model", files / "pca.safetensors", files / "a.png", "--box", "1,2,3", "--out", tmp_path / "f3.png")
    assert code == 2 and "--box must be" in err


# --- morph --detect (whole photos) ----------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A photo with one face, one with two (side by side), and one with none."""
    import cv2
    from PIL import Image
    from skimage.data import astronaut

    root = tmp_path_factory.mktemp("photos")
    astro = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    Image.fromarray(astro).save(root / "one.png")
    Image.fromarray(np.concatenate([astro, astro[:, ::-1]], axis=1)).save(root / "two.png")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(root / "none.png")
    return root


def test_cli_morph_detect_uses_the_face_found(run_cli, files, photos, pca):
    from PIL import Image

    from facespace.grid import make_grid
    from facespace.photos.faces import crops_from_photos

    code, out, err = run_cli("generate", "morph", "--model", files / "pca.safetensors", photos / "one.png", photos / "two.png", "--detect",
                             "--steps", "3", "--scale", "1", "--out", photos / "m.png")  # fmt: skip
    assert code == 0, err
    assert "two.png: 2 faces found; using the surest" in err and "one.png" not in err
    a = crops_from_photos([photos / "one.png"], size=16, detect=True).images
    b = crops_from_photos([photos / "two.png"], size=16, detect=True).images
    assert len(a) == 1 and len(b) == 2
    want = gen.morph(pca, a[0], b[0], steps=3)
    np.testing.assert_array_equal(np.asarray(Image.open(photos / "m.png").convert("RGB")), make_grid(want, ncols=3, scale=1))
    # without --detect the whole photo is squeezed to 16x16: another strip
    code, _, err = run_cli("generate", "morph", "--model", files / "pca.safetensors", photos / "one.png", photos / "two.png",
                           "--steps", "3", "--scale", "1", "--out", photos / "whole.png")  # fmt: skip
    assert code == 0, err
    assert not np.array_equal(np.asarray(Image.open(photos / "whole.png").convert("RGB")), make_grid(want, ncols=3, scale=1))


def test_cli_morph_detect_no_face(run_cli, files, photos):
    code, out, err = run_cli("generate", "morph", "--model", files / "pca.safetensors", photos / "one.png", photos / "none.png", "--detect",
                             "--out", photos / "m3.png")  # fmt: skip
    assert code == 2 and f"no face found in {photos / 'none.png'}" in err and out == ""
    assert not (photos / "m3.png").exists()
