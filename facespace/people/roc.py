"""The ROC of LFW pairs: its numbers (AUC, EER, TAR at fixed false-accept rates) and its figure
(true- against false-accept rate, log axis, with the EER and TAR@FAR points)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from facespace.errors import FacespaceError

FARS = (0.01, 0.001)


def roc_metrics(distances: Any, same: Any) -> tuple[np.ndarray, np.ndarray, float, float, dict[float, float]]:
    """ROC of `distance <= t` as the same-person test.

    Returns:
        `(fpr, tpr, auc, eer, {far: tar})`; the EER is interpolated where FAR = FRR.
    """
    d = np.asarray(distances, np.float64)
    s = np.asarray(same).astype(bool)
    if s.all() or not s.any():
        raise FacespaceError("an ROC needs both same-person and different-person pairs")
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    last = np.r_[np.flatnonzero(ds[1:] != ds[:-1]), len(ds) - 1]  # one point per distinct threshold
    tpr = np.r_[0.0, np.cumsum(ss)[last] / ss.sum()]
    fpr = np.r_[0.0, np.cumsum(~ss)[last] / (~ss).sum()]
    auc = float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))
    frr = 1.0 - tpr
    i = int(np.flatnonzero(fpr >= frr)[0])  # first point where false accepts catch up with false rejects
    if i == 0:
        eer = float(fpr[0])
    else:  # interpolate between points i-1 and i on the line fpr - frr = 0
        g0, g1 = fpr[i - 1] - frr[i - 1], fpr[i] - frr[i]
        w = g0 / (g0 - g1)
        eer = float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))
    tar = {far: float(tpr[fpr <= far + 1e-12].max()) for far in FARS}
    return fpr, tpr, auc, eer, tar


def save_roc(report: Any, path: str | os.PathLike, *, title: str = "LFW View 2 ROC") -> Path:
    """Draw the ROC curve (log false-accept axis) with the EER and TAR@FAR points, as a PNG (atomic).

    Args:
        report: a `facespace.people.lfw.LfwReport` (its fpr, tpr, auc, eer, tar_at_far, mean_accuracy).
        path: the PNG to write (a temporary name, then renamed).
        title: the figure's title.
    """
    from matplotlib.figure import Figure

    from facespace.files import write_bytes_atomic

    fig = Figure(figsize=(5, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    fpr = np.maximum(report.fpr, 1e-4)
    ax.plot(fpr, report.tpr, lw=1.6, label=f"AUC {report.auc:.3f}, acc {report.mean_accuracy:.3f}")
    chance = np.logspace(-4, 0, 50)
    ax.plot(chance, chance, color="grey", lw=0.8, ls=":")
    ax.scatter([report.eer], [1 - report.eer], color="red", zorder=3, label=f"EER {report.eer:.3f}")
    for far, tar in report.tar_at_far.items():
        ax.scatter([far], [tar], marker="s", zorder=3, label=f"TAR {tar:.3f} @ FAR {far:g}")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes_atomic(path, buf.getvalue())
