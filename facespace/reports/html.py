"""Self-contained HTML pages: inline pictures and one small stylesheet (reports, duplicate lists).

Every page facespace writes opens from the file alone, offline: pictures are PNG data URIs, no
script or font is fetched.

Example:
    >>> from facespace.reports.html import page, picture          # doctest: +SKIP
    >>> html = page("faces", "<h1>faces</h1>" + picture(images[0]))
"""

from __future__ import annotations

import base64
import html as _html
from typing import Any, Sequence

import numpy as np

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1, h2, h3 { font-weight: 600; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.px { image-rendering: pixelated; } figure { display: inline-block; margin: 0.3em; text-align: center; vertical-align: top; }
figcaption { font-size: 12px; color: #555; max-width: 12em; overflow-wrap: anywhere; }
.muted { color: #777; }
"""


def escape(text: Any) -> str:
    """`text` made safe inside HTML (quotes included)."""
    return _html.escape(str(text), quote=True)


def png_data_uri(image: np.ndarray) -> str:
    """A picture as a `data:image/png;base64,...` URI.

    Args:
        image: `(H, W, C)` or `(H, W)`: uint8, or float in [0, 1].
    """
    from facespace.grid import png_bytes, to_uint8

    x = np.asarray(image)
    x = x if x.dtype == np.uint8 else to_uint8(x)
    return "data:image/png;base64," + base64.b64encode(png_bytes(x)).decode("ascii")


def picture(image: np.ndarray, *, caption: str | None = None, width: int | None = None, alt: str = "") -> str:
    """An inline `<img>` (inside a `<figure>` when captioned); small faces are drawn pixelated."""
    w = f' width="{int(width)}"' if width else ""
    img = f'<img class="px" src="{png_data_uri(image)}"{w} alt="{escape(alt or caption or "")}">'
    return img if caption is None else f"<figure>{img}<figcaption>{escape(caption)}</figcaption></figure>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 4) -> str:
    """An HTML table; floats are rounded to `digits` significant digits, everything is escaped."""

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return f'<td class="num">{float(v):.{digits}g}</td>'
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f'<td class="num">{int(v)}</td>'
        return f"<td>{escape(v)}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str) -> str:
    """A whole HTML document with facespace's stylesheet; `body` is trusted HTML."""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
