"""The official LFW View 2 verification protocol.

`pairs.txt` splits 6,000 pairs into 10 folds with no person in two folds. For each fold the
threshold is chosen on the other nine folds and applied to it; the result is the mean accuracy
over the 10 folds with its standard error (sample std / sqrt(10)). Beside it: the ROC curve over
all pairs, its AUC, the equal error rate and the true-accept rate at 1% and 0.1% false accepts.

When a `train_fn(train_faces) -> model` is given, each fold gets its own model trained only on the
images of the other nine folds' people, so no image of a tested person trains or calibrates the
model that tests them; the report says whether that was honoured. Those nine folds' pairs then show
people the model trained on, whose distances are tighter than a stranger's: `calibrate="held-out-fold"`
also keeps the next fold's people out of each fold's training and chooses the threshold on that
fold's pairs alone (one of the nine, scored as strangers), at the cost of a ninth fewer people to learn from.
`target_far` sets each threshold from the nine folds' different-person pairs alone (those accepted at
that rate), leaving out the same-person pairs whose distances training tightened.

Example:
    >>> rng = np.random.default_rng(0)
    >>> same = np.tile(np.repeat([True, False], 30), 10); folds = np.repeat(np.arange(10), 60)
    >>> d = np.where(same, 0.3, 0.7) + rng.normal(0, 0.1, 600)
    >>> report = evaluate_distances(d, same, folds)
    >>> report.mean_accuracy > 0.95
    True
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facespace.errors import DataError, FacespaceError
from facespace.people.roc import save_roc
from facespace.people.thresholds import calibrate_threshold, pair_accuracy, roc_metrics
from facespace.people.distances import pair_distances
from facespace.people.lfw_folds import fold_training_faces, tested_folds
from facespace.protocol import Encoder

CALIBRATIONS = ("other-folds", "held-out-fold")
TRAIN_PEOPLE = ("other-folds", "untested")


@dataclass
class LfwReport:
    """What `evaluate_lfw` measures.

    Attributes:
        fold_accuracies: `(10,)` accuracy of each fold at the threshold chosen on the other nine.
        thresholds: `(10,)` the threshold used for each fold.
        mean_accuracy, standard_error: over folds; SE = sample std / sqrt(folds).
        auc, eer: area under the ROC and equal error rate, over all pairs.
        tar_at_far: `{far: true-accept rate}` at each false-accept rate in `FARS`.
        fpr, tpr: the ROC curve.
        protocol_honoured: True when every fold's model was trained without the tested fold's
            people; None when the model came from outside (cannot be checked).
        protocol_note: one sentence saying what was done.
        folds: the tested folds, counted from 1 as in `pairs.txt`.
        full_protocol: every fold of the pairs file was tested (not a `folds=` subset).
        crop: how the images were cut from their files (`facespace.data.crops.crop_name`).
        best_accuracies: `(10,)` each fold's accuracy at its own best threshold, a diagnostic that is
            not the protocol (the threshold sees the tested pairs): its gap to `fold_accuracies` is
            what choosing the threshold on other folds costs.
        target_far: None when each threshold is the most accurate on the other folds' pairs; else the
            false-accept rate it was set at on their different-person pairs alone.
    """

    fold_accuracies: list[float]
    thresholds: list[float]
    mean_accuracy: float
    standard_error: float
    auc: float
    eer: float
    tar_at_far: dict[float, float]
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    n_pairs: int = 0
    metric: str = "cosine"
    protocol_honoured: bool | None = None
    protocol_note: str = ""
    folds: list[int] = field(default_factory=list)
    full_protocol: bool = True
    crop: str = ""
    best_accuracies: list[float] = field(default_factory=list)
    target_far: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the ROC arrays)."""
        d = asdict(self)
        d.pop("fpr"), d.pop("tpr")
        d["tar_at_far"] = {str(k): v for k, v in self.tar_at_far.items()}
        return d

    def format(self) -> str:
        """A short human-readable table."""
        numbers = self.folds or list(range(1, len(self.fold_accuracies) + 1))
        lines = [f"fold {k:2d}: accuracy {a:.4f}  threshold {t:.4f}" for k, a, t in
                 zip(numbers, self.fold_accuracies, self.thresholds)]
        lines += [
            f"mean accuracy: {self.mean_accuracy:.4f} ± {self.standard_error:.4f} (standard error, {len(self.fold_accuracies)} folds, {self.n_pairs} pairs, {self.metric} distance)",
            f"AUC: {self.auc:.4f}   EER: {self.eer:.4f}   "
            + "   ".join(f"TAR@FAR={k:g}: {v:.4f}" for k, v in self.tar_at_far.items()),
            *([f"thresholds: at {self.target_far:g} false accepts of the calibration folds' different-person pairs"]
              if self.target_far is not None else []),
            f"protocol: {self.protocol_note}",
        ]
        if self.best_accuracies:
            lines.insert(-1, f"at each fold's own best threshold (diagnostic, not the protocol): "
                             f"{np.mean(self.best_accuracies):.4f}")
        if self.crop:
            lines.append(f"crop: {self.crop}")
        return "\n".join(lines)


