"""The `facespace` command line. Thin: parse, call verbs, print.

Each area registers its commands from its own module (`facespace/cli/<area>.py`, a function
`register(app)`), so this file only composes them. Machine-readable output goes to stdout,
progress and messages to stderr. A `FacespaceError` becomes `error: ...` and exit status 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from facespace.errors import FacespaceError

# one module per area, each with register(app)
AREAS = (
    "data", "train", "search", "verify", "people", "cluster", "generate", "photos", "sketch", "web", "report", "extras", "groups", "export", "demo",
)

app = typer.Typer(
    name="facespace",
    help="Learn a latent space of faces with autoencoders; search, verify, cluster, morph and sketch in it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_registered = False


@app.command()
def version() -> None:
    """Print the facespace version."""
    from facespace.version import __version__

    print(__version__)


def build_app() -> typer.Typer:
    """Register every area's commands once and return the app."""
    global _registered
    if not _registered:
        for area in AREAS:
            importlib.import_module(f"facespace.cli.{area}").register(app)
        _registered = True
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        result = build_app()(args=argv, prog_name="facespace", standalone_mode=False)
    except FacespaceError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.exceptions.TyperException as e:  # usage errors, bad parameters
        if hasattr(e, "show"):
            e.show()
        raise SystemExit(getattr(e, "exit_code", 2)) from None
    except typer.Exit as e:
        raise SystemExit(e.exit_code) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(1) from None
    except FileNotFoundError as e:
        print(f"error: {e.filename or e}: no such file; check the path", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    if isinstance(result, int) and result:
        raise SystemExit(result)


@app.callback()
def _root() -> None:
    """Learn a latent space of faces with autoencoders; search, verify, cluster, morph and sketch in it."""
