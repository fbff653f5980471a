"""`facespace demo`: the built-in models at work on the embedded default data (and `--data FOLDER`),
or with `--train` the course's path (train a PCA and a conv autoencoder first); the work is in
`facespace.reports.demo`. It ends by printing, on stdout, the exact `facespace serve` command that
opens the web app on what it made.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from facespace.cli._util import out as print_out
from facespace.cli._util import say


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add `demo` to `app`."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("outputs/demo"), help="Folder for the demo's outputs."),
        data: Optional[Path] = typer.Option(None, "--data", help="A folder of your own photos to index and search too."),
        train: bool = typer.Option(False, "--train", help="The course's path instead: train a PCA and a conv "
                                   "autoencoder on the embedded faces, then index, search, morph and report."),
        code_size: int = typer.Option(16, help="--train: length of the codes (PCA and conv)."),
        epochs: int = typer.Option(20, min=1, help="--train: training epochs of the conv autoencoder."),
        size: int = typer.Option(32, help="--train: image side in pixels."),
        seed: int = typer.Option(0, help="--train: random seed."),
    ) -> None:
        """Run the demo on the embedded default (scikit-image's lfw_subset) with the built-in models, and
        say where its outputs are."""
        from facespace.reports.demo import run_demo, run_training_demo

        if train:
            summary = run_training_demo(out, code_size=code_size, size=size, seed=seed, epochs=epochs)
            say(f"test MSE: PCA-{code_size} {summary['test_mse']['pca']:.5f}, conv-{code_size} "
                f"{summary['test_mse']['conv']:.5f} ({epochs} epochs on {summary['train_faces']} faces)")
        else:
            summary = run_demo(out, data=data, step=_step)
            for row in summary["gallery"]["answers"]:
                say(f"gallery: {row['probe']} -> {row['name']} (distance {row['distance']:.3f})")
            for row in summary["verification"]:
                say(f"faces-id: {row['pair']}: distance {row['distance']:.3f}, "
                    f"{'same person' if row['same'] else 'different people'}")
        say(f"outputs in {out}/:")
        for key, path in summary["outputs"].items():
            say(f"  {key:16s} {path}")
        say("browse the faces in a web app (Ctrl+C stops it):")
        print_out(summary["serve"])  # stdout, unwrapped: the exact command to type


@contextlib.contextmanager
def _step(label: str):
    """A spinner with the step's label on stderr while it runs, then its time."""
    import time

    from facespace.cli._util import console

    start = time.perf_counter()
    with console.status(label):
        yield
    say(f"{label}: {time.perf_counter() - start:.1f} s")