def evaluate_distances(
    distances: Any,
    same: Any,
    folds: Any,
    *,
    metric: str = "cosine",
    protocol_honoured: bool | None = None,
    protocol_note: str = "",
    target_far: float | None = None,
) -> LfwReport:
    """The View 2 protocol on precomputed pair distances.

    Args:
        distances: `(n,)` distance of each pair (from the model of that pair's fold).
        same: `(n,)` bool.
        folds: `(n,)` int fold of each pair.
        target_far: as in `evaluate_lfw`.

    Returns:
        An `LfwReport`.
    """
    d = np.asarray(distances, np.float64)
    s = np.asarray(same).astype(bool)
    f = np.asarray(folds)
    if not (d.shape == s.shape == f.shape) or d.ndim != 1:
        raise FacespaceError(f"distances, same and folds must be (n,) arrays of one length; got {d.shape}, {s.shape}, {f.shape}")
    return _report(lambda k: d, s, f, metric=metric, protocol_honoured=protocol_honoured, protocol_note=protocol_note,
                   target_far=target_far)


def evaluate_fold_distances(
    distances_for: Callable[[int], Any],
    same: Any,
    folds: Any,
    *,
    metric: str = "cosine",
    protocol_note: str = "per-fold scoring fitted on the other folds' people",
    target_far: float | None = None,
) -> LfwReport:
    """The View 2 protocol where each fold scores its pairs its own way (an adaptation fitted on the
    other folds' people): `distances_for(k)` gives all `(n,)` pair distances under fold k's scoring;
    fold k is scored with the threshold chosen on the other folds' pairs under that same scoring."""
    s = np.asarray(same).astype(bool)
    f = np.asarray(folds)
    return _report(lambda k: np.asarray(distances_for(int(k)), np.float64), s, f, metric=metric,
                   protocol_honoured=True, protocol_note=protocol_note, target_far=target_far)


