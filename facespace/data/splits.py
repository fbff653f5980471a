"""Train/test splits: by image, and by person (no person on both sides)."""

from __future__ import annotations

import math

import numpy as np

from facespace.data.faceset import FaceSet
from facespace.errors import DataError


def _test_count(n: int, test: float | int) -> int:
    """Images in the test split: a fraction rounds up (scikit-learn's `train_test_split`), an int is a count."""
    if isinstance(test, bool) or not isinstance(test, (int, float, np.integer, np.floating)):
        raise DataError(f"test must be a fraction in (0, 1) or a count of images, got {test!r}")
    if isinstance(test, (float, np.floating)):
        if not 0.0 < test < 1.0:
            raise DataError(f"test={test} must be a fraction strictly between 0 and 1, or a count of images")
        k = math.ceil(n * test)
    else:
        k = int(test)
    if not 0 < k < n:
        raise DataError(f"test={test} leaves {k} of {n} images for testing; both splits need at least one image")
    return k


def random_split(faces: FaceSet, test: float | int = 0.1, seed: int = 42) -> tuple[FaceSet, FaceSet]:
    """Split images at random; the same seed gives the same split.

    The test split has `ceil(n * test)` images, as scikit-learn's `train_test_split` rounds. The course
    reports 11,828 / 1,315 for its 13,143 LFW images; the full 13,233 of lfw-deepfunneled give
    11,909 / 1,324.

    Args:
        faces: the set to split.
        test: a fraction in (0, 1), or a number of images.
        seed: the random seed.

    Returns:
        `(train, test)` FaceSets; each keeps the original order of its images.

    Example:
        >>> from facespace.data import load_faces
        >>> train, test = random_split(load_faces("embedded"), test=0.1)
        >>> len(train), len(test)
        (180, 20)
    """
    n = len(faces)
    k = _test_count(n, test)
    perm = np.random.default_rng(seed).permutation(n)
    is_test = np.zeros(n, bool)
    is_test[perm[:k]] = True
    return faces.subset(np.flatnonzero(~is_test)), faces.subset(np.flatnonzero(is_test))


def people_split(faces: FaceSet, test: float | int = 0.1, seed: int = 42) -> tuple[FaceSet, FaceSet]:
    """Split by person, so that no person is in both splits (for verification and identification).

    People are shuffled with `seed` and moved to the test split until it holds at least the target
    number of images (as in `random_split`), so the test fraction is met approximately.

    Args:
        faces: a set with names.
        test: the target fraction of images in (0, 1), or a number of images.
        seed: the random seed.

    Returns:
        `(train, test)` FaceSets with disjoint sets of names.

    Raises:
        DataError: the set has no names, or fewer than two people.
    """
    if faces.names is None:
        raise DataError(f"people_split needs identities, but {faces.source or 'this set'} has no names; "
                        f"use random_split")
    n = len(faces)
    k = _test_count(n, test)
    people, counts = np.unique(faces.names, return_counts=True)
    if len(people) < 2:
        raise DataError(f"people_split needs at least two people, {faces.source or 'this set'} has {len(people)}")
    order = np.random.default_rng(seed).permutation(len(people))
    cumulative = np.cumsum(counts[order])
    # the first people whose images reach k, but never all of them
    m = min(int(np.searchsorted(cumulative, k)) + 1, len(people) - 1)
    is_test = np.isin(faces.names, people[order[:m]])
    return faces.subset(np.flatnonzero(~is_test)), faces.subset(np.flatnonzero(is_test))


def split_faces(faces, *, test: float = 0.1, seed: int = 42):
    """`(train, test)` parts of a FaceSet: the data layer's `random_split` (one split everywhere)."""
    if test <= 0:
        return faces, faces.subset(np.zeros(len(faces), bool))
    return random_split(faces, test=test, seed=seed)
