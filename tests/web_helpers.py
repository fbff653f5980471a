"""Test helpers of the web app's API tests: a tiny site (faces, PCA model, index) and upload helpers.

`shared_site` builds the site once per test session for the modules that only read its files
(`test_web_api`, `test_web_api_people`); each caller gets its own gallery path, since galleries
are written.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

N_FACES = 60
_SHARED: dict[str, Path] = {}


def build_site(root: Path, *, n: int = N_FACES, size: int = 32, code_size: int = 16) -> dict[str, Path]:
    """Write `n` lfw_subset faces as PNG files, fit a PCA on them, save it and an index of them.

    Returns:
        `{"faces": folder, "model": checkpoint, "index": index file, "gallery": gallery path (not created)}`.
    """
    from PIL import Image
    from skimage.data import lfw_subset

    from facespace.models.registry import load_model, save_model
    from facespace.data import load_faces
    from facespace.pipelines.indexing import build_index
    from facespace.models.pca import PCAAutoencoder

    faces = root / "faces"
    faces.mkdir(parents=True, exist_ok=True)
    raw = lfw_subset()[:n]  # (n, 25, 25) float in [0, 1]; the first 100 are faces
    for i, img in enumerate(raw):
        Image.fromarray((img * 255).round().astype(np.uint8)).convert("RGB").save(faces / f"face_{i:03d}.png")
    face_set = load_faces(str(faces), size=size, progress=False)
    model = load_model(save_model(PCAAutoencoder(code_size=code_size).fit(face_set.images), root / "pca.safetensors"))
    index = build_index(model, face_set)
    index.save(root / "faces.index")
    return {"faces": faces, "model": root / "pca.safetensors", "index": root / "faces.index",
            "gallery": root / "people.db"}


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def api_client(app):
    """FastAPI's TestClient, without Starlette's notice about httpx (the TestClient still uses it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient
    return TestClient(app)


def shared_site(tmp_path_factory) -> dict[str, Path]:
    """`build_site`'s files, built on first use in the session; the gallery path is new for each call."""
    if not _SHARED:
        _SHARED.update(build_site(tmp_path_factory.mktemp("web")))
    return {**_SHARED, "gallery": tmp_path_factory.mktemp("web_gallery") / "people.db"}


def upload(site, i: int, field: str = "file") -> dict:
    path = site["faces"] / f"face_{i:03d}.png"
    return {field: (path.name, path.read_bytes(), "image/png")}
