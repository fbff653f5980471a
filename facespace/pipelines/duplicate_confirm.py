"""The second look at near-duplicates: candidate pairs found in the codes, confirmed in pixel space.

A model's codes are what an index searches at scale, but "is this pair a copy" is answered better in
pixels: two different photos of one person can lie closer in a PCA's codes than its brightened copies,
and an autoencoder can place a 2 % crop as far from its original as distinct photos lie apart, while
the two files' small pixel images tell copies from distinct photos apart on the same sets
(benchmarks/results/duplicates.md). So, when the images can be read:

1. **candidates**: the pairs within the codes' threshold of the level one looser than asked
   (`facespace.pipelines.duplicate_levels.LOOSER`: "near" takes the "similar" pairs), so the codes
   bring the recall;
2. **confirmation**: each candidate pair's cosine distance between small pixel codes of its two files
   (`PixelReader`: the files read and cut as the index's codes were, at `PIXEL_SIZE` pixels, the
   raw-pixel model `facespace.models.pixels.PixelEncoder`), kept when within the pixel threshold of
   the level. That threshold is learned with the codes' one
   (`facespace.pipelines.duplicate_threshold.learn_max_distance`): the same altered copies give the
   pixel copy distances, and each sampled item and its nearest distinct item by the model give the
   distinct side.

A candidate pair whose files cannot be read is kept by its codes alone, at the asked level's code
threshold, and counted in the note (`PixelConfirmation.summary`).

Example:
    >>> learned = learn_max_distance("photos.index")                         # doctest: +SKIP
    >>> groups, check = find_confirmed_duplicates("photos.index", learned)   # doctest: +SKIP
    >>> print(check.summary())                                               # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from facespace.data.crops import RECORDED, resolve_crop
from facespace.data.images import load_images, read_image
from facespace.data.inputs import ALIGN_MAX_SIDE, align_arrays
from facespace.errors import FacespaceError
from facespace.index.index import Index
from facespace.models.pixels import PixelEncoder
from facespace.people.distances import pair_distances
from facespace.pipelines.duplicate_levels import LOOSER, LearnedThreshold
from facespace.pipelines.retrieval import DuplicatePair, as_index, find_duplicates
from facespace.protocol import Encoder, is_aligning

PIXEL_SIZE = 32  # side of the pixel codes: raw pixels at 32 px tell copies apart on the benchmark's sets


@dataclass(frozen=True)
class PixelReader:
    """Reads image files into small pixel codes, cut as a model's codes were cut.

    Attributes:
        crop: the crop of the files, as `facespace.data.images.load_images` takes it (the model's
            crop resolved; unused for an aligning model).
        channels: 1 (grey, a grey model) or 3.
        size: the pixel codes' side.
        aligner: a model that cuts its own faces (its aligned chips are shrunk), else None.
        align_crop: the crop given to the aligner.

    Example:
        >>> from facespace.models.registry import resolve_model
        >>> PixelReader.of(resolve_model("pixels:16")).describe()
        '32x32 RGB pixels'
    """

    crop: Any
    channels: int = 3
    size: int = PIXEL_SIZE
    aligner: Any = None
    align_crop: Any = RECORDED

    @classmethod
    def of(cls, model: Encoder, crop: Any = RECORDED, *, size: int = PIXEL_SIZE) -> "PixelReader":
        """The reader of files as `model` reads them with `crop` (see `encode_files`)."""
        channels = 1 if model.image_shape[2] == 1 else 3
        if is_aligning(model):
            return cls(crop=None, channels=channels, size=size, aligner=model, align_crop=crop)
        return cls(crop=resolve_crop(model, crop), channels=channels, size=size)

    def describe(self) -> str:
        return f"{self.size}x{self.size} {'grey' if self.channels == 1 else 'RGB'} pixels"

    def codes(self, sources: Sequence[Any]) -> np.ndarray:
        """`(n, size * size * channels)` float32 pixel codes of image files (paths or encoded bytes).

        Raises:
            DataError: naming the first file that cannot be read.
        """
        encoder = PixelEncoder(size=self.size, channels=self.channels)
        if len(sources) == 0:
            return np.zeros((0, encoder.code_size), np.float32)
        if self.aligner is None:
            x = load_images(list(sources), size=self.size, crop=self.crop, grayscale=self.channels == 1)
        else:
            chips = align_arrays(self.aligner, (read_image(s, max_side=ALIGN_MAX_SIDE) for s in sources),
                                 crop=self.align_crop)
            x = np.stack([_shrink(c, self.size, self.channels) for c in chips])
        return encoder.encode(x)

    def read(self, paths: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Pixel codes of files some of which may be gone: `(n, D)` float32 (zeros where unread) and
        `(n,)` bool, True where the file was read."""
        ok = np.array([_is_file(p) for p in paths], bool)
        out = np.zeros((len(paths), self.size * self.size * self.channels), np.float32)
        try:
            out[ok] = self.codes([paths[i] for i in np.flatnonzero(ok)])
        except (FacespaceError, OSError):  # one of them unreadable: read them one by one
            for i in np.flatnonzero(ok):
                try:
                    out[i] = self.codes([paths[i]])[0]
                except (FacespaceError, OSError):
                    ok[i] = False
        return out, ok


