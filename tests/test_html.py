"""The self-contained HTML helpers: escaping, inline PNGs that decode back, tables."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from facespace.reports.html import escape, page, picture, png_data_uri, table


def test_png_data_uri_round_trips(rng):
    x = rng.random((8, 6, 3)).astype(np.float32)
    uri = png_data_uri(x)
    assert uri.startswith("data:image/png;base64,")
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert back.shape == (8, 6, 3)
    assert np.abs(back.astype(np.float32) / 255 - x).max() <= 0.5 / 255 + 1e-6


def test_everything_is_escaped():
    html = page("<t>", table(["a&b"], [["<script>", 0.123456789, 3]]) + picture(np.zeros((2, 2)), caption='"x"'))
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html
    assert "0.1235" in html and ">3<" in html and "&quot;x&quot;" in html
    assert escape("'") == "&#x27;"
