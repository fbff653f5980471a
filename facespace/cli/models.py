"""`facespace models [list|show|ensemble]` (and `evaluate`, in train.py): the built-in models and
their cards, what a checkpoint holds, and verifiers combined into one model."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from facespace.cli._util import out, say


def list_cmd() -> None:
    """The models facespace knows by name: the built-in ones and those an optional extra provides
    (name, kind, input, code size, weights, what each is for, whether it can be used here; CSV)."""
    from facespace.models.registry import builtin_card, builtin_names, extra_available, extra_names

    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "kind", "image_shape", "code_size", "weights", "file_bytes", "honest_numbers", "available"])
    for name in builtin_names() + extra_names():
        c = builtin_card(name)
        available = "yes"
        if name in extra_names():  # from an optional extra: usable only where it is installed
            available = "yes" if extra_available(name) else f"no: {c['requires']}"
        w.writerow([name, c["kind"], "x".join(str(v) for v in c["image_shape"]), c["code_size"], c["weights"],
                    c["file_bytes"], c["honest_numbers"], available])
    out(buf.getvalue().rstrip("\n"))
    if not builtin_names():
        say("this installation ships no built-in model; train one with `facespace train`")


def show_cmd(
    name: str = typer.Argument(None, help="a built-in model's name (its model card), or leave it out and give --model"),
    model: str = typer.Option(None, "--model", "-m", help="a checkpoint, run folder or built-in name"),
) -> None:
    """What a model is: a built-in model's card, or a checkpoint's kind, input shape, code size, crop,
    stored threshold and training step; one JSON object."""
    from facespace.data.crops import crop_name, model_crop
    from facespace.errors import FacespaceError
    from facespace.models.registry import builtin_card, resolve_model
    from facespace.protocol import has_decoder

    if (name is None) == (model is None):
        raise FacespaceError("give a built-in model's NAME or --model (one of the two)")
    if name is not None:
        out(json.dumps(builtin_card(name), indent=2))
        return
    net = resolve_model(model)
    info = getattr(net, "checkpoint_info", {}) or {}
    extra = info.get("extra") or {}
    row = {"model": info.get("path") or model, "kind": net.kind, "image_shape": list(net.image_shape),
           "code_size": int(net.code_size), "decoder": has_decoder(net), "crop": crop_name(model_crop(net)),
           "verify": extra.get("verify"), "step": info.get("step"), "best_val_loss": info.get("best_val_loss"),
           "facespace_version": info.get("facespace_version"), "hash": info.get("hash")}
    out(json.dumps(row, default=str))


def ensemble_cmd(
    models: list[Path] = typer.Argument(..., help="Verifier checkpoints, each trained on its own crop (--crop)."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the ensemble checkpoint (.safetensors)."),
    size: int = typer.Option(160, help="Input side: the union of the members' boxes is resized to it (160 keeps "
                             "LFW's own pixels when the union box is 160 px wide)."),
) -> None:
    """Combine verifiers trained on different crops into one model (cosine = mean of theirs)."""
    from facespace.data.crops import crop_name
    from facespace.models.ensemble import ensemble_verifiers
    from facespace.models.registry import load_model, save_model

    ens = ensemble_verifiers([load_model(p) for p in models], size=size)
    save_model(ens, out_path)
    out(json.dumps({"out": str(out_path), "kind": ens.kind, "members": [str(p) for p in models],
                    "crop": crop_name(ens.crop), "size": size, "code_size": ens.code_size}))
    say(f"ensemble of {len(models)} verifiers written to {out_path}; files are cut at {crop_name(ens.crop)} "
        f"and resized to {size} px (use it as any model: people verify, people evaluate-lfw, ...)")


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to the `models` noun."""
    models = nouns["models"]
    models.info.no_args_is_help = False

    @models.callback(invoke_without_command=True)
    def _models(ctx: typer.Context) -> None:
        """The built-in models (`facespace models` lists them), checkpoints, ensembles."""
        if ctx.invoked_subcommand is None:
            list_cmd()

    models.command("list")(list_cmd)
    models.command("show")(show_cmd)
    models.command("ensemble")(ensemble_cmd)
