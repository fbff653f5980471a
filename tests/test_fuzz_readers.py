"""Readers fed arbitrary bytes return data or raise facespace's own error, never another exception
(#27, "proven, not promised"): image loaders, pairs lists, sketch formats (ndjson, bin, npz), the
index and checkpoint readers, and the codes-export readers."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facespace.errors import FacespaceError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def png_like(data: bytes) -> bytes:
    """Arbitrary bytes after a real PNG's first bytes, so decoders get past the signature."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    head = buf.getvalue()
    return head[: len(head) // 2] + data


def read_with(reader, data: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"x{suffix}"
        path.write_bytes(data)
        try:
            reader(path)
        except FacespaceError:
            pass  # facespace's own error, with a message: the contract


@SETTINGS
@given(st.binary(max_size=512), st.booleans())
def test_image_readers(data, png_head):
    from facespace.data.images import decode_face, read_image

    data = png_like(data) if png_head else data
    read_with(read_image, data, ".png")
    read_with(lambda p: decode_face(p, 16), data, ".jpg")
    try:
        read_image(data)  # bytes straight in, as the web app's uploads
    except FacespaceError:
        pass


@SETTINGS
@given(st.text(max_size=300))
def test_pairs_lists(text):
    from facespace.data.pairs import read_pairs

    read_with(read_pairs, text.encode("utf-8", "surrogatepass"), ".txt")


@SETTINGS
@given(st.binary(max_size=400))
def test_sketch_formats(data):
    from facespace.data.sketch_formats import read_bin, read_ndjson, read_npz

    read_with(read_ndjson, data, ".ndjson")
    read_with(read_bin, data, ".bin")
    read_with(read_npz, data, ".npz")


@SETTINGS
@given(st.binary(max_size=400))
def test_index_checkpoint_and_export_readers(data):
    from facespace.index import Index
    from facespace.models.registry import load_model
    from facespace.pipelines.export.read import load_codes

    read_with(Index.load, data, ".index")
    read_with(load_model, data, ".safetensors")
    for suffix in (".npy", ".csv", ".parquet"):
        read_with(load_codes, data, suffix)
