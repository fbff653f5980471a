"""Generation pipelines over any trained `Autoencoder`: morph, vary, sample, denoise and fill in.

Each pipeline composes a model's numpy `encode` / `decode` with a procedure; the models never
import this module. Images go in as `(n, H, W, C)` / `(H, W, C)` float32 arrays in [0, 1], a
FaceSet, or image paths (loaded at the model's size and channels); images come out as float32
arrays clipped to [0, 1]. Randomness comes from explicit seeds, so outputs are reproducible.

The spread of the training codes (per-dimension std, and their mean) is what `vary` scales its
noise by and what `sample` draws plain autoencoders' codes from. It is read from the checkpoint
(`extra["code_std"]`, `extra["code_mean"]`, see `code_stats`), from a PCA model's explained
variance, from a VAE's prior, or measured on images passed as `spread=`.

Example:
    >>> import facespace as fs                                              # doctest: +SKIP
    >>> model = fs.load_model("runs/vae")                                   # doctest: +SKIP
    >>> morph(model, "a.jpg", "b.jpg", steps=7).shape                       # doctest: +SKIP
    (7, 32, 32, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.data.inputs import as_images
from facespace.pipelines.codes import encode
from facespace.errors import FacespaceError
from facespace.protocol import Autoencoder, Encoder, has_decoder, model_kind

MAX_STRENGTH = 3.0  # vary: noise of 3 training-code std's already leaves the face far behind



def _need_decoder(model: Any, what: str) -> None:
    if not has_decoder(model):
        raise FacespaceError(
            f"{what} needs a model with a decoder, but a {model_kind(model)!r} model only encodes; "
            "use an autoencoder (pca, linear, conv, denoise or vae)"
        )


def _decode(model: Autoencoder, codes: np.ndarray) -> np.ndarray:
    return np.clip(model.decode(np.asarray(codes, np.float32)), 0.0, 1.0).astype(np.float32)


def _one_image(model: Encoder, image: Any, name: str) -> np.ndarray:
    """One image as `(1, H, W, C)`, checked against the model, with a message naming `name`."""
    if isinstance(image, np.ndarray) and image.ndim == 3:
        image = image[None]
    x = as_images(model, image)
    if len(x) != 1:
        raise FacespaceError(f"{name} must be one image; got {len(x)}")
    return x


def _check_same_shape(a: Any, b: Any) -> None:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        sa, sb = a.shape[-3:], b.shape[-3:]
        if sa != sb:
            raise FacespaceError(
                f"image_a is {'x'.join(map(str, sa))} but image_b is {'x'.join(map(str, sb))} (H x W x C); "
                "give two images of the same size, or pass file paths so both are resized to the model's size"
            )


def morph(model: Autoencoder, image_a: Any, image_b: Any, steps: int = 7) -> np.ndarray:
    """Decode the straight line between two faces' codes: `z_a * (1 - t) + z_b * t`.

    Args:
        model: any `Autoencoder`.
        image_a: `(H, W, C)` / `(1, H, W, C)` float32 in [0, 1], or an image path.
        image_b: the same for the other end.
        steps: number of images, `t` evenly spaced from 0 to 1 inclusive (>= 2).

    Returns:
        `(steps, H, W, C)` float32 in [0, 1]; the first and last are the reconstructions of A and B.

    Raises:
        FacespaceError: a model with no decoder, images of different sizes, steps < 2.
    """
    _need_decoder(model, "morph")
    if int(steps) != steps or steps < 2:
        raise FacespaceError(f"steps must be a whole number >= 2 (the two ends included); got {steps}")
    _check_same_shape(image_a, image_b)
    za = encode(model, _one_image(model, image_a, "image_a"))[0]  # (d,)
    zb = encode(model, _one_image(model, image_b, "image_b"))[0]
    t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]  # (steps, 1)
    return _decode(model, za[None] * (1.0 - t) + zb[None] * t)


def code_stats(model: Encoder, images: Any) -> dict[str, list[float]]:
    """Mean and per-dimension std of the codes of `images`: what to store in a checkpoint's extra.

    Args:
        model: any `Encoder`.
        images: at least 2 images (array, FaceSet or paths), e.g. the training images.

    Returns:
        `{"code_mean": [d floats], "code_std": [d floats]}`, JSON-able, e.g.
        `save_model(model, path, extra={**extra, **code_stats(model, train_images)})`.
    """
    z = encode(model, images).astype(np.float64)
    if len(z) < 2:
        raise FacespaceError("code statistics need at least 2 images; pass the training images")
    return {"code_mean": z.mean(0).tolist(), "code_std": z.std(0).tolist()}


def _stored(model: Encoder, key: str) -> np.ndarray | None:
    value = getattr(model, "checkpoint_info", {}).get("extra", {}).get(key)
    if value is None:
        return None
    v = np.asarray(value, np.float32)
    if v.shape != (model.code_size,):
        raise FacespaceError(f"the checkpoint's {key} has shape {v.shape}, not ({model.code_size},); retrain or drop it")
    return v


def code_spread(model: Encoder, spread: Any = None) -> np.ndarray:
    """Per-dimension std `(d,)` of training codes, from wherever it is known.

    Args:
        model: any `Encoder`.
        spread: None (use the checkpoint's `code_std`, a PCA model's explained variance, or a
            VAE's unit prior), a `(d,)` array of std's, or images / a FaceSet / paths to measure.

    Raises:
        FacespaceError: nothing known and nothing given; a spread of the wrong length.
    """
    d = int(model.code_size)
    if spread is not None:
        s = np.asarray(spread, dtype=np.float32) if _is_vector(spread) else None
        if s is None:
            s = np.asarray(code_stats(model, spread)["code_std"], np.float32)
        if s.shape != (d,) or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise FacespaceError(f"spread must be {d} finite std's >= 0 (one per code dimension); got shape {s.shape}")
        return s
    stored = _stored(model, "code_std")
    if stored is not None:
        return stored
    if getattr(model, "explained_variance_", None) is not None:  # PCA: the variance along each axis
        return np.sqrt(np.asarray(model.explained_variance_, np.float32))
    if callable(getattr(model, "sample", None)):  # a VAE: codes are meant to follow N(0, I)
        return np.ones(d, np.float32)
    raise FacespaceError(
        f"this {model_kind(model)!r} model does not record the spread of its training codes; pass "
        "spread= (training images, a FaceSet or a (d,) array), or --data SOURCE on the command line"
    )


def _is_vector(x: Any) -> bool:
    if isinstance(x, (str, bytes)) or hasattr(x, "images"):
        return False
    try:
        return np.asarray(x).ndim == 1 and np.issubdtype(np.asarray(x).dtype, np.number)
    except (ValueError, TypeError):
        return False


def vary(
    model: Autoencoder, image: Any, n: int = 16, strength: float = 0.5, seed: int = 0, spread: Any = None
) -> np.ndarray:
    """Variations of one face: decode codes near its code.

    Each variation is `decode(z + strength * spread * eps)` with `eps ~ N(0, I)`, so every code
    dimension moves in proportion to how much it varies across training faces.

    Args:
        model: any `Autoencoder`.
        image: one image (array or path).
        n: number of variations (>= 1).
        strength: noise scale in units of the training codes' std, 0 to 3 (0: the reconstruction).
        seed: seed of the noise.
        spread: see `code_spread`.

    Returns:
        `(n, H, W, C)` float32 in [0, 1].
    """
    _need_decoder(model, "vary")
    if int(n) != n or n < 1:
        raise FacespaceError(f"n (number of variations) must be a whole number >= 1; got {n}")
    if not (np.isfinite(strength) and 0.0 <= strength <= MAX_STRENGTH):
        raise FacespaceError(f"strength must be between 0 and {MAX_STRENGTH:g} (std's of training codes); got {strength}")
    z = encode(model, _one_image(model, image, "image"))[0]  # (d,)
    s = code_spread(model, spread)
    eps = np.random.default_rng(seed).standard_normal((int(n), len(z))).astype(np.float32)
    return _decode(model, z[None] + float(strength) * s[None] * eps)


def sample(model: Autoencoder, n: int = 16, seed: int = 0, *, temperature: float = 1.0, codes: Any = None) -> np.ndarray:
    """New faces: decode codes drawn from the model's prior.

    A VAE draws from its N(0, I) prior. Any other autoencoder draws from a Gaussian fitted to
    its training codes: `codes` (an `(m, d)` array: full covariance), else the checkpoint's
    `code_mean` / `code_std` (diagonal).

    Args:
        model: any `Autoencoder`.
        n: number of faces (>= 1).
        seed: seed of the draws.
        temperature: scale of the draws around the mean (1 = the prior; smaller = more typical).
        codes: optional `(m, d)` training codes of a plain autoencoder.

    Returns:
        `(n, H, W, C)` float32 in [0, 1].
    """
    _need_decoder(model, "sample")
    if int(n) != n or n < 1:
        raise FacespaceError(f"n (number of samples) must be a whole number >= 1; got {n}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise FacespaceError(f"temperature must be a number >= 0 (1 is the prior); got {temperature}")
    if codes is None and callable(getattr(model, "sample", None)):
        return np.clip(model.sample(int(n), seed, temperature=float(temperature)), 0.0, 1.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    d = int(model.code_size)
    if codes is not None:
        z = np.asarray(codes, np.float64)
        if z.ndim != 2 or z.shape[1] != d or len(z) < 2:
            raise FacespaceError(f"codes must be (m, {d}) with m >= 2 (the training codes); got shape {z.shape}")
        mean, cov = z.mean(0), np.cov(z, rowvar=False) * float(temperature) ** 2
        draws = rng.multivariate_normal(mean, cov, size=int(n), method="eigh")
    else:
        mean, std = _stored(model, "code_mean"), _stored(model, "code_std")
        if mean is None or std is None:
            raise FacespaceError(
                f"a {model_kind(model)!r} model has no prior to sample from and its checkpoint records no code "
                "statistics; train a 'vae', pass codes= (training codes), or --data SOURCE on the command line"
            )
        draws = mean[None] + float(temperature) * std[None] * rng.standard_normal((int(n), d))
    return _decode(model, draws.astype(np.float32))


def denoise(model: Autoencoder, noisy: Any) -> np.ndarray:
    """Pass corrupted images through the model's code and back (best with a 'denoise' model).

    Args:
        model: any `Autoencoder`.
        noisy: `(n, H, W, C)` float32 (values outside [0, 1] allowed, as noise makes them), or paths.

    Returns:
        `(n, H, W, C)` float32 in [0, 1].
    """
    _need_decoder(model, "denoise")
    if isinstance(noisy, np.ndarray) and noisy.ndim == 3:
        noisy = noisy[None]
    return _decode(model, encode(model, noisy))


def box_mask(shape: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """`(H, W)` bool mask, True inside `box = (x0, y0, x1, y1)` (pixels, x1/y1 exclusive).

    Raises:
        FacespaceError: a box that is empty or outside the image.
    """
    h, w = shape
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise FacespaceError(
            f"box {x0},{y0},{x1},{y1} must satisfy 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
            f"(pixels of the model's {w}x{h} input)"
        )
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def fill_in(model: Autoencoder, image: Any, mask: Any, *, iterations: int = 50) -> np.ndarray:
    """Reconstruct the masked region of a face from the rest of it.

    Starts with the hidden pixels set to the image's mean visible colour, then repeats
    "reconstruct, put the known pixels back" (alternating projections: for a linear model this
    converges to the code that best explains the visible pixels).

    Args:
        model: any `Autoencoder`.
        image: one image (array or path); the values under the mask are ignored.
        mask: `(H, W)` bool, True where pixels are unknown (to fill).
        iterations: reconstruct/restore rounds (>= 1).

    Returns:
        `(H, W, C)` float32 in [0, 1]: the known pixels unchanged, the masked ones filled.
    """
    _need_decoder(model, "fill_in")
    x = _one_image(model, image, "image")[0]  # (H, W, C)
    m = np.asarray(mask)
    if m.shape != x.shape[:2]:
        raise FacespaceError(f"mask must be (H, W) = {x.shape[:2]} like the model's input; got shape {m.shape}")
    m = m.astype(bool)
    if not m.any():
        return np.clip(x, 0.0, 1.0)
    if m.all():
        raise FacespaceError("the mask hides the whole image; leave some pixels visible to fill in from")
    if int(iterations) != iterations or iterations < 1:
        raise FacespaceError(f"iterations must be a whole number >= 1; got {iterations}")
    hidden = m[..., None]  # (H, W, 1)
    current = np.where(hidden, x[~m].mean(0), x).astype(np.float32)
    for _ in range(int(iterations)):
        recon = model.decode(encode(model, current[None]))[0]
        current = np.where(hidden, recon, x).astype(np.float32)
    return np.clip(current, 0.0, 1.0)
