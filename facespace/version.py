"""The facespace version: one home, read by the package, the checkpoint and index formats and pyproject."""

__version__ = "0.1.0"