def _report(distances_for: Callable[[Any], np.ndarray], s, f, *, metric, protocol_honoured, protocol_note,
            tested_folds: Any = None, calibration_fold: Callable[[Any], Any] | None = None,
            target_far: float | None = None) -> LfwReport:
    """`distances_for(fold)` gives all pairs' distances under that fold's model; `tested_folds`
    (default: all) are the folds scored, each with a threshold from all the other folds, or from
    the one fold `calibration_fold(fold)` when given (at `target_far` of their different-person pairs
    when given, else their most accurate)."""
    labels = np.unique(f)
    if len(labels) < 2:
        raise FacespaceError("the protocol needs at least two folds")
    if target_far is not None and not 0.0 < target_far < 1.0:
        raise FacespaceError(f"target_far must be a false-accept rate in (0, 1), e.g. 0.1; got {target_far}")
    scored = labels if tested_folds is None else np.asarray(sorted(tested_folds))
    accs, ths, best, tested = [], [], [], np.full(len(s), np.nan)
    for k in scored:
        d = distances_for(k)
        test = f == k
        seen = ~test if calibration_fold is None else f == calibration_fold(k)
        t = calibrate_threshold(d[seen], s[seen], target_far=target_far)  # chosen on the other folds only
        accs.append(pair_accuracy(d[test], s[test], t))
        ths.append(t)
        best.append(pair_accuracy(d[test], s[test], calibrate_threshold(d[test], s[test])))
        tested[test] = d[test]
    keep = ~np.isnan(tested)
    fpr, tpr, auc, eer, tar = roc_metrics(tested[keep], s[keep])
    acc = np.array(accs)
    return LfwReport(
        fold_accuracies=[float(a) for a in acc],
        thresholds=[float(t) for t in ths],
        mean_accuracy=float(acc.mean()),
        standard_error=float(acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else float("nan"),
        auc=auc,
        eer=eer,
        tar_at_far=tar,
        fpr=fpr,
        tpr=tpr,
        n_pairs=int(keep.sum()),
        metric=metric,
        protocol_honoured=protocol_honoured,
        protocol_note=protocol_note,
        folds=[int(k) + 1 for k in scored],
        full_protocol=len(scored) == len(labels),
        best_accuracies=[float(a) for a in best],
        target_far=target_far,
    )


def find_lfw_root(pairs_path: str | os.PathLike, lfw: str | os.PathLike | None = None) -> Path:
    """The LFW image folder: `lfw` if given, else a `lfw-deepfunneled`, `lfw` or the pairs file's folder."""
    if lfw is not None:
        root = Path(lfw)
        if not root.is_dir():
            raise DataError(f"LFW folder {root} does not exist; pass the folder holding <Name>/<Name>_0001.jpg")
        return root
    here = Path(pairs_path).parent
    for cand in (here / "lfw-deepfunneled", here / "lfw", here / "lfw_funneled", here):
        if cand.is_dir() and any(p.is_dir() for p in cand.iterdir()):
            return cand
    raise DataError(f"no LFW image folder found beside {pairs_path}; pass --lfw DIR")


def pair_rows(pairs: list[Any], root: Path, faces: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `faces` (loaded from `root`) holding both sides of each pair; refuses missing images."""
    from facespace.data import pair_paths

    row = {os.path.basename(str(p)): i for i, p in enumerate(faces.paths)}
    both = pair_paths(pairs, root)
    missing = [str(p) for ab in both for p in ab if p.name not in row]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) named in the pairs file are not under {root}, e.g. {missing[0]}; "
            "pass the LFW folder with --lfw"
        )
    return np.array([row[a.name] for a, _ in both]), np.array([row[b.name] for _, b in both])


def evaluate_lfw(
    model: Encoder | None = None,
    pairs: Any = "pairs.txt",
    lfw: str | os.PathLike | None = None,
    *,
    train_fn: Callable[[Any], Any] | None = None,
    metric: str = "cosine",
    size: int = 32,
    grayscale: bool = False,
    crop: Any = "recorded",
    folds: Any = None,
    roc: str | os.PathLike | None = None,
    progress: bool = True,
    calibrate: str = "other-folds",
    train_people: str = "other-folds",
    target_far: float | None = None,
) -> LfwReport:
    """Evaluate verification on LFW pairs with the View 2 protocol.

    Args:
        model: a fixed `Encoder` (trained elsewhere), or None when `train_fn` trains one per fold.
        pairs: an LFW pairs file (`pairs.txt`: 10 folds), or several read as one (each file's folds
            after the previous file's: View 1's `[pairsDevTrain.txt, pairsDevTest.txt]` is two folds).
        lfw: the image folder (`<Name>/<Name>_NNNN.jpg`); default: found beside the pairs file.
        train_fn: `train_fn(train_faces: FaceSet) -> Encoder`, called once per fold with only
            the images of the other folds' people.
        metric: "cosine" or "l2".
        size, grayscale: image size when there is no `model` to take it from.
        crop: how faces are cut from the image files (`facespace.data.crops.parse_crop`); "recorded":
            the crop recorded with `model` ("lfw" when there is none, or no model).
        folds: test only these folds (numbers from 1, as in the file); the report then says it is
            not the full protocol. Thresholds still come from the other folds (see `calibrate`).
        roc: where to write the ROC curve PNG (optional).
        progress: messages to stderr.
        calibrate: "other-folds" (threshold from the nine other folds' pairs) or "held-out-fold"
            (needs `train_fn`: each fold's model also trains without the next fold's people, and
            the threshold comes from that fold's pairs only).
        train_people: whom a fold's model trains on: "other-folds" (the people of the other folds' pairs)
            or "untested" (every person in `lfw` outside the tested fold, and the held-out fold if any:
            also people in no pair, e.g. for View 1, whose DevTrain names fewer people than a View 2 fold's nine).
        target_far: None: each threshold is the most accurate on its calibration pairs; a rate such as
            0.1: the threshold accepting that share of their different-person pairs (their same-person
            pairs, tightened by training on those people, are left out).

    Returns:
        An `LfwReport`.
    """
    from facespace.data import read_pair_files

    if model is None and train_fn is None:
        raise FacespaceError("pass a model, or a train_fn that trains one per fold")
    if calibrate not in CALIBRATIONS:
        raise FacespaceError(f"unknown calibrate={calibrate!r}; choose one of {', '.join(CALIBRATIONS)}")
    if train_people not in TRAIN_PEOPLE:
        raise FacespaceError(f"unknown train_people={train_people!r}; choose one of {', '.join(TRAIN_PEOPLE)}")
    if calibrate != "other-folds" and train_fn is None:
        raise FacespaceError(f"calibrate={calibrate!r} keeps a fold out of each fold's training, so it needs "
                             "per-fold training (a train_fn, or --retrain), not a fixed model")
    plist = read_pair_files(pairs)
    if not plist:
        raise DataError(f"{pairs} holds no pairs")
    root = find_lfw_root(pairs if isinstance(pairs, (str, os.PathLike)) else pairs[0], lfw)
    fold_of = np.array([int(p.fold) for p in plist])
    same = np.array([bool(p.same) for p in plist])
    if len(np.unique(fold_of)) < 2:
        raise DataError(f"{pairs} has a single fold; the View 2 protocol needs pairs.txt with its 10 folds "
                        "(or View 1's pairsDevTrain.txt and pairsDevTest.txt together, as two folds)")
    tested = tested_folds(folds, np.unique(fold_of), pairs)
    if model is not None:
        size, _, channels = model.image_shape
        grayscale = channels == 1
    from facespace.data.crops import crop_name, resolve_crop

    crop = resolve_crop(model, crop)  # without a model, "recorded" is the default crop
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    from facespace.data import load_faces

    say(f"loading LFW from {root} at {size}x{size}, crop {crop_name(crop)}")
    faces = load_faces(str(root), size=size, crop=crop, grayscale=grayscale, progress=progress)
    ia, ib = pair_rows(plist, root, faces)
    folds = fold_of
    if train_fn is None:
        used = np.union1d(ia, ib)
        codes = np.zeros((len(faces), model.code_size), np.float32)
        codes[used] = model.encode(faces.images[used])
        d = pair_distances(codes[ia], codes[ib], metric=metric)
        report = _report(
            lambda k: d, same, folds, metric=metric, protocol_honoured=None, tested_folds=tested, target_far=target_far,
            protocol_note="one fixed model for all folds, trained outside this evaluation: whether it saw "
            "the tested folds' people cannot be checked (pass a per-fold train_fn to honour the protocol)",
        )
    else:
        report = _evaluate_per_fold(train_fn, plist, faces, folds, same, ia, ib, metric=metric, say=say, tested=tested,
                                    held_out=calibrate == "held-out-fold", untested=train_people == "untested",
                                    target_far=target_far)
    report.crop = crop_name(crop)
    if not report.full_protocol:
        report.protocol_note += (f"; only fold(s) {', '.join(map(str, report.folds))} of {len(np.unique(folds))} "
                                 "were tested: NOT the full View 2 protocol (test every fold for it)")
    if roc is not None:
        save_roc(report, roc)
    return report


def _evaluate_per_fold(train_fn, plist, faces, folds, same, ia, ib, *, metric, say, tested=None,
                       held_out=False, untested=False, target_far=None) -> LfwReport:
    labels = list(np.unique(folds))
    calibration = (lambda k: labels[(labels.index(k) + 1) % len(labels)]) if held_out else None
    by_fold: dict[Any, np.ndarray] = {}
    honoured = True
    todo = np.unique(folds) if tested is None else tested
    for n, k in enumerate(todo):
        train, banned = fold_training_faces(plist, faces, k, held_out=held_out, untested=untested)
        honoured &= not (set(train.names.tolist()) & banned)
        held = "" if calibration is None else f", fold {calibration(k) + 1} held out for the threshold"
        whom = "outside the tested fold" if untested else "of the other folds"
        say(f"fold {k + 1} ({n + 1}/{len(todo)}): training on {len(train)} images of {len(set(train.names.tolist()))} people {whom}{held}")
        m = train_fn(train)
        used = np.union1d(ia, ib)
        codes = np.zeros((len(faces), m.code_size), np.float32)
        codes[used] = m.encode(faces.images[used])
        by_fold[k] = pair_distances(codes[ia], codes[ib], metric=metric)
    note = ("honoured: each fold's model was trained and its threshold chosen without any image of that "
            "fold's people" if honoured else "NOT honoured: a tested fold's person was in its training data")
    if calibration is not None:
        note += ("; each threshold was chosen on the next fold's pairs only, whose people that fold's model "
                 "did not train on either")
    return _report(lambda k: by_fold[k], same, folds, metric=metric, protocol_honoured=bool(honoured),
                   protocol_note=note, tested_folds=tested, calibration_fold=calibration, target_far=target_far)
