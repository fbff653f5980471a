"""A small photo set with planted copies, shared by the duplicate tests: 40 grey faces (scikit-image's
LFW subset, 100x100 PNGs), 5 copies made as users make them, and a PCA model fitted on other faces."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from facespace.data.alterations import alter_image
from facespace.index import Index

N_FACES = 40
# the planted copies: (copy file, original index, how it was made)
PLANTED = (("copy_same.png", 0, "same bytes"), ("copy_q60.jpg", 1, "jpeg60"), ("copy_small.png", 2, "resize80"),
           ("copy_bright.png", 3, "brighter6"), ("copy_trim.png", 4, "trim1"))


def face(pictures: np.ndarray, i: int) -> Image.Image:
    """Face `i` of `pictures` ((n, 25, 25) in [0, 1]) as a 100x100 grey picture."""
    return Image.fromarray((pictures[i] * 255).astype(np.uint8)).resize((100, 100), Image.Resampling.BICUBIC)


def planted_set(root: Path) -> tuple[dict, np.ndarray]:
    """Write the faces and their planted copies under `root/photos` and a PCA model fitted on other
    faces; returns (`{"root", "folder", "pca"}`, the `(100, 25, 25)` pictures)."""
    from skimage.data import lfw_subset

    from facespace.models.pca import PCAAutoencoder
    from facespace.models.registry import save_model

    folder = root / "photos"
    folder.mkdir()
    pictures = lfw_subset()[:100]
    for i in range(N_FACES):
        face(pictures, i).save(folder / f"face_{i:02d}.png")
    for name, i, how in PLANTED:
        src = folder / f"face_{i:02d}.png"
        if how == "same bytes":
            shutil.copyfile(src, folder / name)
        else:
            (folder / name).write_bytes(alter_image(Image.open(src), how))
    other = np.stack([np.asarray(Image.fromarray((p * 255).astype(np.uint8)).resize((16, 16), Image.Resampling.BOX),
                                 np.float32)[..., None] / 255 for p in pictures[N_FACES:]])
    save_model(PCAAutoencoder(code_size=12).fit(np.repeat(other, 3, axis=3)), root / "pca.safetensors")
    return {"root": root, "folder": folder, "pca": root / "pca.safetensors"}, pictures


def split_for_against(folder: Path, root: Path, extra: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """`(new, ref)` folders under `root` for `--against`: the originals in ref, the planted copies
    (and `extra` files of `folder`) in new."""
    new, ref = root / "new", root / "ref"
    new.mkdir()
    ref.mkdir()
    for i in range(N_FACES):
        shutil.copyfile(folder / f"face_{i:02d}.png", ref / f"face_{i:02d}.png")
    for name in [p[0] for p in PLANTED] + list(extra):
        shutil.copyfile(folder / name, new / name)
    return new, ref


def pairs_across(csv_rows: list[list[str]]) -> set[tuple[str, str]]:
    """The (new, ref) file-name pairs of `index duplicates --against`'s CSV rows (header first)."""
    return {tuple(sorted((r[0].rsplit("/", 1)[1], r[1].rsplit("/", 1)[1]))) for r in csv_rows[1:]}


def truth_pairs() -> set[tuple[str, str]]:
    return {tuple(sorted((f"face_{i:02d}.png", name))) for name, i, _ in PLANTED}


def found_pairs(index: Index, groups: list[list[int]]) -> set[tuple[str, str]]:
    names = {int(i): m["path"].rsplit("/", 1)[1] for i, m in zip(index.ids, index.get_metadata(index.ids))}
    return {tuple(sorted((names[a], names[b]))) for g in groups for a in g for b in g if a < b}
