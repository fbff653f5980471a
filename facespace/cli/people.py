"""`facespace people enroll|identify|reject|quality|list|remove`: a gallery of known people
(`people verify|calibrate|explain|evaluate-lfw` live in `facespace/cli/verify.py`).

`--detect` (people enroll/identify/reject/quality) treats each file as a whole photo and
goes through `facespace.photos.faces.crops_from_photos`: one face is used; several are each used (with
their face number and box); none gives a "no face found" line on stderr (and a `no_face` row in
CSV output), never an error deep inside.

MODEL is a checkpoint file (or run folder), or `pixels[:SIZE]` for the raw-pixel baseline.

IMAGES are what `facespace encode` takes (`facespace.data.inputs.expand_images`): image files, folders
(recursive), `.txt` lists of image paths or URLs (one a line), and URLs of images or folders (s3://,
gs://, https://, file://, memory://; read through fsspec). Local paths are printed as given.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Optional

import typer

from facespace.cli._util import IDENTITY_HELP, DetectorOpt, detection, identity_model, out, say
from facespace.data.inputs import expand_images
from facespace.data.sources import image_path
from facespace.errors import FacespaceError
from facespace.models.registry import resolve_model
from facespace.photos.faces import model_crops


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add this area's commands to the `people` noun."""
    people = nouns["people"]

    @people.command("enroll")
    def enroll(
        name: str = typer.Argument(..., help="The person's name."),
        images: list[str] = typer.Argument(..., help="Image files, folders, .txt lists or URLs of this person."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help=IDENTITY_HELP + " (the gallery keeps only "
                                            "its codes)."),
        gallery: Path = typer.Option(..., help="Gallery file (created if missing)."),
        replace: bool = typer.Option(False, help="Replace the person's earlier images instead of adding."),
        target_far: float = typer.Option(0.01, help="False-accept rate for strangers (used when the gallery is created)."),
        scoring: Optional[str] = typer.Option(None, help="How a person is scored (when the gallery is created): nearest "
                                              "(their nearest photo), centroid (the mean of their codes) or snorm (the "
                                              "centroid distance normalised against the model's cohort of outside "
                                              "faces); default: the model's recommendation."),
        force: bool = typer.Option(False, "--force", help="Enrol images that fail the quality checks too."),
        detect: bool = typer.Option(False, "--detect", help="The images are whole photos of this person alone: "
                                    "find the face first (a photo with several faces is refused)."),
        detector: DetectorOpt = None,
        crop: str = typer.Option("recorded", "--crop", help="How image files are cut (not with --detect): recorded "
                                 "(the model's own; a file that is not a 250x250 LFW original is used whole) | "
                                 "lfw | tight | none | T,L,B,R."),
    ) -> None:
        """Add a person (or more images of one) to a gallery; no retraining. Low-quality images
        (blurry, flat, not face-like, too small) are refused with the reason unless --force."""
        from facespace.people.gallery.gallery import Gallery

        files = expand_images(images)
        m = resolve_model(identity_model(model, gallery))
        sizes = None
        detect, detector = detection(detect, detector)
        if detect:
            crops = model_crops(m, files, detect=True, detector=detector)
            for p in crops.no_face:
                say(f"{p}: no face found; not enrolled")
            several = sorted({s for s in crops.sources if crops.sources.count(s) > 1})
            if several:
                raise FacespaceError(f"{', '.join(several)}: several faces, so it is not clear which is {name}; "
                                     "crop the photo to this person, or enrol without --detect")
            if not len(crops):
                raise FacespaceError(f"no face found in any of the {len(files)} photo(s); nothing was enrolled")
            files, sizes = crops.images, [min(b[2], b[3]) for b in crops.boxes]
        from facespace.people.quality import LowQualityError

        try:
            with Gallery(gallery, m, target_far=target_far, scoring=scoring) as g:
                n = g.enroll(name, files, replace=replace, force=force, sizes=sizes, crop=crop)
                t = g.threshold
                source = json.loads(g.meta.get("calibration") or "{}").get("source")
        except LowQualityError as e:  # the command line's way to enrol them anyway
            raise FacespaceError(str(e).replace("(force=True)", "(--force)")) from None
        how = {"model": " (from the model's impostor distances: too few people here to calibrate on)",
               "gallery": " (calibrated on the enrolled people)"}.get(source or "", "")
        say(f"{name}: {n} image(s) enrolled in {gallery}; stranger threshold "
            + (f"{t:.4f}{how}" if t is not None else "not yet calibrated (enrol a second person)"))
        out(f"{name},{n}")

    @people.command("identify")
    def identify(
        images: Optional[list[str]] = typer.Argument(None, help="Image files, folders, .txt lists or URLs to "
                                                     "identify."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help=IDENTITY_HELP + " (not used with --codes)."),
        gallery: Path = typer.Option(..., help="Gallery file."),
        max_distance: Optional[float] = typer.Option(None, help="Override the calibrated stranger threshold."),
        detect: bool = typer.Option(False, "--detect", help="The images are whole photos: name every face in them."),
        detector: DetectorOpt = None,
        codes: Optional[Path] = typer.Option(None, help="Identify codes exported by `facespace encode` "
                                             "(.npy, .csv, .parquet) instead of images."),
        crop: str = typer.Option("recorded", "--crop", help="How image files are cut (not with --detect): recorded "
                                 "(the model's own; a file that is not a 250x250 LFW original is used whole) | "
                                 "lfw | tight | none | T,L,B,R."),
    ) -> None:
        """Name each face, or 'unknown' for strangers. CSV on stdout: path,name,distance,quality
        (quality: `facespace.people.quality` score, 0-1, below 0.5 = failed a check; empty for --codes);
        with --detect also face,box ("x y width height" in photo pixels),status (ok or no_face)."""
        from facespace.people.gallery.gallery import Gallery

        detect, detector = detection(detect, detector)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "name", "distance", "quality"] + (["face", "box", "status"] if detect else []))
        if codes is not None:
            if images or detect:
                raise FacespaceError("--codes identifies exported codes; pass either --codes or images, not both")
            _identify_codes(codes, gallery, None, max_distance, w)  # the codes carry their model's record
            out(buf.getvalue().rstrip("\n"))
            return
        if not images:
            raise FacespaceError("pass images (files, folders, .txt lists or URLs) to identify, or --codes FILE")
        files = expand_images(images)
        m = resolve_model(identity_model(model, gallery))
        with Gallery(gallery, m, create=False) as g:
            if detect:
                crops = model_crops(m, files, detect=True, detector=detector)
                results = g.identify(crops.images, max_distance=max_distance,
                                     sizes=[min(b[2], b[3]) for b in crops.boxes]) if len(crops) else []
            else:
                results = g.identify(files, max_distance=max_distance, crop=crop)
        if detect:
            found = {s: [] for s in map(str, files)}
            for k, r in enumerate(results):
                found[crops.sources[k]].append(k)
            for f, ks in found.items():
                if not ks:
                    say(f"{f}: no face found")
                    w.writerow([f, "unknown", "", "", "", "", "no_face"])
                for k in ks:
                    r = results[k]
                    w.writerow([f, *_answer(r), crops.faces[k], " ".join(map(str, crops.boxes[k])), "ok"])
                    _say_quality(f"{f}#{crops.faces[k]}", r.quality)
        else:
            for f, r in zip(files, results):
                w.writerow([str(f), *_answer(r)])
                _say_quality(str(f), r.quality)
        out(buf.getvalue().rstrip("\n"))

    def _identify_codes(path: Path, gallery: Path, model: Optional[str], max_distance: Optional[float], w: Any) -> None:
        from facespace.pipelines.export.read import load_codes
        from facespace.people.gallery.gallery import Gallery

        exported = load_codes(path)
        with Gallery(gallery, resolve_model(model) if model else None, create=False) as g:
            made_by = (exported.model or {}).get("weights_hash")
            if made_by and made_by != g.meta.get("model_fingerprint"):
                raise FacespaceError(f"{path} was encoded with another model ({(exported.model or {}).get('path') or made_by}) "
                                     f"than gallery {gallery}; encode with the gallery's model")
            if not made_by:
                say(f"{path} does not say which model made its codes; assuming the gallery's")
            results = g.identify_codes(exported.codes, max_distance=max_distance)
        for label, r in zip(exported.labels(), results):
            w.writerow([label, *_answer(r)])

    @people.command("reject")
    def reject(
        image: str = typer.Argument(..., help="The face (an image file or URL; a whole photo with --detect)."),
        name: str = typer.Argument(..., help="The enrolled person this face is NOT."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help=IDENTITY_HELP + "."),
        gallery: Path = typer.Option(..., help="Gallery file."),
        detect: bool = typer.Option(False, "--detect", help="IMAGE is a whole photo: find the faces first."),
        detector: DetectorOpt = None,
        face: Optional[int] = typer.Option(None, help="With --detect: which face (the number identify printed)."),
        crop: str = typer.Option("recorded", "--crop", help="How image files are cut (not with --detect): recorded "
                                 "(the model's own; a file that is not a 250x250 LFW original is used whole) | "
                                 "lfw | tight | none | T,L,B,R."),
    ) -> None:
        """'Not this person': never name this face (or near-identical ones) as NAME again."""
        from facespace.people.gallery.gallery import Gallery

        m = resolve_model(identity_model(model, gallery))
        image = image_path(image)  # a URL as given, a local path as Path writes it
        source, x = image, image
        detect, detector = detection(detect, detector)
        if detect:
            crops = model_crops(m, [image], detect=True, detector=detector)
            if not len(crops):
                raise FacespaceError(f"{image}: no face found; nothing was recorded")
            if face is None and len(crops) > 1:
                raise FacespaceError(f"{image} has {len(crops)} faces; say which with --face K (0 to {len(crops) - 1})")
            k = 0 if face is None else face
            if not 0 <= k < len(crops):
                raise FacespaceError(f"{image} has {len(crops)} face(s); --face must be 0 to {len(crops) - 1}")
            x, source = crops.images[k], f"{image}#{k}"
        with Gallery(gallery, m, create=False) as g:
            n = g.reject(x, name, source=source, crop=crop)
        say(f"recorded: {source} is not {name} ({n} correction(s) for {name})")
        out(f"{name},{n}")

    @people.command("quality")
    def quality(
        images: list[str] = typer.Argument(..., help="Image files, folders, .txt lists or URLs."),
        model: str = typer.Option("faces-ae", "--model", "-m", help="The model the faces are for (its reconstructions "
                                  "judge how face-like they are)."),
        detect: bool = typer.Option(False, "--detect", help="The images are whole photos: judge every face."),
        detector: DetectorOpt = None,
        save_reference: bool = typer.Option(False, "--save-reference", help="These are good faces (e.g. the "
                                            "training faces): store their quality distribution in the model."),
        crop: str = typer.Option("recorded", "--crop", help="How image files are cut (not with --detect): recorded "
                                 "(the model's own; a file that is not a 250x250 LFW original is used whole) | "
                                 "lfw | tight | none | T,L,B,R."),
    ) -> None:
        """Face quality: CSV path,face,score,ok,sharpness,contrast,brightness,size,recon_error,code_distance,reasons."""
        from facespace.people.quality import face_quality
        from facespace.people.quality_reference import quality_reference, save_quality_reference

        m = resolve_model(model)
        detect, detector = detection(detect, detector)
        crops = model_crops(m, expand_images(images), detect=detect, crop=crop, detector=detector)
        for p in crops.no_face:
            say(f"{p}: no face found")
        if save_reference:
            ref = quality_reference(crops.images, model=m, source=f"{len(crops)} reference faces")
            say(f"quality reference of {len(crops)} faces stored in {save_quality_reference(m, ref)}")
            return
        from facespace.data.crops import crop_side

        from facespace.data.crops import resolve_crop

        cut = resolve_crop(m, crop)
        sizes = [min(b[2], b[3]) if b is not None else crop_side(s, cut) for s, b in zip(crops.sources, crops.boxes)]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "face", "score", "ok", "sharpness", "contrast", "brightness", "size", "recon_error",
                    "code_distance", "reasons"])
        qs = face_quality(crops.images, model=m, sizes=sizes) if len(crops) else []
        for s, k, q in zip(crops.sources, crops.faces, qs):
            w.writerow([s, k, f"{q.score:.4f}", int(q.ok), f"{q.sharpness:.2f}", f"{q.contrast:.4f}",
                        f"{q.brightness:.4f}", "" if q.size is None else q.size,
                        "" if q.recon_error is None else f"{q.recon_error:.5f}",
                        "" if q.code_distance is None else f"{q.code_distance:.4f}", "; ".join(q.reasons)])
        out(buf.getvalue().rstrip("\n"))

    @people.command("list")
    def list_people(gallery: Path = typer.Option(..., help="Gallery file.")) -> None:
        """Enrolled people: CSV name,images."""
        from facespace.people.gallery.gallery import Gallery

        with Gallery(gallery) as g:
            rows = g.list()
            t = g.threshold
        out("name,images")
        for n, c in rows:
            out(f"{_csv_field(n)},{c}")
        say(f"{len(rows)} people; stranger threshold {t:.4f}" if t is not None else f"{len(rows)} people")

    @people.command("remove")
    def remove(
        name: str = typer.Argument(..., help="The person to forget."),
        gallery: Path = typer.Option(..., help="Gallery file."),
    ) -> None:
        """Forget a person."""
        from facespace.people.gallery.gallery import Gallery

        with Gallery(gallery) as g:
            n = g.remove(name)
        say(f"removed {name} ({n} image(s)) from {gallery}")


def _answer(r: Any) -> list[str]:
    """`name, distance, quality` CSV fields of an `Identification`."""
    q = getattr(r, "quality", None)
    return [r.name if r.name is not None else "unknown", f"{r.distance:.6f}", "" if q is None else f"{q.score:.4f}"]


def _say_quality(label: str, q: Any) -> None:
    if q is not None and not q.ok:
        say(f"{label}: low quality ({'; '.join(q.reasons)}); the answer is less reliable")


def _csv_field(text: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()
