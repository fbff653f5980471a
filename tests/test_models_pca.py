"""The closed-form PCA autoencoder: known answers, scikit-learn conventions, checkpoints."""

import numpy as np
import pytest

from facespace.models.registry import load_model, save_model
from facespace.errors import CheckpointError, FacespaceError, NotFittedError
from facespace.models.pca import PCAAutoencoder
from facespace.protocol import Autoencoder


@pytest.fixture(scope="module")
def faces():
    """(120, 8, 8, 3) images near a random 5-d affine subspace, plus a little noise."""
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(5, 8 * 8 * 3))
    x = 0.5 + 0.05 * rng.normal(size=(120, 5)) @ basis + 0.001 * rng.normal(size=(120, 192))
    return x.reshape(120, 8, 8, 3).astype(np.float32)


def test_fit_returns_self_and_learns_state_with_underscores(faces):
    pca = PCAAutoencoder(code_size=5)
    assert pca.fit(faces) is pca
    assert pca.components_.shape == (5, 192) and pca.mean_.shape == (192,)
    assert pca.image_shape == (8, 8, 3) and pca.code_size == 5
    assert isinstance(pca, Autoencoder)


def test_unfitted_model_says_so():
    pca = PCAAutoencoder(code_size=3)
    with pytest.raises(NotFittedError, match="call fit"):
        pca.encode(np.zeros((1, 8, 8, 3), np.float32))


def test_reconstructs_data_on_a_subspace_almost_exactly(faces):
    pca = PCAAutoencoder(code_size=5).fit(faces)
    recon = pca.decode(pca.encode(faces))
    assert recon.shape == faces.shape
    assert np.mean((recon - faces) ** 2) < 2e-6  # only the 0.001 noise is lost
    # fewer components lose real variance
    pca2 = PCAAutoencoder(code_size=2).fit(faces)
    assert np.mean((pca2.decode(pca2.encode(faces)) - faces) ** 2) > 1e-3


def test_matches_the_covariance_eigenvectors_and_axes_are_orthonormal(faces):
    ours = PCAAutoencoder(code_size=4, svd_solver="full").fit(faces)
    flat = faces.reshape(len(faces), -1).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(flat, rowvar=False))  # ascending
    np.testing.assert_allclose(ours.explained_variance_, values[::-1][:4], rtol=1e-4)
    np.testing.assert_allclose(np.abs(ours.components_ @ vectors[:, ::-1][:, :4]), np.eye(4), atol=1e-4)
    np.testing.assert_allclose(ours.components_ @ ours.components_.T, np.eye(4), atol=1e-5)


def test_randomized_solver_agrees_with_full(rng):
    x = rng.random((600, 24, 24, 1), dtype=np.float32)  # large enough for "auto" to pick randomized
    full = PCAAutoencoder(code_size=10, svd_solver="full").fit(x)
    auto = PCAAutoencoder(code_size=10).fit(x)
    err = lambda m: np.mean((m.decode(m.encode(x)) - x) ** 2)  # noqa: E731
    assert err(auto) == pytest.approx(err(full), rel=2e-3)


def test_save_load_gives_identical_outputs(faces, tmp_path):
    pca = PCAAutoencoder(code_size=5).fit(faces)
    path = save_model(pca, tmp_path / "pca.safetensors")
    loaded = load_model(path)
    assert isinstance(loaded, PCAAutoencoder)
    assert np.array_equal(loaded.encode(faces), pca.encode(faces))
    assert np.array_equal(loaded.decode(pca.encode(faces)), pca.decode(pca.encode(faces)))
    with pytest.raises(CheckpointError, match="not the 'conv'"):
        load_model(path, kind="conv")


def test_bad_input_is_refused_with_the_reason(faces):
    pca = PCAAutoencoder(code_size=5).fit(faces)
    with pytest.raises(FacespaceError, match="model takes"):
        pca.encode(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(FacespaceError, match="NaN"):
        pca.encode(np.full((1, 8, 8, 3), np.nan, np.float32))
    with pytest.raises(FacespaceError, match="codes must be"):
        pca.decode(np.zeros((1, 4), np.float32))
    with pytest.raises(FacespaceError, match="code_size"):
        PCAAutoencoder(code_size=500).fit(faces[:10])
    with pytest.raises(FacespaceError, match="svd_solver"):
        PCAAutoencoder(svd_solver="magic", code_size=2).fit(faces)


def test_checkpoint_with_mismatched_tensors_is_refused(faces, tmp_path):
    pca = PCAAutoencoder(code_size=5).fit(faces)
    state = pca.state_tensors()
    cfg = dict(pca.config.__dict__, code_size=6)
    with pytest.raises(CheckpointError, match="do not match"):
        PCAAutoencoder.from_state(cfg, state)
