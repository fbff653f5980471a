"""CLI commands of the 'report' area: `facespace report RUN_DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facespace.cli._util import out, say


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""

    @app.command()
    def report(
        run_dir: Path = typer.Argument(..., help="A training run folder (the --out of `facespace train`)."),
        out_file: Optional[Path] = typer.Option(
            None, "--out", "-o", help="HTML file to write [default: RUN_DIR/report.html]."
        ),
        extra: Optional[List[Path]] = typer.Option(
            None, "--extra", "-e", help="More results to show: a JSON/CSV table or a PNG/JPEG figure (repeatable)."
        ),
    ) -> None:
        """Write one self-contained HTML report of a training run and print its path."""
        from facespace.reports.run_report import write_report

        path = write_report(run_dir, out_file, extras=extra or ())
        say(f"wrote the report of {run_dir} ({path.stat().st_size / 1024:.0f} KB)")
        out(str(path))
