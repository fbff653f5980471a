"""Threshold calibration from your own labelled pairs: curves, a threshold, and where it is stored.

Labelled pairs come from an LFW pairs file, a CSV `path_a,path_b,same[,name_a,name_b]`, or a folder
of identities (`DIR/<Name>/*.jpg`: every same-person pair plus an equal, seeded sample of
different-person pairs). `calibrate_pairs` encodes each image once and gives the false-accept /
false-reject curves and the threshold for a target false-accept rate (or of best accuracy), to
store with the model (`facespace.people.verification.save_threshold`, used by `verify`).

A gallery decides differently from a pair: `identify` accepts the nearest enrolled *person* (the
nearest of their faces) when that distance is within the threshold, so a stranger is falsely
accepted when *any* enrolled person is near. `calibrate_gallery` therefore scores each labelled
image against the gallery as identify would: a genuine score is the distance to the image's own
enrolled person, an impostor score the distance to the nearest other person; per-person thresholds
use one person's genuine scores and every other image's distance to that person.

Example:
    >>> d = np.array([0.1, 0.2, 0.6, 0.7]); same = np.array([True, True, False, False])
    >>> c = summarize(d, same, target_far=0.0)
    >>> (c.far, c.frr, c.accuracy)
    (0.0, 0.0, 1.0)
"""

from __future__ import annotations

import csv
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facespace.errors import DataError, FacespaceError
from facespace.people.thresholds import error_curves
from facespace.protocol import Encoder

TRUE_WORDS = {"1", "true", "yes", "same", "y", "t"}
FALSE_WORDS = {"0", "false", "no", "different", "diff", "n", "f"}


@dataclass(frozen=True)
class LabelledPairs:
    """Pairs of image files and whether each shows one person.

    Attributes:
        paths_a, paths_b: `n` image paths each.
        same: `(n,)` bool.
        names_a, names_b: the person in each image where known (LFW, folders, CSV name columns), else None.
        source: where the pairs came from (for messages).
    """

    paths_a: list[str]
    paths_b: list[str]
    same: np.ndarray
    names_a: list[str | None]
    names_b: list[str | None]
    source: str = ""

    def __len__(self) -> int:
        return len(self.paths_a)

    def labelled_images(self) -> dict[str, str | None]:
        """`{path: name}` of every distinct image (name None when unknown)."""
        out: dict[str, str | None] = {}
        for p, n in itertools.chain(zip(self.paths_a, self.names_a), zip(self.paths_b, self.names_b)):
            out.setdefault(p, n)
        return out


@dataclass(frozen=True)
class Calibration:
    """A threshold and what it does on the calibration scores (`score <= threshold` accepts).

    Attributes:
        threshold: the distance threshold.
        metric: the distance it applies to.
        target_far: the false-accept rate asked for (None: best accuracy).
        far: false-accept rate on these scores (impostors accepted).
        frr: false-reject rate (genuine scores rejected).
        accuracy: fraction of scores classified right.
        n_genuine, n_impostor: how many scores of each kind.
        scores, genuine: `(n,)` float64 distances and `(n,)` bool labels (for the curves).
    """

    threshold: float
    metric: str
    target_far: float | None
    far: float
    frr: float
    accuracy: float
    n_genuine: int
    n_impostor: int
    scores: np.ndarray = field(repr=False)
    genuine: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts (no arrays)."""
        return {"threshold": self.threshold, "metric": self.metric, "target_far": self.target_far, "far": self.far,
                "frr": self.frr, "accuracy": self.accuracy, "eer": self.eer, "n_pairs": self.n_genuine + self.n_impostor,
                "n_same": self.n_genuine, "n_different": self.n_impostor}

    @property
    def eer(self) -> float:
        """Equal error rate: where the false-accept and false-reject curves cross (mean of the two there)."""
        _, far, frr = error_curves(self.scores, self.genuine)
        k = int(np.argmin(np.abs(far - frr)))
        return float((far[k] + frr[k]) / 2.0)


# --- labelled pairs in ------------------------------------------------------------------------


def read_pair_file(path: str | os.PathLike, *, lfw: str | os.PathLike | None = None) -> LabelledPairs:
    """Pairs from an LFW pairs file (header `10\\t300` or `N`) or a CSV `path_a,path_b,same`.

    Args:
        path: the file.
        lfw: LFW pairs only: the image folder (`<Name>/<Name>_NNNN.jpg`); default: found beside the file.

    Raises DataError for a missing or empty file, or a malformed line (named with its number).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file; check the path")
    try:
        first = next((line for line in path.read_text("utf-8").splitlines() if line.strip()), "")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the pairs file ({e})") from None
    if not first:
        raise DataError(f"{path}: empty pairs file; write lines 'path_a,path_b,same' or use an LFW pairs file")
    if all(part.isdigit() for part in first.split()) and "," not in first:
        from facespace.data import pair_paths, read_pairs
        from facespace.people.lfw import find_lfw_root

        pairs = read_pairs(path)
        root = find_lfw_root(path, lfw)
        both = pair_paths(pairs, root)
        return LabelledPairs([str(a) for a, _ in both], [str(b) for _, b in both], np.array([p.same for p in pairs]),
                             [p.name_a for p in pairs], [p.name_b for p in pairs], str(path))
    return read_pairs_csv(path)


