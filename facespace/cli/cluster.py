"""`facespace index cluster INDEX`: group the faces of an index by person."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Optional

import typer

from facespace.cli._util import say
from facespace.errors import FacespaceError


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add `cluster` to the `index` noun."""

    @nouns["index"].command("cluster")
    def cluster_index(
        index: Path = typer.Argument(..., help="An index file built with `facespace index`."),
        method: str = typer.Option("hdbscan", help="dbscan, hdbscan or agglomerative."),
        out_csv: Path = typer.Option(Path("clusters.csv"), "--out", help="CSV of id,path,name,cluster (-1 = noise)."),
        montages: Optional[Path] = typer.Option(None, "--montages", help="Folder for one montage PNG per cluster."),
        metric: str = typer.Option("cosine", help="cosine or l2."),
        eps: Optional[float] = typer.Option(None, help="DBSCAN radius (default: chosen by --eps-rule)."),
        eps_rule: str = typer.Option("most-clusters", help="How DBSCAN's radius is chosen when --eps is not given: "
                                     "most-clusters (the stable radius with the most clusters) or knee (k-distance knee)."),
        min_samples: int = typer.Option(5, help="DBSCAN/HDBSCAN neighbourhood size."),
        min_cluster_size: int = typer.Option(5, help="Smallest group (HDBSCAN, agglomerative)."),
        n_clusters: Optional[int] = typer.Option(None, help="Agglomerative: number of groups."),
        size: int = typer.Option(48, help="Montage tile side in pixels."),
    ) -> None:
        """Group the faces of an index by person; write a CSV and one montage per cluster."""
        from facespace.people.clustering import cluster
        from facespace.files import write_text_atomic
        from facespace.index import Index

        idx = Index.load(index)
        ids = idx.ids
        if len(ids) == 0:
            raise FacespaceError(f"index {index} is empty; add faces to it first")
        labels = cluster(idx.reconstruct(ids), method, metric=metric, eps=eps, min_samples=min_samples,
                         min_cluster_size=min_cluster_size, n_clusters=n_clusters, eps_rule=eps_rule)
        meta = [m or {} for m in idx.get_metadata(ids)]
        paths = [str(m.get("path") or "") for m in meta]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "path", "name", "cluster"])
        w.writerows(zip(ids.tolist(), paths, [m.get("name") or "" for m in meta], labels.tolist()))
        write_text_atomic(out_csv, buf.getvalue())
        n_clusters_found = int(labels.max()) + 1 if len(labels) else 0
        say(f"{n_clusters_found} clusters, {(labels < 0).sum()} noise faces of {len(labels)}; wrote {out_csv}")
        if montages is not None:
            _montages(paths, labels, montages, size)


def _montages(paths: list[str], labels: Any, folder: Path, size: int) -> None:
    """One montage PNG per cluster (its first 64 readable faces) in `folder`."""
    from facespace.data import load_images
    from facespace.grid import save_grid

    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        members = [p for p, l in zip(paths, labels) if l == c][:64]
        readable = [p for p in members if p and os.path.isfile(p)]
        if not readable:
            say(f"cluster {c}: no image files in the index metadata; montage skipped")
            continue
        save_grid(load_images(readable, size=size), folder / f"cluster_{c:03d}.png")
    say(f"montages written to {folder}/")
