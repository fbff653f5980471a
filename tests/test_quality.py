"""Face quality: known answers for each measure, faces against noise under a face model, references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facespace.errors import FacespaceError
from facespace.models.pca import PCAAutoencoder
from facespace.people.quality import FaceQuality, face_quality
from facespace.people.quality_reference import QualityReference, laplacian_variance, quality_reference, reference_for, save_quality_reference


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """scikit-image's 100 embedded LFW faces, `(100, 25, 25, 1)` float32."""
    from skimage.data import lfw_subset

    return lfw_subset()[:100, :, :, None].astype(np.float32)


@pytest.fixture(scope="module")
def pca(faces) -> PCAAutoencoder:
    """A face model trained on the first 40 faces only."""
    return PCAAutoencoder(code_size=16).fit(faces[:40])


@pytest.fixture(scope="module")
def reference(pca, faces) -> QualityReference:
    # held-out faces 40-69: a model reconstructs its own training faces better than new ones
    return quality_reference(faces[40:70], model=pca, source="validation faces")


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(img[..., 0], (0, 0), sigma)[..., None] for img in x])


def test_laplacian_variance_known_answers():
    checker = (np.indices((8, 8)).sum(0) % 2).astype(np.float32)[None]  # 0/1 checkerboard
    assert laplacian_variance(checker)[0] == pytest.approx((4 * 255) ** 2)  # every Laplacian is +-4*255
    ramp = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))[None]  # a plane: no curvature
    assert laplacian_variance(ramp)[0] == pytest.approx(0.0, abs=1e-6)


def test_blur_lowers_sharpness_and_strong_blur_is_flagged(faces, pca, reference):
    unseen = faces[70:]
    sharp = face_quality(unseen, model=pca, reference=reference)
    soft = face_quality(blur(unseen, 1.0), model=pca, reference=reference)
    assert all(b.sharpness < a.sharpness for a, b in zip(sharp, soft))
    assert np.mean([a.score for a in sharp]) > np.mean([b.score for b in soft])
    very = face_quality(blur(unseen, 2.5), model=pca, reference=reference)
    assert all(not q.ok and any(r.startswith("blurry: Laplacian variance") for r in q.reasons) for q in very)
    assert sum(q.ok for q in sharp) >= 24  # unseen good faces mostly pass (26 of 30 here)


def test_flat_image_is_flagged(pca, reference):
    flat = np.full((1, 25, 25, 1), 0.5, np.float32)
    q = face_quality(flat, model=pca, reference=reference)[0]
    assert not q.ok and q.score < 0.05 and q.contrast == pytest.approx(0.0, abs=1e-6)
    assert any(r.startswith("blurry") for r in q.reasons) and any(r.startswith("flat: contrast") for r in q.reasons)


def test_a_face_scores_higher_than_noise_under_a_face_model(faces, pca, reference):
    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(faces[70:].mean(), faces[70:].std(), (30, 25, 25, 1)), 0, 1).astype(np.float32)
    qf = face_quality(faces[70:], model=pca, reference=reference)
    qn = face_quality(noise, model=pca, reference=reference)
    assert np.median([q.recon_error for q in qf]) < np.min([q.recon_error for q in qn])
    assert np.median([q.score for q in qf]) > max(q.score for q in qn)
    assert not any(q.ok for q in qn)
    assert all(any(r.startswith("not face-like: reconstruction error") for r in q.reasons) for q in qn)


def test_dark_small_and_score_matches_ok(faces, pca, reference):
    x = faces[70:80].copy()
    x[0] *= 0.15  # a dark face
    q = face_quality(x, model=pca, reference=reference, sizes=[90, 10, None] + [90] * 7)
    assert any(r.startswith("too dark") for r in q[0].reasons)
    assert any(r == "too small: face 10 px < 25 px (the smallest face the model reads at full resolution)" for r in q[1].reasons)
    assert q[1].size == 10 and q[2].size is None
    assert all(isinstance(r, FaceQuality) and 0.0 <= r.score <= 1.0 for r in q)
    assert all(r.ok == (r.score >= 0.5) for r in q)