def _same_value(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in TRUE_WORDS:
        return True
    if t in FALSE_WORDS:
        return False
    raise DataError(f"{where}: 'same' must be 1/0, true/false or yes/no; got {text!r}")


def read_pairs_csv(path: str | os.PathLike) -> LabelledPairs:
    """Pairs from a CSV: `path_a,path_b,same` (+ optional `name_a,name_b`), with or without a header.

    Relative image paths are relative to the CSV's folder.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(no, r) for no, r in enumerate(csv.reader(f), start=1) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: empty pairs file; write lines 'path_a,path_b,same'")
    columns = ["path_a", "path_b", "same", "name_a", "name_b"]
    head = [c.strip().lower() for c in rows[0][1]]
    if "path_a" in head or "same" in head:
        missing = [c for c in columns[:3] if c not in head]
        if missing:
            raise DataError(f"{path}:1: the header lacks {', '.join(missing)}; expected path_a,path_b,same[,name_a,name_b]")
        columns, rows = head, rows[1:]
    a, b, same, na, nb = [], [], [], [], []
    base = path.parent
    for no, r in rows:
        where = f"{path}:{no}"
        if len(r) < 3 or len(r) > len(columns):
            raise DataError(f"{where}: expected path_a,path_b,same[,name_a,name_b]; got {len(r)} fields")
        rec = dict(zip(columns, (c.strip() for c in r)))
        if not rec["path_a"] or not rec["path_b"]:
            raise DataError(f"{where}: an empty image path; give both images of the pair")
        a.append(str(base / rec["path_a"]))
        b.append(str(base / rec["path_b"]))
        same.append(_same_value(rec["same"], where))
        na.append(rec.get("name_a") or None)
        nb.append(rec.get("name_b") or None)
    if not a:
        raise DataError(f"{path}: a header but no pairs; add lines 'path_a,path_b,same'")
    return LabelledPairs(a, b, np.array(same, bool), na, nb, str(path))


def folder_pairs(folder: str | os.PathLike, *, seed: int = 0, max_same: int | None = None) -> LabelledPairs:
    """Pairs from a folder of identities `DIR/<Name>/<images>`: every same-person pair (at most
    `max_same`, a seeded sample) and as many different-person pairs, sampled with `seed`.

    Raises DataError for a missing folder, fewer than two identities, or nobody with two images.
    """
    from facespace.data.images import is_image_file

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; pass a folder with one sub-folder of images per person")
    people = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(str(f) for f in sub.rglob("*") if f.is_file() and is_image_file(f) and not f.name.startswith("."))
        if files:
            people[sub.name] = files
    if len(people) < 2:
        raise DataError(f"{root} holds {len(people)} identity folder(s) with images; calibration needs at least two "
                        "people (one sub-folder of images each) to count false accepts")
    rng = np.random.default_rng(seed)
    same_pairs = [(p, q, n, n) for n, files in people.items() for p, q in itertools.combinations(files, 2)]
    if not same_pairs:
        raise DataError(f"nobody in {root} has two images; calibration needs same-person pairs: add a second image of someone")
    if max_same is not None and len(same_pairs) > max_same:
        same_pairs = [same_pairs[i] for i in sorted(rng.choice(len(same_pairs), max_same, replace=False))]
    images = [(f, n) for n, files in people.items() for f in files]
    label = np.array([list(people).index(n) for _, n in images])
    n_diff_possible = (len(images) ** 2 - int((np.bincount(label) ** 2).sum())) // 2
    want = min(len(same_pairs), n_diff_possible)
    chosen: set[tuple[int, int]] = set()
    if n_diff_possible <= 4 * want:  # few people: list every different-person pair and draw from them
        every = [(x, y) for x, y in itertools.combinations(range(len(images)), 2) if label[x] != label[y]]
        chosen = {every[k] for k in rng.choice(len(every), want, replace=False)}
    while len(chosen) < want:  # many people: rejection sampling of distinct different-person pairs
        i, j = rng.integers(0, len(images), size=(2, 2 * (want - len(chosen)) + 8))
        for x, y in zip(i, j):
            if label[x] != label[y] and len(chosen) < want:
                chosen.add((min(x, y), max(x, y)))
    diff = [(images[x][0], images[y][0], images[x][1], images[y][1]) for x, y in sorted(chosen)]
    rows = same_pairs + diff
    return LabelledPairs([r[0] for r in rows], [r[1] for r in rows],
                         np.array([True] * len(same_pairs) + [False] * len(diff)),
                         [r[2] for r in rows], [r[3] for r in rows], str(root))


# --- encoding ---------------------------------------------------------------------------------


def encode_files(model: Encoder, paths: list[str], *, detect: bool = False,
                 detector: str = "auto") -> tuple[np.ndarray, list[str]]:
    """Codes of image files, each once (cut as the model cuts files: `facespace.photos.faces.model_crops`);
    with `detect`, of the surest face in each photo.

    Returns:
        `(codes (n, d) float32 with NaN rows for photos without a face, those photos)`; a missing or
        unreadable file raises DataError naming it.
    """
    from facespace.photos.faces import model_crops

    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DataError(f"{len(missing)} image(s) named in the pairs do not exist, e.g. {missing[0]}; "
                        "check the paths (CSV paths are relative to the CSV's folder; LFW needs --lfw)")
    crops = model_crops(model, paths, detect=detect, max_faces=1 if detect else None, detector=detector)
    codes = np.full((len(paths), int(model.code_size)), np.nan, np.float32)
    if len(crops):
        row = {p: i for i, p in enumerate(paths)}
        codes[[row[s] for s in crops.sources]] = model.encode(crops.images)
    return codes, list(crops.no_face)


# --- thresholds and curves --------------------------------------------------------------------


def summarize(scores: Any, genuine: Any, *, target_far: float | None = 0.01, metric: str = "cosine") -> Calibration:
    """Choose the threshold for `target_far` (None: best accuracy) and measure it on the scores."""
    from facespace.people.thresholds import calibrate_threshold

    s = np.asarray(scores, np.float64).ravel()
    g = np.asarray(genuine, bool).ravel()
    if len(s) == 0:
        raise FacespaceError("no scores to calibrate on; give labelled pairs")
    if not g.any() or g.all():
        raise FacespaceError(f"calibration needs both same-person and different-person pairs; got {int(g.sum())} same "
                             f"and {int((~g).sum())} different")
    t = calibrate_threshold(s, g, target_far=target_far)
    acc = float(((s <= t) == g).mean())
    return Calibration(float(t), metric, target_far, float((s[~g] <= t).mean()), float((s[g] > t).mean()), acc,
                       int(g.sum()), int((~g).sum()), s, g)


def calibrate_pairs(model: Encoder, pairs: LabelledPairs, *, target_far: float | None = 0.01, metric: str = "cosine",
                    detect: bool = False, detector: str = "auto") -> tuple[Calibration, list[str]]:
    """Calibrate a model's verification threshold on labelled pairs of image files.

    Returns:
        `(calibration, photos without a face)`; pairs with such a photo are left out.
    """
    from facespace.people.distances import pair_distances

    paths = sorted(set(pairs.paths_a) | set(pairs.paths_b))
    codes, no_face = encode_files(model, paths, detect=detect, detector=detector)
    row = {p: i for i, p in enumerate(paths)}
    ia = np.array([row[p] for p in pairs.paths_a])
    ib = np.array([row[p] for p in pairs.paths_b])
    ok = np.isfinite(codes[ia]).all(1) & np.isfinite(codes[ib]).all(1)
    if len(pairs) and not ok.any():
        raise DataError(f"no pair is left to calibrate on: every pair holds one of the {len(no_face)} photo(s) without "
                        f"a face found, e.g. {no_face[0]}; use photos with clear, upright faces")
    d = pair_distances(codes[ia[ok]], codes[ib[ok]], metric=metric)
    return summarize(d, pairs.same[ok], target_far=target_far, metric=metric), no_face


def calibrate_gallery(gallery: Any, pairs: LabelledPairs, *, target_far: float | None = 0.01, per_person: bool = False,
                      detect: bool = False, detector: str = "auto", store: bool = True) -> tuple[Calibration, dict[str, dict[str, Any]], list[str]]:
    """Calibrate a gallery's stranger threshold (and per-person ones) as `identify` decides.

    Args:
        gallery: an open `facespace.people.gallery.gallery.Gallery` with its model.
        pairs: labelled pairs with names (their images are the probes; the pairing itself is not used).
        target_far: false-accept rate (None: best accuracy).
        per_person: also a threshold for each enrolled person with scores of their own.
        detect: crop the surest face of each photo first.
        store: write the thresholds into the gallery (`calibrate(max_distance=)`, `set_max_distance`).

    Returns:
        `(global calibration, {name: {"threshold", "n_genuine", "n_impostor"}}, photos without a face)`.
    """
    from facespace.people.thresholds import calibrate_threshold
    from facespace.people.distances import cross_distances

    labelled = pairs.labelled_images()
    if any(n is None for n in labelled.values()):
        raise DataError(f"{pairs.source}: calibrating a gallery needs each image's person; use --folder DIR, an LFW "
                        "pairs file, or CSV columns name_a,name_b")
    paths = sorted(labelled)
    codes, no_face = encode_files(gallery.model, paths, detect=detect, detector=detector)
    ok = np.isfinite(codes).all(1)
    probes, names = codes[ok], [labelled[p] for p, k in zip(paths, ok) if k]
    enrolled, person, people = gallery.codes()
    if len(people) < 1:
        raise FacespaceError(f"gallery {gallery.path} has nobody enrolled; enrol people before calibrating it")
    d = cross_distances(probes, enrolled, metric=gallery.metric)  # (q, n)
    d[d < 1e-6] = np.inf  # an image that is itself enrolled is no evidence about its own threshold
    to_person = np.full((len(probes), len(people)), np.inf)
    for j in range(len(people)):
        if (person == j).any():
            to_person[:, j] = d[:, person == j].min(1)  # identify's distance: nearest face of each person
    own = np.array([[n == p for p in people] for n in names], bool).reshape(len(names), len(people))
    genuine = to_person[own & np.isfinite(to_person)]
    impostor = np.where(own, np.inf, to_person).min(1)
    impostor = impostor[np.isfinite(impostor)]
    overall = summarize(np.concatenate([genuine, impostor]), np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)],
                        target_far=target_far, metric=gallery.metric)
    thresholds: dict[str, dict[str, Any]] = {}
    if per_person:
        for j, name in enumerate(people):
            g, m = to_person[own[:, j], j], to_person[~own[:, j], j]
            g, m = g[np.isfinite(g)], m[np.isfinite(m)]
            if len(m) == 0 or (target_far is None and len(g) == 0):
                continue  # no evidence: this person keeps the gallery's threshold
            labels = np.r_[np.ones(len(g), bool), np.zeros(len(m), bool)]
            t = calibrate_threshold(np.concatenate([g, m]), labels, target_far=target_far)
            thresholds[name] = {"threshold": float(t), "n_genuine": int(len(g)), "n_impostor": int(len(m))}
    if store:
        gallery.calibrate(max_distance=overall.threshold)
        for name, info in thresholds.items():
            gallery.set_max_distance(name, info["threshold"])
    return overall, thresholds, no_face


def plot_curves(c: Calibration, path: str | os.PathLike, *, title: str = "") -> Path:
    """Write the false-accept and false-reject curves against the threshold as a PNG (atomically)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from facespace.files import write_bytes_atomic

    t, far, frr = error_curves(c.scores, c.genuine)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.step(t, far, where="post", label="false accepts (different people accepted)", color="tab:red")
    ax.step(t, frr, where="post", label="false rejects (same person rejected)", color="tab:blue")
    ax.axvline(c.threshold, color="black", linestyle="--", linewidth=1,
               label=f"threshold {c.threshold:.4f}: FAR {c.far:.3f}, FRR {c.frr:.3f}")
    ax.set_xlabel(f"{c.metric} distance threshold")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title((title + "\n" if title else "") + f"{c.n_genuine} same + {c.n_impostor} different; equal error rate {c.eer:.3f}",
                 fontsize=10)
    ax.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes_atomic(path, buf.getvalue())
