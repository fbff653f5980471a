"""The `facespace` command line: a short list of nouns. Thin: parse, call verbs, print.

    facespace data info|...          face sets on disk
    facespace train KIND ...         train a model
    facespace models show|evaluate|ensemble
    facespace encode SOURCES ...     codes out (embeddings)
    facespace index build|add|remove|info|search|duplicates|cluster
    facespace people enroll|identify|reject|quality|list|remove|verify|calibrate|explain|evaluate-lfw
    facespace groups add|recluster|list|faces|show|merge|split|name|link|unlink|remove
    facespace generate morph|vary|sample|fill|decode|reconstruct|denoise
    facespace photos detect          faces found in whole photos
    facespace sketch synth|train|reconstruct|cluster
    facespace report RUN ; facespace serve ; facespace demo ; facespace version

Every command takes its model as `--model` (a checkpoint, run folder or `pixels:SIZE`), its gallery
as `--gallery`, its index as the first argument of an `index` command, and `--crop` / `--detect`
the same way. Each area registers its commands from its own module (`facespace/cli/<area>.py`, a
function `register(app, nouns)`), so this file only composes them. Machine-readable output goes to
stdout, progress and messages to stderr. A `FacespaceError` becomes `error: ...` and exit status 2.

The spellings of the previous release (`facespace verify MODEL a b`, `facespace search I q`, ...)
still work for one release: `main` rewrites them to the new command and says where it moved.

May import: every room below it (the top floor, beside `facespace.web`); no room imports it.
"""

from __future__ import annotations

import importlib
import sys

import typer

from facespace.allocator import roomy_malloc
from facespace.cli._util import say
from facespace.errors import FacespaceError

# one module per area, each with register(app, nouns)
AREAS = (
    "data", "train", "models", "encode", "index", "cluster", "people", "verify", "groups", "generate",
    "photos", "sketch", "report", "serve", "demo",
)

# noun -> what its commands act on (the groups of the top level)
NOUNS = {
    "data": "Face sets on disk: what a folder, archive or 'embedded' holds.",
    "models": "Trained models: what a checkpoint holds, its reconstruction error, ensembles of verifiers.",
    "index": "Similar-image search indexes: build, edit, search, find duplicates, cluster.",
    "people": "People: enrol them in a gallery, identify faces, reject strangers, verify pairs, calibrate.",
    "generate": "Faces drawn from codes: morph, vary, sample, fill in, decode, reconstruct, denoise.",
    "photos": "Faces in whole photos: detect, align and crop.",
}

# the previous release's top-level command -> (its new words, the model was its first argument,
# options renamed); kept for one release
MOVED: dict[str, tuple[tuple[str, ...], bool, dict[str, str]]] = {
    "info": (("data", "info"), False, {}),
    "evaluate": (("models", "evaluate"), True, {}),
    "ensemble": (("models", "ensemble"), False, {}),
    "search": (("index", "search"), False, {}),
    "duplicates": (("index", "duplicates"), False, {}),
    "cluster": (("index", "cluster"), False, {"--gallery": "--montages"}),
    "verify": (("people", "verify"), True, {"--threshold": "--max-distance"}),
    "calibrate": (("people", "calibrate"), True, {}),
    "explain": (("people", "explain"), True, {}),
    "evaluate-lfw": (("people", "evaluate-lfw"), True, {}),
    "morph": (("generate", "morph"), True, {}),
    "vary": (("generate", "vary"), True, {}),
    "sample": (("generate", "sample"), True, {}),
    "fill": (("generate", "fill"), True, {}),
    "decode": (("generate", "decode"), True, {}),
    "reconstruct": (("generate", "reconstruct"), True, {}),
    "denoise": (("generate", "denoise"), True, {}),
    "faces": (("photos", "detect"), False, {}),
}

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
        nouns = {}
        for noun, help_text in NOUNS.items():
            nouns[noun] = typer.Typer(help=help_text, no_args_is_help=True)
        for area in AREAS:
            importlib.import_module(f"facespace.cli.{area}").register(app, nouns)
        for noun, group in nouns.items():
            app.add_typer(group, name=noun)
        _registered = True
    return app


def _value_options(words: tuple[str, ...]) -> set[str]:
    """The option spellings of the command at `words` that take a value (not flags)."""
    command = typer.main.get_command(build_app())
    for word in words:
        command = command.commands[word]
    return {name for p in command.params if p.param_type_name == "option" and not p.is_flag and not p.count
            for name in p.opts}


def moved_command(argv: list[str]) -> list[str]:
    """`argv` in the new spelling when it uses one of the previous release's commands (`MOVED`).

    The old command word becomes its noun and verb; a model given as the first argument becomes
    `--model MODEL`; renamed options take their new name. A note on stderr says where it moved.
    """
    if not argv or argv[0] not in MOVED:
        return argv
    words, model_first, renamed = MOVED[argv[0]]
    rest = [renamed.get(a, a) for a in argv[1:]]
    if model_first and not {"--help", "-h"} & set(rest) and "--model" not in rest:
        takes_value = _value_options(words)
        i = 0
        while i < len(rest) and rest[i] != "--":
            if not rest[i].startswith("-") or rest[i] == "-":
                rest[i:i + 1] = ["--model", rest[i]]
                break
            i += 2 if rest[i] in takes_value else 1
    new = " ".join(words) + (" --model MODEL" if model_first else "")
    say(f"note: `facespace {argv[0]}` is now `facespace {new}`; the old spelling goes in the next release")
    return [*words, *rest]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    roomy_malloc()  # torch's batch tensors reused, not mapped afresh: about 1.25x faster encoding here
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = moved_command(argv)
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