def test_without_model_only_image_measures(faces):
    q = face_quality(faces[:3])
    assert all(r.recon_error is None and r.code_distance is None for r in q)
    assert face_quality(faces[0])[0] == q[0]  # one (H, W, C) image is a batch of one


def test_reference_round_trip_and_stored_in_checkpoint(faces, pca, reference, tmp_path):
    from facespace.models.registry import load_model, save_model

    assert QualityReference.from_dict(reference.to_dict()) == reference
    assert reference.value("sharpness", 0.01) <= reference.value("sharpness", 0.5)
    save_model(pca, tmp_path / "pca.safetensors")
    m = load_model(tmp_path / "pca.safetensors")
    fallback = reference_for(m)  # nothing stored yet: image checks against the embedded faces
    assert fallback.source == "embedded lfw_subset faces" and fallback.code_mean is None
    q = face_quality(faces[70:72], model=m)
    assert q[0].recon_error is not None and q[0].code_distance is None  # measured, not judged
    save_quality_reference(m, reference)
    again = load_model(tmp_path / "pca.safetensors")
    assert reference_for(again) == reference
    a = face_quality(faces[70:75], model=again)
    b = face_quality(faces[70:75], model=pca, reference=reference)
    assert a == b


def test_bad_input(faces, pca, reference):
    with pytest.raises(FacespaceError, match="the model takes"):
        face_quality(np.zeros((1, 32, 32, 1), np.float32) + 0.5, model=pca)
    with pytest.raises(FacespaceError, match="sizes has 1 entries for 2 images"):
        face_quality(faces[:2], sizes=[40])
    with pytest.raises(FacespaceError, match="quantile"):
        face_quality(faces[:2], quantile=0.7)
    with pytest.raises(FacespaceError, match="at least 20 good faces"):
        quality_reference(faces[:5])
    with pytest.raises(FacespaceError, match="NaN"):
        face_quality(np.full((1, 25, 25, 1), np.nan, np.float32))
    with pytest.raises(FacespaceError, match="never saved"):
        save_quality_reference(PCAAutoencoder(code_size=4).fit(faces[:30]), reference)


def pink_noise(n: int, side: int, seed: int = 0) -> np.ndarray:
    """`(n, side, side, 1)` images whose spectrum falls with frequency, as photographs' do: the same
    scene at half the pixels looks about as sharp at its own resolution."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij"))
    f[0, 0] = 1.0
    out = []
    for _ in range(n):
        img = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(side, side))) / f ** 1.5))
        out.append(0.5 + rng.uniform(0.12, 0.2) * (img - img.mean()) / img.std())
    return np.clip(np.stack(out), 0, 1).astype(np.float32)[..., None]


def test_a_native_reference_measures_a_small_sharp_face_at_its_own_resolution():
    """Crops cut at their source resolution as the reference: a sharp crop from a smaller camera
    (half the pixels) enlarged to the model's 80 px passes, as its sharpness is measured at its own
    40 px; the same crops blurred are flagged; against an ordinary reference the enlarged crops read
    as blurry."""
    from PIL import Image

    crops = pink_noise(100, 80)  # at their source resolution
    native = quality_reference(crops[:60], source="80-px crops", native=True)
    plain = quality_reference(crops[:60], source="80-px crops")
    assert native.native_sharpness and QualityReference.from_dict(native.to_dict()).native_sharpness

    def resize(x, side, how):
        return np.stack([np.asarray(Image.fromarray(im[..., 0]).resize((side, side), how)) for im in x])[..., None]

    enlarged = resize(resize(crops[60:], 40, Image.Resampling.BOX), 80, Image.Resampling.BILINEAR)  # as the loader enlarges
    blurred = blur(crops[60:], 2.0)
    ok_native = np.mean([q.ok for q in face_quality(enlarged, reference=native, sizes=[40] * 40, min_size=32)])
    ok_plain = np.mean([q.ok for q in face_quality(enlarged, reference=plain, sizes=[40] * 40, min_size=32)])
    flagged = np.mean([not q.ok for q in face_quality(blurred, reference=native, sizes=[80] * 40)])
    assert ok_native >= 0.75 and ok_plain <= 0.1 and flagged >= 0.9, (ok_native, ok_plain, flagged)
