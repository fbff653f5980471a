"""`facespace people verify|calibrate|explain|evaluate-lfw`: are two faces the same person, the
threshold that decides it, why, and the LFW protocol that measures it.

--model is a checkpoint file (or run folder), or `pixels[:SIZE]` for the raw-pixel baseline; for
`evaluate-lfw` also `pca:D[:SIZE]`, a PCA refitted on each fold's training people. `--detect`
treats each file as a whole photo.

Image files are cut as the model's training faces were (the crop recorded in its checkpoint,
`facespace.data.crops`); `--crop` overrides it. A face is an image file or its URL (s3://, https://, file://,
memory://, ...; read through fsspec, `facespace.data.urls`). `evaluate-lfw --model VERIFIER --retrain` trains a
fresh verifier per fold with the checkpoint's settings on the other folds' people only (the
protocol); an ensemble retrains each of its members so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from facespace.cli._util import IDENTITY_HELP, DetectorOpt, ModelOpt, detection, identity_model, out, say
from facespace.cli.generate import photo_face
from facespace.data.sources import image_path
from facespace.errors import FacespaceError
from facespace.models.registry import resolve_model
from facespace.photos.faces import model_crops


Opt = typer.Option


def _json(obj: dict) -> None:
    out(json.dumps(obj, default=str))


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


# --- calibrate --------------------------------------------------------------------------------


def calibrate_cmd(
    pairs: Annotated[Optional[Path], Opt("--pairs", help="LFW pairs file, or a CSV path_a,path_b,same[,name_a,name_b]")] = None,
    lfw: Annotated[Optional[Path], Opt("--lfw", help="LFW pairs: the image folder (default: beside the pairs file)")] = None,
    folder: Annotated[Optional[Path], Opt("--folder", help="identities from sub-folders: DIR/<Name>/<images>")] = None,
    seed: Annotated[int, Opt(help="--folder: seed of the different-person sample")] = 0,
    max_same: Annotated[Optional[int], Opt("--max-same", help="--folder: at most this many same-person pairs (sampled)")] = None,
    target_far: Annotated[float, Opt("--target-far", help="false-accept rate the threshold is chosen for")] = 0.01,
    best_accuracy: Annotated[bool, Opt("--best-accuracy", help="choose the threshold of best accuracy instead")] = False,
    metric: Annotated[str, Opt(help="cosine or l2 (with --gallery: the gallery's)")] = "cosine",
    gallery: Annotated[Optional[Path], Opt("--gallery", help="store the threshold in this gallery instead of the model")] = None,
    per_person: Annotated[bool, Opt("--per-person", help="--gallery: also a threshold per enrolled person")] = False,
    curves: Annotated[Optional[Path], Opt("--curves", help="PNG of the false-accept / false-reject curves")] = Path("calibration.png"),
    detect: Annotated[bool, Opt("--detect", help="the images are whole photos: use each one's surest face")] = False,
    detector: DetectorOpt = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="measure and report, store nothing")] = False,
    model: Annotated[Optional[str], Opt("--model", "-m", help=IDENTITY_HELP)] = None,
) -> None:
    """Calibrate the same-person threshold on your own labelled pairs; store it with the model or gallery."""
    from facespace.people import calibration as cal
    from facespace.models.registry import resolve_model

    if (pairs is None) == (folder is None):
        raise FacespaceError("pass labelled pairs with --pairs FILE or identities with --folder DIR (one of them)")
    if per_person and gallery is None:
        raise FacespaceError("--per-person thresholds are stored in a gallery; pass --gallery G")
    far = None if best_accuracy else target_far
    if far is not None and not 0.0 <= far < 1.0:
        raise FacespaceError(f"--target-far must be in [0, 1); got {far}")
    if lfw is not None and pairs is None:
        raise FacespaceError("--lfw goes with an LFW --pairs file")
    detect, detector = detection(detect, detector)
    labelled = cal.read_pair_file(pairs, lfw=lfw) if pairs is not None else cal.folder_pairs(folder, seed=seed, max_same=max_same)
    say(f"{len(labelled)} labelled pairs ({int(labelled.same.sum())} same) from {labelled.source}")
    model = identity_model(model, gallery)
    net = resolve_model(model)
    per: dict[str, dict[str, Any]] = {}
    if gallery is not None:
        from facespace.people.gallery.gallery import Gallery

        with Gallery(gallery, net, create=False) as g:
            if metric != g.metric:
                say(f"using the gallery's metric, {g.metric}")
            c, per, no_face = cal.calibrate_gallery(g, labelled, target_far=far, per_person=per_person, detect=detect,
                                                    detector=detector, store=not dry_run)
        stored = None if dry_run else str(gallery)
    else:
        c, no_face = cal.calibrate_pairs(net, labelled, target_far=far, metric=metric, detect=detect,
                                         detector=detector)
        stored = None
        if not dry_run:
            from facespace.people.verification import save_threshold

            source = str(pairs if pairs is not None else folder)
            stored = str(save_threshold(net, c.threshold, metric=c.metric, target_far=far, pairs=source,
                                        n_pairs=c.n_genuine + c.n_impostor, accuracy=c.accuracy, far=c.far, frr=c.frr))
    for p in no_face:
        say(f"{p}: no face found; its pairs are left out")
    if curves is not None:
        cal.plot_curves(c, curves, title=f"{Path(str(model)).name} on {Path(labelled.source).name}"
                        + (f", against gallery {gallery.name}" if gallery is not None else ""))
    say(f"threshold {c.threshold:.4f} ({c.metric}): false accepts {c.far:.3%}, false rejects {c.frr:.3%}, "
        f"accuracy {c.accuracy:.3%}" + (f"; stored in {stored}" if stored else "; not stored (--dry-run)" if dry_run else ""))
    result = {"model": str(model), **c.summary(), "stored_in": stored, "curves": str(curves) if curves else None, "no_face": no_face}
    if gallery is not None:
        result["per_person"] = per
    _json(result)


# --- explain ----------------------------------------------------------------------------------


def explain_cmd(
    image_a: Annotated[str, typer.Argument(help="first face (image file or URL)")],
    image_b: Annotated[str, typer.Argument(help="second face (image file or URL)")],
    out_path: Annotated[Path, Opt("--out", help="PNG: A | reconstruction A | heatmap | reconstruction B | B")] = Path("explain.png"),
    metric: Annotated[Optional[str], Opt(help="cosine or l2 (default: the calibrated metric, else cosine)")] = None,
    scale: Annotated[int, Opt(help="upscaling of the tiles")] = 4,
    detect: Annotated[bool, Opt("--detect", help="the images are whole photos: use each one's surest face")] = False,
    detector: DetectorOpt = None,
    model: ModelOpt = "faces-ae",
) -> None:
    """Explain a match: the two faces, their reconstructions and a difference heatmap, with the verdict."""
    from facespace.models.registry import resolve_model
    from facespace.pipelines.explanation import caption, explain, explanation_picture
    from facespace.grid import save_png
    from facespace.people.verification import stored_threshold

    image_a, image_b = image_path(image_a), image_path(image_b)  # a URL as given, a local path as Path writes it
    net = resolve_model(model)
    metric = metric or (stored_threshold(net) or {}).get("metric", "cosine")
    e = explain(net, photo_face(net, image_a, detect, detector), photo_face(net, image_b, detect, detector), metric=metric)
    save_png(explanation_picture(e, scale=scale), out_path)
    say(f"{caption(e)}; wrote {out_path}")
    _json({"model": str(model), "a": str(image_a), "b": str(image_b), "distance": round(e.distance, 6),
           "threshold": None if e.threshold is None else round(e.threshold, 6), "metric": e.metric, "same": e.same,
           "decoder": e.reconstructions is not None, "heat_max": round(float(e.heatmap.max()), 6), "out": str(out_path)})


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to the `people` noun."""
    people = nouns["people"]
    people.command("calibrate")(calibrate_cmd)
    people.command("explain")(explain_cmd)

    @people.command()
    def verify(
        image_a: str = typer.Argument(..., help="First face image (a file or URL)."),
        image_b: str = typer.Argument(..., help="Second face image (a file or URL)."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help=IDENTITY_HELP + ", or pixels:SIZE[:grey]."),
        max_distance: Optional[float] = typer.Option(None, "--max-distance", help="Largest distance still 'same person' "
                                                     "(default: the model's calibrated threshold)."),
        metric: Optional[str] = typer.Option(None, help="cosine or l2 (default: the calibrated metric, else cosine)."),
        detect: bool = typer.Option(False, "--detect", help="The images are whole photos: find the faces first "
                                    "(several faces: every pair is compared, one JSON line each)."),
        detector: DetectorOpt = None,
        crop: Optional[str] = typer.Option(None, help="How faces are cut from the files: tight | lfw | none | T,L,B,R "
                                           "(default: the crop the model was trained with)."),
    ) -> None:
        """Are two faces the same person? Prints a JSON line with the distance, threshold and verdict."""
        from facespace.people.verification import stored_threshold, verify as verify_faces

        from facespace.data.crops import RECORDED, parse_crop

        image_a, image_b = image_path(image_a), image_path(image_b)  # a URL as given, a local path as Path writes it
        model = identity_model(model)
        m = resolve_model(model)
        cut = RECORDED if crop is None else parse_crop(crop)
        detect, detector = detection(detect, detector)
        if not detect:
            pairs = [(image_a, image_b, None, None)]
        else:
            crops = model_crops(m, [image_a, image_b], detect=True, detector=detector)
            if crops.no_face:
                out(json.dumps({"a": str(image_a), "b": str(image_b), "status": "no_face",
                                "no_face": crops.no_face}))
                say(f"no face found in {', '.join(crops.no_face)}; nothing to compare")
                return
            rows = {str(p): [i for i, s in enumerate(crops.sources) if s == str(p)] for p in (image_a, image_b)}
            pairs = [(crops.images[i], crops.images[j], i, j) for i in rows[str(image_a)] for j in rows[str(image_b)]]
        for a, b, i, j in pairs:
            d, same = verify_faces(m, a, b, max_distance=max_distance, metric=metric, crop=cut)
            stored = stored_threshold(m) or {}
            t = max_distance if max_distance is not None else float(stored["threshold"])
            row = {"model": str(model), "a": str(image_a), "b": str(image_b), "distance": round(d, 6), "threshold": round(t, 6),
                   "metric": metric or stored.get("metric", "cosine"), "same": same}
            if i is not None:
                row.update(face_a=crops.faces[i], box_a=list(crops.boxes[i]), face_b=crops.faces[j],
                           box_b=list(crops.boxes[j]), status="ok")
            out(json.dumps(row))
            which = "" if i is None else f"faces {crops.faces[i]} and {crops.faces[j]}: "
            say(f"{which}{'same person' if same else 'different people'}: distance {d:.4f} "
                f"{'<=' if same else '>'} threshold {t:.4f}")

    @people.command("evaluate-lfw")
    def evaluate_lfw(
        model: str = typer.Option(..., "--model", "-m", help="Model checkpoint, pixels[:SIZE] or pca:D[:SIZE] (PCA "
                                  "refitted per fold)."),
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
