"""CLI commands of the 'verify' area: `facespace verify` (two faces: same person?),
`facespace evaluate-lfw` (the LFW View 2 protocol) and `facespace ensemble` (verifiers trained on
different crops of the face, combined into one model).

MODEL is a checkpoint file (or run folder), or `pixels[:SIZE]` for the raw-pixel baseline; for
`evaluate-lfw` also `pca:D[:SIZE]`, a PCA refitted on each fold's training people. `verify --detect`
treats each file as a whole photo (see `facespace/cli/people.py`).

Image files are cut as the model's training faces were (the crop recorded in its checkpoint,
`facespace.data.crops`); `--crop` overrides it. `evaluate-lfw VERIFIER --retrain` trains a fresh
verifier per fold with the checkpoint's settings on the other folds' people only (the protocol);
an ensemble retrains each of its members so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from facespace.cli._util import out, say
from facespace.cli.people import _crops
from facespace.models.registry import resolve_model
from facespace.errors import FacespaceError


def _per_fold_pca(spec: str, model: Any):
    """`(train_fn, (size, grey))` for pixels, PCA specs and PCA checkpoints; `(None, None)` otherwise."""
    from facespace.models.pca import PCAAutoencoder

    if getattr(model, "kind", "") == "pixels":  # nothing to train: every fold trivially honoured
        return (lambda faces: model), (model.image_shape[0], model.image_shape[2] == 1)
    if model is not None:
        if getattr(model, "kind", "") != "pca":
            return None, None
        d, size, grey = model.code_size, model.image_shape[0], model.image_shape[2] == 1
    else:
        parts = spec.split(":")
        try:
            d = int(parts[1])
            size = int(parts[2]) if len(parts) > 2 else 32
        except (IndexError, ValueError):
            raise FacespaceError(f"bad model spec {spec!r}; expected pca:D or pca:D:SIZE, e.g. pca:32") from None
        grey = "grey" in parts[3:]
    return (lambda faces: PCAAutoencoder(code_size=d).fit(faces.images)), (size, grey)


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""

    @app.command()
    def verify(
        model: str = typer.Argument(..., help="Model checkpoint, or pixels[:SIZE]."),
        image_a: Path = typer.Argument(..., help="First face image."),
        image_b: Path = typer.Argument(..., help="Second face image."),
        threshold: Optional[float] = typer.Option(None, help="Largest distance still 'same person' (default: the model's calibrated one)."),
        metric: Optional[str] = typer.Option(None, help="cosine or l2 (default: the calibrated metric, else cosine)."),
        detect: bool = typer.Option(False, "--detect", help="The images are whole photos: find the faces first "
                                    "(several faces: every pair is compared, one JSON line each)."),
        crop: Optional[str] = typer.Option(None, help="How faces are cut from the files: tight | lfw | none | T,L,B,R "
                                           "(default: the crop the model was trained with)."),
    ) -> None:
        """Are two faces the same person? Prints a JSON line with the distance, threshold and verdict."""
        from facespace.people.verification import stored_threshold, verify as verify_faces

        from facespace.data.crops import RECORDED, parse_crop

        m = resolve_model(model)
        cut = RECORDED if crop is None else parse_crop(crop)
        if not detect:
            pairs = [(image_a, image_b, None, None)]
        else:
            crops = _crops(m, [image_a, image_b], detect=True)
            if crops.no_face:
                out(json.dumps({"a": str(image_a), "b": str(image_b), "status": "no_face",
                                "no_face": crops.no_face}))
                say(f"no face found in {', '.join(crops.no_face)}; nothing to compare")
                return
            rows = {str(p): [i for i, s in enumerate(crops.sources) if s == str(p)] for p in (image_a, image_b)}
            pairs = [(crops.images[i], crops.images[j], i, j) for i in rows[str(image_a)] for j in rows[str(image_b)]]
        for a, b, i, j in pairs:
            d, same = verify_faces(m, a, b, threshold=threshold, metric=metric, crop=cut)
            stored = stored_threshold(m) or {}
            t = threshold if threshold is not None else float(stored["threshold"])
            row = {"a": str(image_a), "b": str(image_b), "distance": round(d, 6), "threshold": round(t, 6),
                   "metric": metric or stored.get("metric", "cosine"), "same": same}
            if i is not None:
                row.update(face_a=crops.faces[i], box_a=list(crops.boxes[i]), face_b=crops.faces[j],
                           box_b=list(crops.boxes[j]), status="ok")
            out(json.dumps(row))
            which = "" if i is None else f"faces {crops.faces[i]} and {crops.faces[j]}: "
            say(f"{which}{'same person' if same else 'different people'}: distance {d:.4f} "
                f"{'<=' if same else '>'} threshold {t:.4f}")

    @app.command()
    def ensemble(
        models: list[Path] = typer.Argument(..., help="Verifier checkpoints, each trained on its own crop (--crop)."),
        out_path: Path = typer.Option(..., "--out", help="Where to write the ensemble checkpoint (.safetensors)."),
        size: int = typer.Option(160, help="Input side: the union of the members' boxes is resized to it (160 keeps "
                                 "LFW's own pixels when the union box is 160 px wide)."),
    ) -> None:
        """Combine verifiers trained on different crops into one model (cosine = mean of theirs)."""
        from facespace.models.registry import load_model, save_model
        from facespace.data.crops import crop_name
        from facespace.models.ensemble import ensemble_verifiers

        ens = ensemble_verifiers([load_model(p) for p in models], size=size)
        save_model(ens, out_path)
        out(json.dumps({"out": str(out_path), "kind": ens.kind, "members": [str(p) for p in models],
                        "crop": crop_name(ens.crop), "size": size, "code_size": ens.code_size}))
        say(f"ensemble of {len(models)} verifiers written to {out_path}; files are cut at {crop_name(ens.crop)} "
            f"and resized to {size} px (use it as any model: verify, people, evaluate-lfw)")

    @app.command("evaluate-lfw")
    def evaluate_lfw(
        model: str = typer.Argument(..., help="Model checkpoint, pixels[:SIZE] or pca:D[:SIZE] (PCA refitted per fold)."),
        pairs: list[Path] = typer.Option(..., help="LFW pairs file: pairs.txt (View 2, 10 folds), or pairsDevTrain.txt with "
                                          "--save-threshold; given twice (--pairs pairsDevTrain.txt --pairs pairsDevTest.txt), "
                                          "View 1 as two folds: --folds 2 tests DevTest with a DevTrain threshold."),
        lfw: Optional[Path] = typer.Option(None, help="LFW image folder (default: found beside the pairs file)."),
        roc: Optional[Path] = typer.Option(None, help="Write the ROC curve here (PNG)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
        metric: str = typer.Option("cosine", help="cosine or l2."),
        per_fold: bool = typer.Option(True, help="Refit PCA models per fold on the other folds' people (the protocol)."),
        save_threshold: bool = typer.Option(False, help="Calibrate on all these pairs and store the threshold in the checkpoint."),
        target_far: Optional[float] = typer.Option(None, help="Thresholds at this false-accept rate of the calibration pairs' different-person "
                                                   "pairs instead of their best accuracy (each fold's, and --save-threshold's)."),
        retrain: bool = typer.Option(False, "--retrain", help="Verifier checkpoints: train a fresh network per fold with the "
                                     "checkpoint's settings on the other folds' people only (the protocol)."),
        crop: Optional[str] = typer.Option(None, help="How faces are cut from the files: tight | lfw | none | T,L,B,R "
                                           "(default: the crop the model was trained with)."),
        folds: Optional[str] = typer.Option(None, help="Test only these folds, e.g. 1,2 (quick runs; not the full protocol)."),
        threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: as the checkpoint trained, else torch's)."),
        calibrate: str = typer.Option("other-folds", help="Where each fold's threshold comes from: other-folds (the nine "
                                      "other folds' pairs) or held-out-fold (per-fold training also leaves out the next "
                                      "fold, whose pairs alone set the threshold)."),
        train_people: str = typer.Option("other-folds", "--train-people", help="With --retrain, whom each fold's verifier "
                                         "trains on: other-folds (the other folds' pairs' people) or untested (everyone "
                                         "in the image folder outside the tested fold)."),
    ) -> None:
        """The LFW View 2 protocol: 10 folds, threshold chosen on nine and tested on the tenth."""
        from facespace.people import lfw as lfw_eval
        from facespace.data.crops import RECORDED, parse_crop

        m = None if model.startswith("pca:") else resolve_model(model)
        cut = RECORDED if crop is None else parse_crop(crop)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        pairs = pairs[0] if len(pairs) == 1 else pairs  # one file, or several read as one (View 1)
        if retrain:
            if save_threshold:
                raise FacespaceError("--save-threshold calibrates the checkpoint itself; run it without --retrain")
            _retrain_lfw(m, model, pairs, lfw, roc, json_out, metric, cut, folds, threads, calibrate, train_people, target_far)
            return
        if train_people != "other-folds":
            raise FacespaceError("--train-people chooses whom --retrain trains on; add --retrain (PCA is refitted on the "
                                 "other folds' people)")
        train_fn, shape = _per_fold_pca(model, m) if per_fold else (None, None)
        if m is None and train_fn is None:
            raise FacespaceError("pca:D models are fitted per fold; drop --no-per-fold or pass a checkpoint")
        if save_threshold and (m is None or not getattr(m, "checkpoint_info", {}).get("path")):
            raise FacespaceError("--save-threshold stores the threshold in a checkpoint; pass a model file")
        from facespace.data import read_pairs

        if save_threshold and isinstance(pairs, list):
            raise FacespaceError("--save-threshold calibrates on one pairs file; pass a single --pairs")
        if save_threshold and len({p.fold for p in read_pairs(pairs)}) == 1:
            _calibrate_only(m, pairs, lfw, metric, target_far, cut)
            return
        kw = dict(size=shape[0], grayscale=shape[1]) if shape else {}
        if m is not None:  # a PCA checkpoint refitted per fold still cuts files as it was trained
            from facespace.data.crops import resolve_crop

            cut = resolve_crop(m, cut)
        report = lfw_eval.evaluate_lfw(None if train_fn else m, pairs, lfw, train_fn=train_fn, metric=metric, roc=roc,
                                       crop=cut, folds=folds, calibrate=calibrate, target_far=target_far, **kw)
        _print_report(report, model, roc, json_out)
        if save_threshold:
            _calibrate_only(m, pairs, lfw, metric, target_far, cut)

    def _print_report(report: Any, model: str, roc: Optional[Path], json_out: Optional[Path], **more: Any) -> None:
        out(report.format())
        if json_out:
            from facespace.files import write_text_atomic

            write_text_atomic(json_out, json.dumps({"model": model, **more, **report.to_dict()}, indent=2))
        if roc:
            say(f"ROC curve written to {roc}")

    def _retrain_lfw(m: Any, model: str, pairs: Any, lfw: Optional[Path], roc: Optional[Path], json_out: Optional[Path],
                     metric: str, cut: Any, folds: Optional[str], threads: Optional[int], calibrate: str,
                     train_people: str, target_far: Optional[float]) -> None:
        """--retrain: one fresh verifier per fold, with the checkpoint's network, objective and loop."""
        from facespace.people import lfw as lfw_eval
        from facespace.data.crops import resolve_crop
        from facespace.training.verifier import ensemble_retrainer, retrainer

        if getattr(m, "kind", "") not in ("verifier", "ensemble"):
            raise FacespaceError(f"--retrain trains verifier checkpoints afresh per fold; {getattr(m, 'kind', None) or model!r} "
                                 "is not one (pixels need no training; PCA is refitted per fold without --retrain)")
        # an ensemble retrains each member on its own box, cut from the same faces
        train_fn = (ensemble_retrainer if m.kind == "ensemble" else retrainer)(m, progress=True, threads=threads)
        size, _, c = m.image_shape
        report = lfw_eval.evaluate_lfw(None, pairs, lfw, train_fn=train_fn, metric=metric, roc=roc, size=size,
                                       grayscale=c == 1, crop=resolve_crop(m, cut), folds=folds, calibrate=calibrate,
                                       train_people=train_people, target_far=target_far)
        report.protocol_note = f"per-fold retraining with the settings of {model}: {report.protocol_note}"
        _print_report(report, model, roc, json_out, retrained=True)

    def _calibrate_only(m: Any, pairs: Path, lfw: Optional[Path], metric: str, target_far: Optional[float],
                        cut: Any = "recorded") -> None:
        from facespace.people import lfw as lfw_eval
        from facespace.data.crops import resolve_crop
        from facespace.data import load_faces, read_pairs
        from facespace.people.thresholds import calibrate_threshold, pair_accuracy
        from facespace.people.distances import pair_distances
        from facespace.people.verification import save_threshold

        plist = read_pairs(pairs)
        root = lfw_eval.find_lfw_root(pairs, lfw)
        size, _, c = m.image_shape
        faces = load_faces(str(root), size=size, crop=resolve_crop(m, cut), grayscale=c == 1)
        ia, ib = lfw_eval.pair_rows(plist, root, faces)
        import numpy as np

        used = np.union1d(ia, ib)
        z = np.zeros((len(faces), m.code_size), np.float32)
        z[used] = m.encode(faces.images[used])
        d = pair_distances(z[ia], z[ib], metric=metric)
        same = [p.same for p in plist]
        t = calibrate_threshold(d, same, target_far=target_far)
        acc = pair_accuracy(d, same, t)
        path = save_threshold(m, t, metric=metric, target_far=target_far, pairs=str(pairs), accuracy=acc)
        say(f"threshold {t:.4f} ({metric}; accuracy {acc:.4f} on the {len(d)} calibration pairs) stored in {path}")
