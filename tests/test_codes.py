"""`facespace.pipelines.codes`: encode, decode, reconstruct on tiny PCA models of `lfw_subset`."""

from __future__ import annotations

import numpy as np
import pytest

from facespace.pipelines.codes import decode, encode, reconstruct
from facespace.errors import FacespaceError
from facespace.models.pca import PCAAutoencoder
from facespace.models.pixels import PixelEncoder


@pytest.fixture(scope="module")
def faces():
    from facespace.data import load_faces

    return np.asarray(load_faces("embedded", size=16, progress=False).images[:60])


@pytest.fixture(scope="module")
def pca(faces):
    return PCAAutoencoder(code_size=8).fit(faces)


def test_decode_of_encode_is_reconstruct(faces, pca):
    z = encode(pca, faces[:10])
    np.testing.assert_allclose(decode(pca, z), reconstruct(pca, faces[:10]), atol=1e-6)
    # batching gives the same answer as one pass
    np.testing.assert_allclose(decode(pca, z, batch_size=3), decode(pca, z), atol=1e-6)


def test_decode_clips_and_keeps_shapes(faces, pca):
    z = encode(pca, faces[:4])
    one = decode(pca, z[0])  # a (d,) code is a batch of one
    assert one.shape == (1, 16, 16, 3) and one.dtype == np.float32
    far = decode(pca, z * 50.0)  # far outside the data: raw decoder output leaves [0, 1]
    assert far.min() >= 0.0 and far.max() <= 1.0
    assert np.abs(pca.decode(z * 50.0)).max() > 1.0
    assert decode(pca, np.zeros((0, 8), np.float32)).shape == (0, 16, 16, 3)


def test_decode_refuses_wrong_size_naming_both(pca):
    with pytest.raises(FacespaceError, match=r"5 values.*size 8"):
        decode(pca, np.zeros((2, 5), np.float32))
    with pytest.raises(FacespaceError, match="shape"):
        decode(pca, np.zeros((2, 2, 8), np.float32))
    with pytest.raises(FacespaceError, match="NaN"):
        decode(pca, np.full((1, 8), np.nan, np.float32))


def test_decode_refuses_a_model_without_decoder():
    with pytest.raises(FacespaceError, match="'pixels' model has no decoder"):
        decode(PixelEncoder(size=4, channels=1), np.zeros((1, 16), np.float32))


def test_encode_works_without_batch_size_and_keeps_real_type_errors():
    enc = PixelEncoder(size=4, channels=1)  # its encode takes no batch_size
    x = np.random.default_rng(0).random((3, 4, 4, 1), dtype=np.float32)
    np.testing.assert_array_equal(encode(enc, x), x.reshape(3, -1))

    class Broken:
        kind = "broken"
        image_shape = (4, 4, 1)
        code_size = 2

        def encode(self, images, *, batch_size=256):
            raise TypeError("a bug inside the model")

    # the old try/except TypeError retried without batch_size and hid this bug behind another error
    with pytest.raises(TypeError, match="a bug inside the model"):
        encode(Broken(), x)


def test_every_encoder_takes_batch_size_as_the_contract_says():
    """`Encoder.encode(images, *, batch_size)`: pipelines call it so, without reading signatures."""
    import inspect

    from facespace.models.registry import _REGISTRY, registered_kinds

    registered_kinds()
    for cls in [*_REGISTRY.values(), PixelEncoder]:
        for method in ("encode", "decode"):
            if hasattr(cls, method):
                params = inspect.signature(getattr(cls, method)).parameters
                assert "batch_size" in params, f"{cls.__name__}.{method} takes no batch_size"
