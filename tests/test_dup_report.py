"""The near-duplicates HTML page: thumbnails inline, names escaped, nearest first, offline."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from facespace.reports.duplicates import groups_page, pairs_page, thumbnail, write_pairs_report

EVIL = '<script>alert("x")</script> & Co'


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three image files of known colours, one named with HTML in it."""
    d = tmp_path_factory.mktemp("report")
    colours = {"red.png": (255, 0, 0), "blue.png": (0, 0, 255), f"{'<b>'}green.png": (0, 255, 0)}
    paths = {}
    for name, rgb in colours.items():
        Image.fromarray(np.full((200, 150, 3), rgb, np.uint8)).save(d / name)
        paths[name] = str(d / name)
    return paths


def pictures(html: str) -> list[np.ndarray]:
    """Every inline PNG of the page, decoded."""
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def test_pairs_page_inlines_thumbnails_nearest_first(images):
    pairs = [
        ({"path": images["red.png"], "name": "Ann"}, {"path": images["blue.png"]}, 0.30),
        ({"path": images["<b>green.png"]}, {"path": images["red.png"]}, 0.01),
    ]
    html = pairs_page(pairs, max_distance=0.5, new_label="new/", ref_label="ref/")
    pics = pictures(html)
    assert len(pics) == 4 and "http" not in html  # nothing fetched
    assert max(pics[0].shape[:2]) <= 96  # thumbnails are shrunk, the aspect kept
    assert pics[0].shape[0] > pics[0].shape[1]
    # nearest pair first: green (new) beside red (reference), then red beside blue
    means = [tuple(np.round(p.reshape(-1, 3).mean(0) / 255).astype(int)) for p in pics]
    assert means == [(0, 1, 0), (1, 0, 0), (1, 0, 0), (0, 0, 1)]
    distances = re.findall(r'<td class="num">([0-9.]+)</td></tr>', html)
    assert distances == ["0.01", "0.3"]
    assert "2 pair(s) within 0.5" in html


def test_names_and_paths_are_escaped(images):
    pairs = [({"path": images["<b>green.png"], "name": EVIL}, {"path": "/nowhere/x.png", "name": EVIL}, 0.0)]
    html = pairs_page(pairs, max_distance=0.1, new_label=EVIL, ref_label="<i>ref</i>")
    assert "<script>" not in html and "<b>green" not in html and "<i>ref" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in html
    assert "&lt;b&gt;green.png" in html
    assert "(image not found)" in html and len(pictures(html)) == 1  # the missing file gets a placeholder


def test_long_reports_are_cut_and_say_so(images):
    pairs = [({"path": images["red.png"]}, {"path": images["blue.png"]}, float(i)) for i in range(5)]
    html = pairs_page(pairs, max_distance=10, max_rows=2)
    assert len(pictures(html)) == 4 and "3 more pair(s) not shown" in html
    assert "No near-duplicates found" in pairs_page([], max_distance=0.1)


def test_groups_page_and_atomic_write(images, tmp_path):
    groups = [[{"path": images["red.png"]}, {"path": images["blue.png"]}, {"path": images["<b>green.png"]}],
              [{"path": images["red.png"], "name": EVIL}, {"path": images["red.png"]}]]
    html = groups_page(groups, max_distance=0.2)
    assert len(pictures(html)) == 5 and "group 0 (3 images)" in html and "<script>" not in html
    out = write_pairs_report(tmp_path / "sub" / "dup.html", [({"path": images["red.png"]}, {"path": images["blue.png"]}, 0.1)],
                             max_distance=0.2)
    assert out.read_text().startswith("<!doctype html>") and [p.name for p in (tmp_path / "sub").iterdir()] == ["dup.html"]


def test_thumbnail_of_something_unreadable_is_none(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    assert thumbnail(junk) is None and thumbnail(tmp_path / "missing.png") is None and thumbnail(None) is None
