"""The ROC figure of LFW pairs: true- against false-accept rate, log axis, with the EER and TAR@FAR
points (the numbers come from `facespace.people.thresholds.roc_metrics`)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np


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
