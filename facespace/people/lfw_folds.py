"""Which LFW images each fold's model may train on under the View 2 protocol, and which folds a run
tests: the data side of per-fold evaluation (`facespace.people.lfw`, `facespace.people.fold_models`).

Example:
    >>> tested_folds("1,3", np.arange(10), "pairs.txt").tolist()
    [0, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError

__all__ = ["fold_training_faces", "tested_folds"]


def tested_folds(folds: Any, labels: np.ndarray, pairs: Any) -> np.ndarray | None:
    """Fold numbers from 1 (`--folds 1,2`) -> the 0-based labels to test; None tests all."""
    if folds is None:
        return None
    try:
        wanted = sorted({int(k) for k in (folds.split(",") if isinstance(folds, str) else folds)})
    except (TypeError, ValueError):
        raise FacespaceError(f"folds {folds!r}: expected fold numbers such as 1,2") from None
    bad = [k for k in wanted if k - 1 not in labels]
    if bad or not wanted:
        raise FacespaceError(f"no fold {bad[0] if bad else folds!r} in {pairs}; its folds are 1 to {len(labels)}")
    return np.array([k - 1 for k in wanted])


def fold_training_faces(plist: list[Any], faces: Any, k: int, *, held_out: bool = False,
                        untested: bool = False) -> tuple[Any, set[str]]:
    """The images fold `k`'s model may train on under the protocol.

    Args:
        plist: the pairs (`facespace.data.read_pair_files`), folds 0-based in `.fold`.
        faces: every image of the LFW folder (a `FaceSet` with names).
        k: the tested fold, 0-based.
        held_out: also keep the next fold's people out (`calibrate="held-out-fold"`).
        untested: everyone outside the kept-out folds, people in no pair included; else only the
            people of the other folds' pairs.

    Returns:
        `(train, banned)`: the `FaceSet` to train on, and the people kept out of it.
    """
    fold_people: dict[int, set[str]] = {}
    for p in plist:
        fold_people.setdefault(int(p.fold), set()).update((p.name_a, p.name_b))
    labels = sorted(fold_people)
    out = {int(k)} | ({labels[(labels.index(int(k)) + 1) % len(labels)]} if held_out else set())
    others = set().union(*(v for j, v in fold_people.items() if j not in out))
    banned = set().union(*(fold_people[j] for j in out))
    keep = np.array([(untested or name in others) and name not in banned for name in faces.names])
    return faces.subset(np.flatnonzero(keep)), banned
