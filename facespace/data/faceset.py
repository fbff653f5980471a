"""The dataset object `load_faces` returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FaceSet:
    """Images with their identities and files.

    Attributes:
        images: `(n, H, W, C)` float32 in [0, 1].
        names: `(n,)` str identity per image, or None when the source has none.
        paths: `(n,)` str, where each image came from (a file, or `archive.tgz::member`).
        source: a description of where the set was loaded from.
        labels: optional extra per-image labels, e.g. `{"is_face": (n,) bool}` for `lfw_subset`.

    Example:
        >>> fs = FaceSet(np.zeros((2, 8, 8, 1), np.float32), np.array(["a", "a"]), np.array(["x", "y"]))
        >>> fs.people()
        {'a': 2}
    """

    images: np.ndarray
    names: np.ndarray | None
    paths: np.ndarray
    source: str = ""
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def people(self) -> dict[str, int]:
        """`{name: number of images}`, most images first; empty when there are no names."""
        if self.names is None:
            return {}
        return dict(Counter(self.names.tolist()).most_common())

    def counts(self) -> np.ndarray:
        """`(n,)` int: for each image, how many images its person has."""
        if self.names is None:
            return np.ones(len(self), dtype=np.int64)
        c = self.people()
        return np.array([c[n] for n in self.names], dtype=np.int64)

    def subset(self, index: Any) -> "FaceSet":
        """A new FaceSet of the images picked by an index array or boolean mask."""
        index = np.asarray(index)
        return FaceSet(
            images=self.images[index],
            names=None if self.names is None else self.names[index],
            paths=self.paths[index],
            source=self.source,
            labels={k: v[index] for k, v in self.labels.items()},
        )

    def with_min_images(self, k: int) -> "FaceSet":
        """Only the people with at least `k` images."""
        return self.subset(self.counts() >= k)