def pair_pixel_distances(reader: PixelReader, a_paths: Sequence[Any], b_paths: Sequence[Any]) -> np.ndarray:
    """`(p,)` float64 cosine distances between the pixel codes of `a_paths[i]` and `b_paths[i]`; NaN
    where either file cannot be read. Each distinct file is read once."""
    files = list(dict.fromkeys(str(p) for p in [*a_paths, *b_paths] if p is not None))
    codes, ok = reader.read(files)
    row = {f: i for i, f in enumerate(files)}
    out = np.full(len(a_paths), np.nan)
    a = np.array([row.get(str(p), -1) if p is not None else -1 for p in a_paths], np.int64)
    b = np.array([row.get(str(p), -1) if p is not None else -1 for p in b_paths], np.int64)
    both = (a >= 0) & (b >= 0)
    both[both] = ok[a[both]] & ok[b[both]]
    if both.any():
        out[both] = pair_distances(codes[a[both]], codes[b[both]], metric="cosine")
    return out


class PixelConfirmation:
    """The pair check of `find_duplicates` (`keep=`): a candidate pair is a duplicate when its files'
    pixel codes lie within the learned pixel threshold; a pair with a file that cannot be read is
    judged by its codes alone, at the asked level's code threshold.

    Args:
        learned: a threshold learned with the pixel stage (`learned.confirmed`).
        index: the searched set.
        ref: the reference set (pairs across two sets), or None (pairs within `index`).

    Attributes (after the call):
        candidates: pairs looked at; kept: pairs confirmed (or kept by their codes);
        unread: pairs judged by their codes alone; missing: a file that could not be read, or None.
    """

    def __init__(self, learned: LearnedThreshold, index: Index, ref: Index | None = None):
        if not learned.confirmed:
            raise FacespaceError("this threshold has no pixel stage (learned from decoded codes, or a fallback); "
                                 "group with find_duplicates(index, learned.max_distance) instead")
        self.learned, self.index, self.ref = learned, index, ref
        self.candidates = self.kept = self.unread = 0
        self.missing: str | None = None

    def __call__(self, a_ids: np.ndarray, b_ids: np.ndarray, distances: np.ndarray) -> np.ndarray:
        a_paths = [m.get("path") for m in self.index.get_metadata(np.asarray(a_ids))]
        other = self.ref if self.ref is not None else self.index
        b_paths = [m.get("path") for m in other.get_metadata(np.asarray(b_ids))]
        pixel = pair_pixel_distances(self.learned.pixels, a_paths, b_paths)
        unread = np.isnan(pixel)
        keep = np.where(unread, np.asarray(distances, np.float64) <= self.learned.max_distance,
                        pixel <= self.learned.pixel_max_distance)
        self.candidates += len(pixel)
        self.kept += int(keep.sum())
        self.unread += int(unread.sum())
        if unread.any() and self.missing is None:
            i = int(np.flatnonzero(unread)[0])
            self.missing = next((str(p) for p in (a_paths[i], b_paths[i]) if not _is_file(p)), str(a_paths[i]))
        return keep

    def summary(self) -> str:
        """One line: how many candidates were confirmed, and the pairs judged by codes alone."""
        lv = self.learned
        line = (f"pixel confirmation: {self.kept} of {self.candidates} candidate pair(s) within "
                f"{lv.candidate_distance:.4g} ({lv.metric}, level {LOOSER[lv.level]} of the codes) kept")
        if self.unread:
            line += (f"; {self.unread} pair(s) could not be confirmed (their images could not be read, e.g. "
                     f"{self.missing!r}): judged by their codes alone, within {lv.max_distance:.4g} (level {lv.level})")
        return line


def find_confirmed_duplicates(index: Any, learned: LearnedThreshold, *, against: Any = None,
                              k: int = 16) -> tuple[list[list[int]] | list[DuplicatePair], PixelConfirmation | None]:
    """Near-duplicates at a learned threshold, confirmed in pixel space when the threshold has a pixel stage.

    Args:
        index: the searched set (as `find_duplicates` takes it).
        learned: from `learn_max_distance` (with the same `against`).
        against: the reference set, or None.
        k: neighbours asked for first.

    Returns:
        What `find_duplicates` returns (groups, or pairs with `against`), and the `PixelConfirmation`
        that checked the candidates (None when `learned` has no pixel stage: then the pairs are those
        within `learned.max_distance`).
    """
    index = as_index(index)
    if not learned.confirmed:
        return find_duplicates(index, learned.max_distance, k=k, against=against), None
    ref = as_index(against, metric=index.metric) if against is not None else None
    check = PixelConfirmation(learned, index, ref)
    return find_duplicates(index, learned.candidate_distance, k=k, against=ref, keep=check), check


def _shrink(chip: np.ndarray, size: int, channels: int) -> np.ndarray:
    """An `(H, W, C)` image in [0, 1] as `(size, size, channels)`, averaged down (as `load_images` shrinks)."""
    pic = Image.fromarray((np.clip(chip, 0, 1) * 255 + 0.5).astype(np.uint8).squeeze(-1) if chip.shape[-1] == 1
                          else (np.clip(chip, 0, 1) * 255 + 0.5).astype(np.uint8))
    pic = pic.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(pic, np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def _is_file(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.path.isfile(path)
