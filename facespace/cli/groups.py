"""CLI commands of the 'groups' area."""

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
