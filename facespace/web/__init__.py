"""The local web app: one page over a JSON API (`facespace serve`).

    >>> from facespace.web import create_app                       # doctest: +SKIP
    >>> app = create_app(model="pca.safetensors", index="faces.index", gallery="people.db")
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)

FastAPI is imported only when `create_app` is first used, so `import facespace.web` is cheap.

May import: every room below it (the top floor, beside `facespace.cli`); no room imports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from facespace.web.app import create_app

        return create_app
    raise AttributeError(f"module 'facespace.web' has no attribute {name!r}")
