"""PCA as an autoencoder: the closed-form linear code of faces ("eigenfaces").

The encoder projects centred, flattened pixels on the top `code_size` principal axes; the decoder
maps codes back. Fitted by the SVD of the centred data (randomized when the data is large).
It follows scikit-learn's conventions (`fit` returns self, learned state ends in `_`) and honours
`facespace.protocol.Autoencoder`, so it saves, loads, encodes and decodes like any network.

Example:
    >>> x = np.random.default_rng(0).random((50, 8, 8, 1), dtype=np.float32)
    >>> pca = PCAAutoencoder(code_size=4).fit(x)
    >>> pca.encode(x).shape, pca.decode(pca.encode(x)).shape
    ((50, 4), (50, 8, 8, 1))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from facespace.models.registry import config_from_dict, register_model
from facespace.errors import CheckpointError, FacespaceError, NotFittedError
from facespace.protocol import check_codes, check_images

SOLVERS = ("auto", "full", "randomized")


@dataclass(frozen=True)
class PCAConfig:
    size: int = 0  # image side the model takes (set by fit)
    channels: int = 0  # 1 (grey) or 3 (RGB) (set by fit)
    code_size: int = 32  # number of principal components kept
    svd_solver: str = "auto"  # auto | full | randomized
    seed: int = 0  # randomized SVD seed


@register_model
class PCAAutoencoder:
    """Closed-form linear autoencoder.

    Args:
        code_size: number of principal components `d`.
        svd_solver: "full" (exact SVD), "randomized" (Halko et al.), or "auto": randomized when
            the data has more than 500 rows and columns and `d` is under 80% of the smaller.
        seed: seed of the randomized solver.

    Attributes (after fit):
        mean_: `(m,)` float32 mean image, flattened (H, W, C order).
        components_: `(d, m)` float32 orthonormal principal axes, strongest first.
        explained_variance_: `(d,)` float32 variance of the data along each axis.
        image_shape_: `(H, W, C)` of the images it was fitted on.
    """

    kind: ClassVar[str] = "pca"
    Config: ClassVar[type] = PCAConfig

    def __init__(self, *, code_size: int = 32, svd_solver: str = "auto", seed: int = 0):
        self.code_size_param = code_size
        self.svd_solver = svd_solver
        self.seed = seed
        self.checkpoint_info: dict[str, Any] = {}

    # --- the Encoder protocol -------------------------------------------------------------
    @property
    def config(self) -> PCAConfig:
        size, _, channels = getattr(self, "image_shape_", (0, 0, 0))
        return PCAConfig(size, channels, self.code_size_param, self.svd_solver, self.seed)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        self._check_fitted()
        return self.image_shape_

    @property
    def code_size(self) -> int:
        return self.code_size_param

    def fit(self, images: Any, y: Any = None) -> "PCAAutoencoder":
        """Learn the mean and principal axes of `(n, H, W, C)` float32 images. Returns self."""
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4:
            raise FacespaceError(f"PCA fits (n, H, W, C) images; got shape {x.shape}")
        if x.shape[1] != x.shape[2]:
            raise FacespaceError(f"PCA expects square images; got {x.shape[1]}x{x.shape[2]}: load with size=N")
        x = check_images(x, x.shape[1:], what="training images")
        n, m = len(x), int(np.prod(x.shape[1:]))
        d = int(self.code_size_param)
        if self.svd_solver not in SOLVERS:
            raise FacespaceError(f"unknown svd_solver {self.svd_solver!r}; expected one of: {', '.join(SOLVERS)}")
        if not 1 <= d <= min(n, m):
            raise FacespaceError(
                f"code_size {d} needs 1 <= code_size <= min(images, pixels) = {min(n, m)}; "
                "use a smaller code or more images"
            )
        flat = x.reshape(n, m)
        mean = flat.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = flat - mean
        solver = self.svd_solver
        if solver == "auto":
            solver = "randomized" if min(n, m) > 500 and d < 0.8 * min(n, m) else "full"
        if solver == "full":
            _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
            s, vt = s[:d], vt[:d]
        else:
            from sklearn.utils.extmath import randomized_svd

            _, s, vt = randomized_svd(centred, d, n_oversamples=20, n_iter=7, random_state=self.seed)
        vt = _flip_signs(vt)
        self.mean_ = mean
        self.components_ = np.ascontiguousarray(vt, dtype=np.float32)
        self.explained_variance_ = (np.asarray(s, np.float64) ** 2 / max(n - 1, 1)).astype(np.float32)
        self.image_shape_ = tuple(int(v) for v in x.shape[1:])
        return self

    def encode(self, images: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """`(n, H, W, C)` float32 in [0, 1] -> `(n, d)` float32 coefficients."""
        self._check_fitted()
        x = check_images(images, self.image_shape_)
        return ((x.reshape(len(x), -1) - self.mean_) @ self.components_.T).astype(np.float32)

    def transform(self, images: np.ndarray) -> np.ndarray:
        """scikit-learn's name for `encode`."""
        return self.encode(images)

    def decode(self, codes: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """`(n, d)` float32 -> `(n, H, W, C)` float32 (not clipped)."""
        self._check_fitted()
        z = check_codes(codes, self.code_size)
        return (z @ self.components_ + self.mean_).reshape(len(z), *self.image_shape_).astype(np.float32)

    def inverse_transform(self, codes: np.ndarray) -> np.ndarray:
        """scikit-learn's name for `decode`."""
        return self.decode(codes)

    # --- checkpoints ----------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        return {
            "mean": torch.from_numpy(self.mean_),
            "components": torch.from_numpy(self.components_),
            "explained_variance": torch.from_numpy(self.explained_variance_),
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "PCAAutoencoder":
        cfg = config_from_dict(PCAConfig, config)
        model = cls(code_size=cfg.code_size, svd_solver=cfg.svd_solver, seed=cfg.seed)
        m = cfg.size * cfg.size * cfg.channels
        try:
            mean, comp, var = tensors["mean"], tensors["components"], tensors["explained_variance"]
        except KeyError as e:
            raise CheckpointError(f"PCA checkpoint lacks tensor {e}; the file is damaged, refit the model") from None
        if tuple(mean.shape) != (m,) or tuple(comp.shape) != (cfg.code_size, m):
            raise CheckpointError(
                f"PCA checkpoint tensors {tuple(comp.shape)} do not match its config "
                f"(code {cfg.code_size}, image {cfg.size}x{cfg.size}x{cfg.channels}); refit the model"
            )
        model.mean_ = mean.float().numpy().copy()
        model.components_ = comp.float().numpy().copy()
        model.explained_variance_ = var.float().numpy().copy()
        model.image_shape_ = (cfg.size, cfg.size, cfg.channels)
        return model

    def eval(self) -> "PCAAutoencoder":
        """No-op, so callers can treat PCA like a torch model."""
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("this PCAAutoencoder is not fitted yet; call fit(images) first")

    def __repr__(self) -> str:
        return f"PCAAutoencoder(code_size={self.code_size_param}, svd_solver={self.svd_solver!r}, seed={self.seed})"


def _flip_signs(vt: np.ndarray) -> np.ndarray:
    """Make each axis's largest-magnitude entry positive, so results do not depend on the solver."""
    idx = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(len(vt)), idx])
    signs[signs == 0] = 1
    return vt * signs[:, None]
