"""Run reports: one self-contained HTML file for a training run folder.

`write_report(run_dir)` reads what `facespace train` / `facespace.training.loop.fit` wrote and shows each
part whose file is there (a PCA run has no epochs, so it has no metrics or loss curves):

    run.json               summary (kind, data, sizes, epochs, best validation loss), test MSE / PSNR
    config.json            the training and model configuration, as one table
    metrics.csv            loss curves (redrawn; else loss.png) and a table, one row per epoch
    reconstructions.png    held-out originals over reconstructions; samples.png: the last validation's
    best/last.safetensors  checkpoints: kind, epoch, step, best validation loss, size

Evaluation results go in `RUN_DIR/eval/` (or are passed as `extras`, `--extra FILE`); the start of a
file's name picks its section, files are shown in name order:

    retrieval* -> "Retrieval"; verification*, roc* -> "Verification"; cluster* -> "Clustering";
    anything else -> "More results"

    *.png, *.jpg, *.jpeg   a figure, captioned with its file name
    *.csv                  a table: a header row, then one row per line
    *.jsonl                a table: one JSON object per line, one row each
    *.json                 a table: {"title": ..., "note": ..., "columns": [...], "rows": [[...]]}
                           (title, note optional), a list of objects (one row each), or one object
                           (a name/value table; nested objects flattened as a.b)

A file in the run folder that cannot be read becomes a note in the report (and a `DataWarning`);
an unreadable `extras` file is an error. The page needs nothing but itself: pictures are PNG data
URIs, there is no script, and every string from a file is escaped.

Example:
    >>> from facespace.reports.run_report import write_report          # doctest: +SKIP
    >>> write_report("runs/conv32")                          # doctest: +SKIP
    PosixPath('runs/conv32/report.html')
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

from facespace.errors import DataError, DataWarning, FacespaceError
from facespace.reports.html import escape, page, table

SECTIONS = (  # (heading, file-name prefixes), in page order
    ("Retrieval", ("retrieval",)),
    ("Verification", ("verification", "roc")),
    ("Clustering", ("cluster",)),
    ("More results", ("",)),
)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE_SUFFIXES = (".json", ".jsonl", ".csv")
MAX_ROWS = 500  # longer tables are cut, with a note saying so
MAX_FILE_BYTES = 20 * 2**20  # a larger picture or table would make the page unwieldy
# run.json fields shown in the summary, in order
SUMMARY_KEYS = ("kind", "data", "n_images", "image_shape", "code_size", "objective", "epochs_run", "best_val_loss",
                "train_seconds")


def write_report(
    run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, extras: Sequence[str | os.PathLike] = ()
) -> Path:
    """Write one self-contained HTML report of a training run, atomically.

    Args:
        run_dir: a run folder written by `facespace train` (config.json and/or run.json in it).
        out: the HTML file to write; default `run_dir/report.html`.
        extras: more result files to show (JSON/CSV tables, PNG/JPEG figures), sectioned by name
            like the files in `run_dir/eval/` (see the module docstring).

    Returns:
        The path written.

    Raises:
        FacespaceError: `run_dir` is missing or not a run folder, its config is damaged, `out` is
            a folder. DataError: an `extras` file that is missing or unreadable. Nothing is
            written when it raises.
    """
    from facespace.files import write_text_atomic

    run = Path(run_dir)
    target = run / "report.html" if out is None else Path(out)
    if target.is_dir():
        raise FacespaceError(f"--out {target} is a folder; give a file name such as {target / 'report.html'}")
    return write_text_atomic(target, report_html(run, extras=extras))


def report_html(run_dir: str | os.PathLike, *, extras: Sequence[str | os.PathLike] = ()) -> str:
    """The report of `write_report` as an HTML string (nothing is written)."""
    run = Path(run_dir)
    config, info = _read_run(run)
    notes: list[str] = []
    extra_files = [_check_extra(Path(p)) for p in extras]
    kind = info.get("kind") or config.get("kind") or "model"
    parts = [
        f"<h1>Training run: {escape(run.resolve().name)}</h1>",
        f'<p class="muted">{escape(kind)} · {escape(run.resolve())} · report written '
        f"{escape(time.strftime('%Y-%m-%d %H:%M'))}</p>",
        _summary(config, info),
    ]
    header, rows = _read_metrics(run / "metrics.csv", notes)
    parts.append(_loss_section(run, header, rows, notes))
    parts.append(_pictures_section(run, notes))
    if rows:
        parts.append(f"<h2>Metrics per epoch</h2>{table(header, rows)}")
    found = [p for p in (run / "eval").glob("*") if p.is_file() and not p.name.startswith(".")]
    parts += _result_sections([(p, False) for p in found] + [(p, True) for p in extra_files], notes)
    if config:
        parts.append("<h2>Configuration</h2>" + table(["setting", "value"], _flatten(config)))
    parts.append(_checkpoints(run, notes))
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    return page(f"facespace run {run.resolve().name}", "\n".join(p for p in parts if p))


def _read_run(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """config.json and run.json of a run folder (either may be missing, not both)."""
    if not run.exists():
        raise FacespaceError(f"run folder {run} does not exist; pass the --out folder of `facespace train`")
    if not run.is_dir():
        raise FacespaceError(f"{run} is a file, not a run folder; pass the --out folder of `facespace train`")
    loaded = []
    for path in (run / "config.json", run / "run.json"):
        try:
            loaded.append(json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FacespaceError(f"{path} is damaged ({e}); rerun the training or restore the file") from None
        if not isinstance(loaded[-1], dict):
            raise FacespaceError(f"{path} holds no JSON object; rerun the training or restore the file")
    if not any(loaded):
        raise FacespaceError(
            f"{run} is not a training run folder: it has no config.json or run.json; "
            "pass the --out folder of `facespace train`"
        )
    return loaded[0], loaded[1]


def _summary(config: dict[str, Any], info: dict[str, Any]) -> str:
    rows = [(k, _cell(info[k])) for k in SUMMARY_KEYS if k in info]
    if not info:  # a loop-only run: config.json is all there is
        rows = [(k, _cell(config[k])) for k in ("kind", "n_train", "n_val", "world_size") if k in config]
    if isinstance(info.get("split"), dict):
        rows.append(("split", ", ".join(f"{k} {v}" for k, v in info["split"].items())))
    html = "<h2>Summary</h2>" + table(["field", "value"], rows, digits=5)
    test = [(label, info[k]) for k, label in (("heldout_mse", "MSE"), ("heldout_psnr", "PSNR (dB)")) if k in info]
    if test:
        html += "<h2>Test split</h2>" + table(["metric", "value"], [(n, _cell(v)) for n, v in test], digits=5)
    return html


def _read_metrics(path: Path, notes: list[str]) -> tuple[list[str], list[list[Any]]]:
    """metrics.csv as a header and rows of numbers (blank cells stay blank)."""
    try:
        return _read_table(path)[2:] if path.exists() else ([], [])
    except DataError as e:
        _note(notes, str(e))
        return [], []


def _loss_section(run: Path, header: list[str], rows: list[list[Any]], notes: list[str]) -> str:
    """Loss curves redrawn from metrics.csv (loss.png when there is none)."""
    if rows and "epoch" in header:
        try:
            png = _draw_curves(header, rows)
        except (ValueError, TypeError) as e:  # a column of text where numbers belong
            _note(notes, f"could not draw the loss curves from metrics.csv: {e}")
        else:
            return "<h2>Loss curves</h2>" + _figure(_png_uri(png), "per epoch, from metrics.csv")
    if (run / "loss.png").exists():
        uri = _file_uri(run / "loss.png", notes)
        return "<h2>Loss curves</h2>" + _figure(uri, "loss.png") if uri else ""
    return ""


def _draw_curves(header: list[str], rows: list[list[Any]]) -> bytes:
    """Panels: loss (train and validation), each other shared metric, and lr when it changes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    cols = {name: [r[i] if i < len(r) else "" for r in rows] for i, name in enumerate(header)}
    epochs = cols["epoch"]
    metrics = [n[6:] for n in header if n.startswith("train_") and n != "train_loss"]
    metrics = [m for m in metrics if m != "loss" and cols.get(f"train_{m}") != cols.get("train_loss")]
    panels = (["loss"] if "train_loss" in cols or "val_loss" in cols else []) + metrics[:2]
    if len({v for v in cols.get("lr", []) if v != ""}) > 1:
        panels.append("lr")
    ncols = min(len(panels), 2) or 1
    nrows = -(-len(panels) // ncols) or 1
    fig = Figure(figsize=(5.2 * ncols, 3.4 * nrows), dpi=90)
    FigureCanvasAgg(fig)
    for i, name in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        keys = [("lr", "lr")] if name == "lr" else [(f"train_{name}", "train"), (f"val_{name}", "validation")]
        values = []
        for key, label in keys:
            points = [(e, v) for e, v in zip(epochs, cols.get(key, [])) if v != ""]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=label)
                values += [float(v) for _, v in points]
        if values and min(values) > 0 and max(values) > 3 * min(values):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if name != "lr":
            ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _pictures_section(run: Path, notes: list[str]) -> str:
    shown = []
    for name, caption in (
        ("reconstructions.png", "held-out originals (top) over their reconstructions (bottom)"),
        ("samples.png", "validation originals over reconstructions, at the last validation"),
    ):
        uri = _file_uri(run / name, notes) if (run / name).exists() else None
        if uri:
            shown.append(_figure(uri, f"{name}: {caption}"))
    return "<h2>Reconstructions</h2>" + "".join(shown) if shown else ""


