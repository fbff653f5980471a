"""`facespace.pipelines.explanation`: faces, reconstructions, heatmap, distance and verdict."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.models.registry import load_model, save_model
from facespace.errors import FacespaceError
from facespace.pipelines.explanation import caption, explain, explanation_picture, heat_colours
from facespace.models.pca import PCAAutoencoder
from facespace.models.pixels import PixelEncoder
from facespace.people.distances import pair_distances
from facespace.people.verification import save_threshold


@pytest.fixture(scope="module")
def faces():
    from facespace.data import load_faces

    return np.asarray(load_faces("embedded", size=16, progress=False).images[:60])


@pytest.fixture(scope="module")
def pca(faces):
    return PCAAutoencoder(code_size=8).fit(faces)


def test_identical_faces_give_a_zero_heatmap(faces, pca):
    e = explain(pca, faces[3], faces[3])
    assert e.heatmap.shape == (16, 16) and e.heatmap.dtype == np.float32
    assert float(e.heatmap.max()) == 0.0 and e.distance == 0.0
    assert e.images.shape == e.reconstructions.shape == (2, 16, 16, 3)
    assert e.threshold is None and e.same is None  # a model never calibrated


def test_heatmap_is_the_difference_of_the_reconstructions(faces, pca):
    e = explain(pca, faces[0], faces[1])
    recon = np.clip(pca.decode(pca.encode(faces[:2])), 0, 1)
    np.testing.assert_allclose(e.reconstructions, recon, atol=1e-6)
    np.testing.assert_allclose(e.heatmap, np.abs(recon[0] - recon[1]).mean(-1), atol=1e-6)
    z = pca.encode(faces[:2])
    assert e.distance == pytest.approx(float(pair_distances(z[:1], z[1:])[0]), abs=1e-6)
    assert 0.0 < e.heatmap.max() <= 1.0


def test_without_decoder_the_heatmap_compares_the_images():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 4, 4, 1), dtype=np.float32)
    e = explain(PixelEncoder(size=4, channels=1), a, b, metric="l2")
    assert e.reconstructions is None
    np.testing.assert_allclose(e.heatmap, np.abs(a - b)[..., 0], atol=1e-6)
    assert e.distance == pytest.approx(float(np.linalg.norm(a - b)), rel=1e-5)
    pic = explanation_picture(e, scale=2, title=False)
    assert pic.dtype == np.uint8 and pic.shape == (2 + 8 + 2, 3 * (8 + 2) + 2, 3)  # A | heat | B


def test_stored_threshold_gives_the_verdict(faces, pca, tmp_path):
    path = tmp_path / "pca.safetensors"
    save_model(pca, path)
    model = load_model(path)
    d = explain(model, faces[0], faces[1]).distance
    save_threshold(model, d + 1e-3, metric="cosine")
    e = explain(model, faces[0], faces[1])
    assert e.threshold == pytest.approx(d + 1e-3) and e.same is True
    save_threshold(model, d / 2, metric="cosine")
    assert explain(model, faces[0], faces[1]).same is False
    # a threshold calibrated for another metric does not apply
    assert explain(model, faces[0], faces[1], metric="l2").threshold is None
    assert "different people" in caption(explain(model, faces[0], faces[1]))


def test_picture_layout_and_caption(faces, pca):
    e = explain(pca, faces[0], faces[1])
    bare = explanation_picture(e, scale=2, title=False)
    assert bare.shape == (2 + 32 + 2, 5 * (32 + 2) + 2, 3)  # A | recon A | heat | recon B | B
    # the middle tile is the heatmap in colour; the first is face A
    np.testing.assert_array_equal(bare[2:34:2, 2 + 2 * 34 : 2 + 2 * 34 + 32 : 2], heat_colours(e.heatmap))
    titled = explanation_picture(e, scale=2)
    assert titled.shape[0] > bare.shape[0] and titled.shape[1] == bare.shape[1]
    np.testing.assert_array_equal(titled[: bare.shape[0]], bare)


def test_grey_model(faces):
    grey = faces.mean(-1, keepdims=True)
    model = PCAAutoencoder(code_size=4).fit(grey)
    e = explain(model, grey[0], grey[2])
    assert e.images.shape == (2, 16, 16, 1) and e.heatmap.shape == (16, 16)
    assert explanation_picture(e).shape[2] == 3


def test_bad_input(faces, pca):
    with pytest.raises(FacespaceError, match="one face"):
        explain(pca, faces[:2], faces[0])
    with pytest.raises(FacespaceError, match="shape"):
        explain(pca, faces[0][:8], faces[0])
    with pytest.raises(FacespaceError, match="unknown metric"):
        explain(pca, faces[0], faces[1], metric="cos")
    with pytest.raises(FacespaceError, match="blank"):
        explain(pca, np.full((16, 16, 3), 0.5, np.float32), faces[0])
    with pytest.raises(FacespaceError, match="scale"):
        explanation_picture(explain(pca, faces[0], faces[1]), scale=0)
