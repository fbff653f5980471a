"""The web app factory: load the model and index once, mount the API and the page.

Numpy and torch work runs in FastAPI's threadpool (the routes are plain `def`); the model is
called under one lock, the index is only read, and the gallery is opened per request (SQLite
connections belong to one thread; every gallery change is one transaction, so enrolment is
atomic).

Status codes: 400 bad input (a `FacespaceError`, e.g. a file Pillow cannot read), 404 unknown
id, 409 a feature this server cannot offer (no decoder, no gallery, or a facespace module this
installation lacks), 413 an upload over the size limit, 415 an upload that is not an image, 422 a
malformed request. Bad input never gives a 5xx. Every error body is
`{"detail": "<what is wrong and what to do>"}`.
"""

from __future__ import annotations

from typing import Any

from facespace.errors import FacespaceError
from facespace.web.state import MAX_JSON_BYTES, MAX_PIXELS, MAX_UPLOAD_BYTES, STATIC, load_state


def create_app(*, model: Any = None, index: Any, gallery: Any = None, gallery_model: Any = None,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
               max_body_bytes: int | None = None) -> Any:
    """The FastAPI app of `facespace serve`.

    Args:
        model: an `Encoder` or a checkpoint path; None: the checkpoint the index records.
        index: an `Index` or the path of a saved one, built with `model`.
        gallery: a gallery file (created on the first enrolment), or None. An existing gallery
            answers with the model it was built with.
        gallery_model: the model of a gallery not yet created (an `Encoder`, a checkpoint path or a
            built-in name); None: the index's model.
        max_upload_bytes: the largest uploaded image (larger: 413).
        max_pixels: the largest uploaded image in pixels (larger: 400, a possible decompression bomb).
        max_body_bytes: the largest request (larger: 413, refused before it is read); default: room
            for a full enrolment of `max_upload_bytes` images. JSON bodies are held to 1 MB.

    Returns:
        A `fastapi.FastAPI`: the page at `/`, the API under `/api/`, its OpenAPI document at
        `/openapi.json`.

    Raises:
        FacespaceError: a missing or foreign file, or a model that is not the index's.

    Example:
        >>> from fastapi.testclient import TestClient                          # doctest: +SKIP
        >>> client = TestClient(create_app(model="pca.safetensors", index="faces.index"))
        >>> client.get("/api/info").json()["index_size"]
        200
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from facespace.version import __version__
    from facespace.web.api import router as api_router
    from facespace.web.api_duplicates import router as duplicates_router
    from facespace.web.api_people import router as people_router

    state = load_state(model, index, gallery, gallery_model=gallery_model, max_upload_bytes=max_upload_bytes,
                       max_pixels=max_pixels)
    # no /docs or /redoc: FastAPI's pages fetch their scripts from a CDN, and this app works offline
    app = FastAPI(title="facespace", version=__version__, docs_url=None, redoc_url=None,
                  description="Search, verify, morph, identify and browse faces in a learned latent space.")
    app.state.facespace = state
    app.add_middleware(BodyLimit, limit=max_body_bytes or state.max_request_bytes, per_file=state.max_upload_bytes)

    @app.exception_handler(RequestValidationError)
    def _invalid(request, exc: RequestValidationError):  # noqa: ANN001
        # what was wrong, where; never the input itself (a 50 MB body must not come back)
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(FacespaceError)
    def _facespace_error(request, exc: FacespaceError):  # noqa: ANN001
        status = getattr(exc, "status", None) or (404 if _is_unknown_id(exc) else 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    app.include_router(api_router, prefix="/api")
    app.include_router(people_router, prefix="/api")
    app.include_router(duplicates_router, prefix="/api")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app


def _is_unknown_id(exc: Exception) -> bool:
    return "not in the index" in str(exc)


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413, before reading them all."""

    def __init__(self, app: Any, limit: int, per_file: int = MAX_UPLOAD_BYTES, json_limit: int = MAX_JSON_BYTES):
        self.app = app
        self.limit = int(limit)
        self.per_file = int(per_file)
        self.json_limit = int(json_limit)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.limit
        message = (f"the request is larger than {limit / 2**20:.0f} MB; "
                   f"upload smaller images (at most {self.per_file / 2**20:.0f} MB each)")
        if headers.get(b"content-type", b"").startswith(b"application/json"):  # codes and settings: small
            limit = min(limit, self.json_limit)
            message = f"a JSON body is at most {limit // 1024} KB; send one code of the model's size"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, message)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, message)  # FastAPI passes it on as the response
            return msg

        await self.app(scope, counted, send)


async def _send_json(send: Any, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
