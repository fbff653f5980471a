"""Small helpers shared by CLI modules."""

from __future__ import annotations

import sys

from rich.console import Console

# progress bars and messages go to stderr; stdout stays machine-readable
console = Console(stderr=True)


def say(message: str) -> None:
    """Print a human message to stderr."""
    console.print(message, highlight=False, markup=False, soft_wrap=True)  # no wrapping, paths kept verbatim


def out(line: str) -> None:
    """Print a machine-readable line to stdout."""
    sys.stdout.write(line + "\n")