def _result_sections(files: list[tuple[Path, bool]], notes: list[str]) -> list[str]:
    """One section per kind of result; `files` are (path, strict) with strict for extras."""
    by_section: dict[str, list[str]] = {}
    for path, strict in sorted(files, key=lambda f: f[0].name.lower()):
        try:
            html = _result_html(path)
        except DataError as e:
            if strict:
                raise
            _note(notes, str(e))
            continue
        if html:
            by_section.setdefault(_section_of(path.name), []).append(html)
    return [f"<h2>{escape(h)}</h2>" + "\n".join(by_section[h]) for h, _ in SECTIONS if h in by_section]


def _section_of(name: str) -> str:
    lower = name.lower()
    return next(h for h, prefixes in SECTIONS if any(lower.startswith(p) for p in prefixes))


def _result_html(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PICTURE_SUFFIXES:
        return _figure(_file_uri(path), path.name)
    if suffix not in TABLE_SUFFIXES:
        return ""  # other files in eval/ (logs, checkpoints) are not results
    title, note, header, rows = _read_table(path)
    shown = rows[:MAX_ROWS]
    cut = f" (the first {MAX_ROWS} of {len(rows)} rows)" if len(rows) > MAX_ROWS else ""
    caption = f"<h3>{escape(title or path.name)}</h3>"
    text = f'<p class="muted">{escape(note)}{escape(cut)}</p>' if note or cut else ""
    return caption + text + table(header, [[_cell(v) for v in r] for r in shown])


def _read_table(path: Path) -> tuple[str | None, str | None, list[str], list[list[Any]]]:
    """(title, note, header, rows) of a JSON, JSON Lines or CSV table file."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise OSError(f"over {MAX_FILE_BYTES >> 20} MB; shrink it")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the table {path}: {e}") from None
    if path.suffix.lower() == ".csv":
        lines = [line for line in csv.reader(io.StringIO(text)) if line]
        if not lines:
            raise DataError(f"{path} is empty; a CSV table needs a header row")
        return None, None, lines[0], [[_number(v) for v in line] for line in lines[1:]]
    try:
        jsonl = path.suffix.lower() == ".jsonl"
        data: Any = [json.loads(ln) for ln in text.splitlines() if ln.strip()] if jsonl else json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e}); see facespace.reports.run_report for the table formats") from None
    if isinstance(data, dict) and isinstance(data.get("columns"), list) and isinstance(data.get("rows"), list):
        rows = [r if isinstance(r, list) else [r] for r in data["rows"]]
        return data.get("title"), data.get("note"), [str(c) for c in data["columns"]], rows
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        flat = [dict(_flatten(r)) for r in data]
        header = list(dict.fromkeys(k for r in flat for k in r))
        return None, None, header, [[r.get(k, "") for k in header] for r in flat]
    if isinstance(data, dict) and data:
        return None, None, ["name", "value"], [list(kv) for kv in _flatten(data)]
    raise DataError(f'{path} holds no table: use {{"columns": [...], "rows": [[...]]}}, a list of objects or an object')


def _check_extra(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"extra result file {path} does not exist or is not a file; check the path")
    if path.suffix.lower() not in PICTURE_SUFFIXES + TABLE_SUFFIXES:
        raise DataError(
            f"extra result file {path}: unknown type {path.suffix or '(none)'!r}; "
            f"expected one of: {', '.join(PICTURE_SUFFIXES + TABLE_SUFFIXES)}"
        )
    return path


def _file_uri(path: Path, notes: list[str] | None = None) -> str | None:
    """A picture file as a PNG data URI (PNG bytes kept, JPEG converted); unreadable: a note when
    `notes` is given, else DataError."""
    from PIL import Image

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"over {MAX_FILE_BYTES >> 20} MB; shrink it")
        data = path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()  # decodes it all: a damaged file fails here
                if im.format != "PNG":
                    buf = io.BytesIO()
                    im.convert("RGB").save(buf, format="PNG")
                    data = buf.getvalue()
        return _png_uri(data)
    except Exception as e:  # Pillow raises many types for damaged or foreign files
        message = f"cannot show the picture {path} ({type(e).__name__}: {e}); write it again as PNG"
        if notes is None:
            raise DataError(message) from None
        _note(notes, message)
        return None


def _checkpoints(run: Path, notes: list[str]) -> str:
    """A table of best/last.safetensors, read from their headers (not their weights)."""
    from safetensors import safe_open

    rows = []
    for path in (run / "best.safetensors", run / "last.safetensors"):
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["facespace"])
            epoch = meta.get("extra", {}).get("epoch", "")
        except FileNotFoundError:
            continue
        except Exception as e:  # truncated, foreign or header-less files
            _note(notes, f"cannot read the checkpoint {path} ({type(e).__name__}: {e})")
            continue
        best, size = _cell(meta.get("best_val_loss")), f"{path.stat().st_size / 2**20:.2f} MB"
        rows.append((path.name, meta.get("kind", ""), epoch, meta.get("step", ""), best, size))
    header = ["file", "kind", "epoch", "step", "best validation loss", "size"]
    return "<h2>Checkpoints</h2>" + table(header, rows, digits=5) if rows else ""


def _flatten(value: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted name, value) pairs; lists and other values are left whole."""
    items: list[tuple[str, Any]] = []
    for k, v in value.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            items += _flatten(v, name + ".")
        else:
            items.append((name, _cell(v)))
    return items


def _cell(value: Any) -> Any:
    """A value as a table cell: numbers stay numbers, None is blank, containers are JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return value


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _figure(uri: str, caption: str) -> str:
    return (
        f'<figure style="max-width: 100%"><img src="{uri}" alt="{escape(caption)}" style="max-width: 100%">'
        f'<figcaption style="max-width: none">{escape(caption)}</figcaption></figure>'
    )


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _note(notes: list[str], message: str) -> None:
    notes.append(message)
    warnings.warn(message, DataWarning, stacklevel=3)
