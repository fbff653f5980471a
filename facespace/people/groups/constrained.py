"""Clusters that honour a person's corrections: must-link, cannot-link, and ids that stay put.

Pure functions on arrays, used by `facespace.people.groups.groups`. A clustering is an `(n,)` int label array,
`-1` for noise. Constraints are pairs of row indices. `must_components` joins must-linked rows
into components (a union-find); `enforce` then changes a clustering as little as it can so that

- every must-link component lies in one cluster (all of it moves to the cluster holding most of
  its rows; a component that is all noise, or a row listed in `keep`, becomes a cluster of its own),
- no cannot-link pair shares a cluster (of two conflicting components in one cluster, the one
  farther from the cluster's centroid leaves, taking along only the members nearer to it than to
  the rest of the cluster; repeated until no conflict is left).

`match_labels` maps a new clustering onto the previous one's ids by maximum overlap (the
Hungarian algorithm on shared rows), so ids stay stable across re-clustering.

Example:
    >>> points = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> enforce(points, np.array([0, 0, 0, 0]), must=[], cannot=[(0, 3)]).tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from facespace.errors import FacespaceError

Pairs = Iterable[tuple[int, int]]


def must_components(n: int, must: Pairs) -> np.ndarray:
    """Connected components of the must-link graph.

    Args:
        n: number of rows.
        must: pairs `(i, j)` of row indices in `[0, n)`.

    Returns:
        `(n,)` int64: each row's component, numbered by the smallest row in it (a row without
        must-links is its own component).
    """
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees flat
            i = parent[i]
        return int(i)

    for a, b in must:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], np.int64)


def contradictions(components: np.ndarray, cannot: Pairs) -> list[tuple[int, int]]:
    """The cannot-link pairs whose two rows are joined by must-links (they can never be honoured)."""
    return [(int(a), int(b)) for a, b in cannot if components[a] == components[b]]


def _centroid(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return points[rows].mean(0)


def enforce(points: np.ndarray, labels: np.ndarray, *, must: Pairs, cannot: Pairs, keep: Iterable[int] = ()) -> np.ndarray:
    """Change a clustering as little as needed to honour must-links and cannot-links.

    Args:
        points: `(n, d)` codes as the clustering saw them (unit rows for the cosine metric);
            used to send a split cluster's other members to the nearer side.
        labels: `(n,)` int clusters, `-1` for noise.
        must: pairs of rows that must share a cluster.
        cannot: pairs of rows that must not share a cluster.
        keep: rows whose component must be in a cluster even when the clustering left it as noise
            (the confirmed faces of a named group).

    Returns:
        `(n,)` int64 labels: the old labels where they already comply, new labels (above the old
        maximum) for clusters made by moving noise components or by splitting.

    Raises:
        FacespaceError: a cannot-link between rows that must-links join (no clustering honours both).
    """
    labels = np.asarray(labels, np.int64).copy()
    n = len(labels)
    comp = must_components(n, must)
    cannot = [(int(a), int(b)) for a, b in cannot]
    bad = contradictions(comp, cannot)
    if bad:
        a, b = bad[0]
        raise FacespaceError(f"rows {a} and {b} are both must-linked (through other faces) and cannot-linked; "
                             "remove one of those links")
    next_label = int(labels.max(initial=-1)) + 1
    members: dict[int, np.ndarray] = {}
    order = np.argsort(comp, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(comp[order]) != 0])
    for rows in np.split(order, starts[1:]):
        members[int(comp[rows[0]])] = rows
    kept = {int(comp[r]) for r in keep}
    # 1. must: each multi-row component (or kept one) moves whole to its most common cluster
    for c, rows in members.items():
        if len(rows) < 2 and c not in kept:
            continue
        own = labels[rows]
        own = own[own >= 0]
        if len(own) == 0:
            labels[rows] = next_label
            next_label += 1
        elif (own != own[0]).any() or len(own) < len(rows):
            values, counts = np.unique(own, return_counts=True)
            labels[rows] = values[np.argmax(counts)]  # ties: the smallest label
    # 2. cannot: split any cluster holding two conflicting components, until none does
    against: dict[int, set[int]] = {}
    for a, b in cannot:
        against.setdefault(int(comp[a]), set()).add(int(comp[b]))
        against.setdefault(int(comp[b]), set()).add(int(comp[a]))
    work = sorted({int(labels[a]) for a, b in cannot if labels[a] >= 0 and labels[a] == labels[b]})
    while work:
        label = work.pop()
        rows = np.flatnonzero(labels == label)
        comps = sorted(set(comp[rows].tolist()))
        present = set(comps)
        pair = next(((c, o) for c in comps for o in sorted(against.get(c, ())) if o in present and o > c), None)
        if pair is None:
            continue
        ca, cb = pair
        # the component farther from the cluster's centroid leaves, taking along only the members
        # nearer to it than to the rest of the cluster: a minimal change, not a cut in half
        middle = _centroid(points, rows)
        if np.linalg.norm(_centroid(points, members[ca]) - middle) > np.linalg.norm(_centroid(points, members[cb]) - middle):
            ca, cb = cb, ca
        seed_b = _centroid(points, members[cb])
        seed_a = _centroid(points, np.setdiff1d(rows, members[cb]))
        new = next_label
        next_label += 1
        for c in comps:
            rows_c = members[c]
            if c == ca or (cb in against.get(c, ()) and ca not in against.get(c, ())):
                continue  # stays
            if c == cb or (ca in against.get(c, ()) and cb not in against.get(c, ())):
                labels[rows_c] = new
                continue
            mid = _centroid(points, rows_c)
            if np.linalg.norm(mid - seed_b) < np.linalg.norm(mid - seed_a):
                labels[rows_c] = new
        work += [label, new]  # either side may still hold another conflicting pair
    return labels


def match_labels(old: np.ndarray, new: np.ndarray, *, forced: dict[int, int] | None = None) -> dict[int, int]:
    """Map each new cluster to an old id by maximum overlap of rows (Hungarian matching).

    Args:
        old: `(n,)` int old ids per row, `-1` for none (noise, or a row new to this clustering).
        new: `(n,)` int new clusters per row, `-1` for noise.
        forced: `{new cluster: old id}` decided beforehand (named groups, the kept side of a split);
            those clusters and ids take no part in the matching.

    Returns:
        `{new cluster: old id}` for the matched clusters (sharing at least one row); the others
        need fresh ids.
    """
    from scipy.optimize import linear_sum_assignment

    old = np.asarray(old, np.int64)
    new = np.asarray(new, np.int64)
    forced = dict(forced or {})
    taken = set(forced.values())
    both = (old >= 0) & (new >= 0)
    both &= ~np.isin(new, list(forced)) & ~np.isin(old, list(taken))
    if not both.any():
        return forced
    old_ids, oi = np.unique(old[both], return_inverse=True)
    new_ids, ni = np.unique(new[both], return_inverse=True)
    overlap = np.zeros((len(new_ids), len(old_ids)), np.int64)
    np.add.at(overlap, (ni, oi), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    out = dict(forced)
    for r, c in zip(rows, cols):
        if overlap[r, c] > 0:
            out[int(new_ids[r])] = int(old_ids[c])
    return out
