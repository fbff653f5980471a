"""CLI commands of the 'groups' area: persistent face groups with corrections that stick.

`facespace groups add|recluster|list|faces|show|merge|split|name|link|unlink|remove`, all on one
gallery file (`--gallery`). Machine-readable output (CSV) goes to stdout, messages to stderr.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Optional

import typer

from facespace.cli._util import IDENTITY_HELP, DetectorOpt, detection, identity_model, out, say


def _csv(rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    out(buf.getvalue().rstrip("\n"))


def _box(box: Any) -> str:
    return "" if box is None else " ".join(str(int(v)) for v in box)


def _open(gallery: Path, model: Optional[str] = None):
    from facespace.people.groups.groups import FaceGroups

    m = None
    if model is not None:
        from facespace.models.registry import resolve_model

        m = resolve_model(model)
    return FaceGroups(gallery, m)


def _list(g: Any) -> None:
    _csv([["group", "name", "faces"]] + [[x.id, x.name or "", len(x)] for x in g.groups()])


def _tiles(faces: list[tuple[int, str, Any, int]], size: int) -> Any:
    """One `(size, size, 3)` tile per face, read again from its photo (grey where unreadable)."""
    import numpy as np
    from PIL import Image

    from facespace.errors import FacespaceError
    from facespace.photos.faces import read_photo

    tiles = []
    for fid, src, box, _ in faces:
        try:
            image, scale = read_photo(src)
            if box is not None:
                x, y, w, h = (int(round(v * scale)) for v in box)
                image = image[max(0, y) : y + h, max(0, x) : x + w]
            else:
                from facespace.data import load_images

                image = load_images([src], size=size)[0]
            if image.shape[2] == 1:
                image = np.repeat(image, 3, axis=2)
            pic = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
            tiles.append(np.asarray(pic, np.float32) / 255.0)
        except (FacespaceError, OSError, ValueError):
            say(f"face {fid}: cannot read {src!r}; shown grey")
            tiles.append(np.full((size, size, 3), 0.5, np.float32))
    return np.stack(tiles)


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""
    groups = typer.Typer(help="Group faces by person in a gallery file; merge, split and name groups; "
                              "corrections stick through re-clustering.", no_args_is_help=True)
    app.add_typer(groups, name="groups")

    @groups.command("add")
    def add(
        photos: list[str] = typer.Argument(..., help="Image files, folders, .txt lists or URLs (face crops, or whole "
                                           "photos with --detect)."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help=IDENTITY_HELP + ", or pixels[:SIZE] (the "
                                            "gallery keeps only codes)."),
        gallery: Path = typer.Option(..., help="Gallery file (created if missing)."),
        detect: bool = typer.Option(False, help="Find the faces in whole photos; every face found is added."),
        max_faces: Optional[int] = typer.Option(None, help="With --detect: at most this many faces per photo."),
        detector: DetectorOpt = None,
        max_distance: Optional[float] = typer.Option(None, help="Join radius (default: learned at the last recluster)."),
        crop: str = typer.Option("recorded", "--crop", help="How image files are cut (not with --detect): recorded "
                                 "(the model's own; a file that is not a 250x250 LFW original is used whole) | "
                                 "lfw | tight | none | T,L,B,R."),
    ) -> None:
        """Add faces; each joins the group of its nearest grouped face, if near enough (no re-clustering).
        PHOTOS are what `facespace encode` takes: files, folders, .txt lists, URLs of images or folders.

        CSV on stdout: face,source,box,group,status (status: grouped, ungrouped, known, no face).
        """
        from facespace.data.inputs import expand_images
        from facespace.photos.faces import model_crops

        files = expand_images(photos)
        detect, detector = detection(detect, detector)
        with _open(gallery, identity_model(model, gallery)) as g:
            crops = model_crops(g.model, files, detect=detect, crop=crop, max_faces=max_faces, detector=detector)
            rows: list[list[Any]] = [["face", "source", "box", "group", "status"]]
            if len(crops):
                added = g.add(crops.images, crops.sources, boxes=crops.boxes, max_distance=max_distance)
                for f, src, box, gid, new in zip(added.face_ids, crops.sources, crops.boxes, added.group_ids, added.new):
                    status = "known" if not new else "grouped" if gid >= 0 else "ungrouped"
                    rows.append([int(f), src, _box(box), int(gid) if gid >= 0 else "", status])
            for p in crops.no_face:
                say(f"{p}: no face found")
                rows.append(["", p, "", "", "no face"])
            _csv(rows)
            n_new = sum(r[4] in ("grouped", "ungrouped") for r in rows[1:])
            loose = sum(r[4] == "ungrouped" for r in rows[1:])
            say(f"{n_new} new face(s) in {gallery}, {loose} not near any group"
                + ("; run `facespace groups recluster` to group them" if loose else ""))

    @groups.command("recluster")
    def recluster(
        gallery: Path = typer.Option(..., help="Gallery file."),
        method: str = typer.Option("hdbscan", help="hdbscan, dbscan or agglomerative."),
        eps: Optional[float] = typer.Option(None, help="DBSCAN radius (default: from the k-distance knee)."),
        min_samples: int = typer.Option(5, help="DBSCAN/HDBSCAN neighbourhood size."),
        min_cluster_size: int = typer.Option(5, help="Smallest group (HDBSCAN, agglomerative)."),
        n_clusters: Optional[int] = typer.Option(None, help="Agglomerative: number of groups."),
    ) -> None:
        """Cluster all faces again, honouring merges, splits, names and links; ids kept by overlap.

        CSV on stdout: group,name,faces.
        """
        options: dict[str, Any] = {"min_samples": min_samples, "min_cluster_size": min_cluster_size}
        if eps is not None:
            options["eps"] = eps
        if n_clusters is not None:
            options["n_clusters"] = n_clusters
        with _open(gallery) as g:
            result = g.recluster(method, **options)
            _list(g)
            loose = len(g) - sum(len(x) for x in result)
        say(f"{len(result)} groups, {loose} ungrouped face(s) in {gallery}")

    @groups.command("list")
    def list_groups(gallery: Path = typer.Option(..., help="Gallery file.")) -> None:
        """The groups: CSV group,name,faces."""
        with _open(gallery) as g:
            _list(g)
            loose = len(g) - sum(len(x) for x in g.groups())
        say(f"{loose} ungrouped face(s)")

    @groups.command("faces")
    def faces(gallery: Path = typer.Option(..., help="Gallery file.")) -> None:
        """Every face: CSV face,source,box,group (group empty when ungrouped)."""
        with _open(gallery) as g:
            _csv([["face", "source", "box", "group"]]
                 + [[f, s, _box(b), gid if gid >= 0 else ""] for f, s, b, gid in g.faces()])

    @groups.command("show")
    def show(
        group: int = typer.Argument(..., help="Group id."),
        gallery: Path = typer.Option(..., help="Gallery file."),
        out_png: Optional[Path] = typer.Option(None, "--out", help="Write a montage of the group's faces here (PNG)."),
        size: int = typer.Option(48, help="Montage tile side in pixels."),
        limit: int = typer.Option(100, help="At most this many faces in the montage."),
    ) -> None:
        """One group's faces: CSV face,source,box; optionally a montage PNG (read from the photos)."""
        from facespace.grid import save_grid

        with _open(gallery) as g:
            grp = g.group(group)
            members = [f for f in g.faces() if f[3] == grp.id]
        _csv([["face", "source", "box"]] + [[f, s, _box(b)] for f, s, b, _ in members])
        say(f"group {grp.id}{' (' + grp.name + ')' if grp.name else ''}: {len(grp)} face(s)")
        if out_png is not None:
            save_grid(_tiles(members[:limit], size), out_png)
            say(f"montage written to {out_png}")

    @groups.command("merge")
    def merge(
        a: int = typer.Argument(..., help="The group that stays."),
        b: int = typer.Argument(..., help="The group that joins it (same person)."),
        gallery: Path = typer.Option(..., help="Gallery file."),
    ) -> None:
        """Two groups are one person: B joins A, and re-clustering keeps them together."""
        with _open(gallery) as g:
            grp = g.merge(a, b)
        _csv([["group", "name", "faces"], [grp.id, grp.name or "", len(grp)]])

    @groups.command("split")
    def split(
        group: int = typer.Argument(..., help="The group to split."),
        face_ids: list[int] = typer.Argument(..., help="Faces of another person (ids from `groups show`)."),
        gallery: Path = typer.Option(..., help="Gallery file."),
    ) -> None:
        """These faces are another person: they become a new group, kept apart from then on."""
        with _open(gallery) as g:
            kept, new = g.split(group, face_ids)
        _csv([["group", "name", "faces"]] + [[x.id, x.name or "", len(x)] for x in (kept, new)])

    @groups.command("name")
    def name(
        group: int = typer.Argument(..., help="Group id."),
        person: Optional[str] = typer.Argument(None, help="The person's name."),
        gallery: Path = typer.Option(..., help="Gallery file."),
        clear: bool = typer.Option(False, help="Remove the group's name instead."),
    ) -> None:
        """Name a group (its faces become confirmed); --clear removes the name."""
        from facespace.errors import FacespaceError

        if (person is None) == (not clear):
            raise FacespaceError("give a NAME, or --clear to remove the group's name (not both)")
        with _open(gallery) as g:
            grp = g.name(group, None if clear else person)
        _csv([["group", "name", "faces"], [grp.id, grp.name or "", len(grp)]])

    @groups.command("link")
    def link(
        face_a: int = typer.Argument(..., help="A face id."),
        face_b: int = typer.Argument(..., help="Another face id."),
        gallery: Path = typer.Option(..., help="Gallery file."),
        different: bool = typer.Option(False, "--different", help="Cannot-link: they are different people."),
    ) -> None:
        """Two faces are the same person (must-link), or with --different, not (cannot-link)."""
        with _open(gallery) as g:
            (g.cannot_link if different else g.must_link)(face_a, face_b)
            group_of = {f: gid for f, _, _, gid in g.faces()}
        _csv([["face", "group"], [face_a, group_of[face_a]], [face_b, group_of[face_b]]])

    @groups.command("unlink")
    def unlink(
        face_a: int = typer.Argument(..., help="A face id."),
        face_b: int = typer.Argument(..., help="Another face id."),
        gallery: Path = typer.Option(..., help="Gallery file."),
    ) -> None:
        """Remove a must-link or cannot-link between two faces."""
        with _open(gallery) as g:
            n = g.unlink(face_a, face_b)
        say(f"{n} link(s) removed" if n else f"faces {face_a} and {face_b} had no direct link")

    @groups.command("remove")
    def remove(
        face_ids: list[int] = typer.Argument(..., help="Face ids to forget."),
        gallery: Path = typer.Option(..., help="Gallery file."),
    ) -> None:
        """Forget faces (and their links); empty groups disappear."""
        with _open(gallery) as g:
            n = g.remove_faces(face_ids)
        say(f"removed {n} face(s) from {gallery}")
