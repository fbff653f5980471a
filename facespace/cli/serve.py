"""`facespace serve`: the web app on this machine (loopback by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facespace.cli._util import identity_model, say

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to `app`."""

    @app.command()
    def serve(
        index: Path = typer.Option(..., "--index", "-i", help="The index to search (from `facespace index build`)."),
        model: Optional[Path] = typer.Option(None, "--model", "-m",
                                             help="The index's model checkpoint (default: the one the index records)."),
        gallery: Optional[Path] = typer.Option(None, "--gallery", "-g",
                                               help="Gallery file for identify and enrol (created on the first enrolment)."),
        gallery_model: Optional[str] = typer.Option(
            None, "--gallery-model", help="Identity model of a gallery not yet created (a built-in name or a "
            "checkpoint) [default: the default identity model: dlib where its extra is installed, else faces-id]; "
            "an existing gallery keeps the model it was built with."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on; the default answers this machine only."),
        port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
        max_upload_mb: float = typer.Option(10.0, min=0.01, max=1024, help="Largest uploaded image, in MB."),
        max_body_mb: Optional[float] = typer.Option(None, "--max-body-mb", min=0.01, max=8192,
                                                    help="Largest request, in MB (larger: 413, refused before it "
                                                    "is read) [default: room for 8 images of --max-upload-mb]."),
    ) -> None:
        """Open the web app: search, verify, morph, identify and browse faces in a browser."""
        serve_app(index=index, model=model, gallery=gallery, host=host, port=port, max_upload_mb=max_upload_mb,
                  max_body_mb=max_body_mb, gallery_model=gallery_model)


def new_gallery_model(gallery: Path | None, gallery_model: str | None) -> str | None:
    """The identity model of a gallery `serve` is to create: the one named, else the default identity
    model (said on stderr); None where there is no gallery or it exists (it keeps its own)."""
    if gallery is None:
        return None
    if Path(gallery).exists():
        if gallery_model is not None:
            say(f"note: {gallery} exists and keeps the model it was built with; --gallery-model is for a new gallery")
        return None
    return identity_model(gallery_model)


def serve_app(*, index: Path, model: Path | None, gallery: Path | None, host: str, port: int,
              max_upload_mb: float = 10.0, max_body_mb: float | None = None, gallery_model: str | None = None) -> None:
    """Load the model and index once, print the URL to stderr, and serve until interrupted."""
    import uvicorn

    from facespace.web import create_app

    say(f"loading {model or 'the index model'} and {index}…")
    app = create_app(model=model, index=index, gallery=gallery, gallery_model=new_gallery_model(gallery, gallery_model),
                     max_upload_bytes=int(max_upload_mb * 2**20),
                     max_body_bytes=None if max_body_mb is None else int(max_body_mb * 2**20))
    state = app.state.facespace
    shown = f"[{host}]" if ":" in host else host
    people = state.people().model
    say(f"facespace: {len(state.index)} faces, {getattr(state.model, 'kind', '?')} model"
        f"{', gallery ' + str(gallery) if gallery else ''}"
        f"{' (' + getattr(people, 'kind', '?') + ' model)' if people is not state.model else ''}")
    sock = bind(host, port)  # the URL is printed only once the port is ours
    if host not in LOOPBACK:
        say(f"note: listening on {host}: other machines on the network can reach this server (no login)")
    say(f"open http://{shown}:{port}/  (API described at http://{shown}:{port}/openapi.json) · Ctrl+C stops it")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def bind(host: str, port: int):
    """A listening socket on `host:port`, or a FacespaceError saying the port is taken and what to do."""
    import socket

    from facespace.errors import FacespaceError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise FacespaceError(f"cannot listen on {host}:{port} ({e.strerror}); pass another --port, or stop the "
                             "program that holds it") from None
    sock.listen(128)
    return sock
