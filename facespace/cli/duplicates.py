"""`facespace index duplicates`: near-copies within one index, or of a new set against a reference set
(folders, index files or exported codes), with an HTML report. The threshold is learned from the
set itself by default (`--max-distance auto`, `facespace.pipelines.duplicate_threshold`), and the
pairs it finds in the codes are confirmed in pixel space when the images can be read
(`--confirm`, `facespace.pipelines.duplicate_confirm`)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from facespace.cli._util import encode_progress, say

Opt = typer.Option
Arg = typer.Argument


def _code_set(arg: str, net_of: Any, metric: str, batch_size: int, crop: str | None):
    """An index of NEW or REF: an index file, an export (.npy/.csv/.parquet), or a folder encoded with the model."""
    from facespace.pipelines.export.formats import is_codes_file
    from facespace.index import Index
    from facespace.pipelines.retrieval import as_index

    path = Path(arg)
    if path.is_file():
        return as_index(path, metric=metric) if is_codes_file(path) else Index.load(path)
    from facespace.pipelines.encoding import encode_sources

    net = net_of()
    bar, update = encode_progress(f"encoding {path.name or arg}")
    with bar:
        exported, _, _ = encode_sources(net, [arg], batch_size=batch_size, crop=crop, progress=update)
    return as_index(exported, metric=metric)


def _level_help() -> str:
    from facespace.pipelines.duplicate_levels import LEVEL_MEANINGS

    return "what counts as a duplicate with --max-distance auto: " + "; ".join(
        f"{level}: {meaning}" for level, meaning in LEVEL_MEANINGS.items())


def _parse_max_distance(text: str) -> float | None:
    """None for "auto", else the number (refused by `find_duplicates` when negative or not finite)."""
    from facespace.errors import FacespaceError

    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise FacespaceError(f"--max-distance {text!r}: expected a number or auto (learned from the set)") from None


def duplicates_cmd(
    new: Annotated[str, Arg(help="an index file, exported codes, or (with --against) an image folder")],
    max_distance: Annotated[str, Opt("--max-distance", help="largest distance counted as a duplicate: a number, or "
                                     "auto: learned from the set itself (altered copies of a sample of its own images "
                                     "against its distinct images; printed to stderr and drawn in --report)")] = "auto",
    level: Annotated[Optional[str], Opt("--level", help=_level_help())] = None,
    against: Annotated[Optional[str], Opt("--against", help="reference set: a folder, an index file or exported codes")] = None,
    model: Annotated[Optional[str], Opt("--model", "-m", help="model for folders and for the copies auto encodes (default: the one an index records)")] = None,
    metric: Annotated[str, Opt(help="metric when neither set is an index file: cosine | l2 | ip")] = "cosine",
    report: Annotated[Optional[Path], Opt("--report", help="also write an HTML page with thumbnails and distances")] = None,
    thumb_size: Annotated[int, Opt("--thumb-size", help="thumbnail side in the --report page, pixels")] = 96,
    batch_size: Annotated[int, Opt("--batch-size", help="images encoded at a time")] = 256,
    crop: Annotated[str, Opt(help="crop of folder images: recorded (the model's own, as index build) | none (whole image: finds resized copies); auto reads the set's files the same way (an index built with another crop is recognised)")] = "recorded",
    confirm: Annotated[Optional[bool], Opt("--confirm/--no-confirm", help="with --max-distance auto (default: on): take "
                                          "the pairs of the next looser level in the codes and keep those whose two "
                                          "image files, as 32x32 pixels, lie within a pixel threshold learned the same "
                                          "way; off where the images are gone", show_default=False)] = None,
) -> None:
    """Near-duplicates within one index (CSV group,id,path,name), or of NEW against a reference
    set (CSV new_path,ref_path,distance, nearest first). The threshold is learned from the set
    (--max-distance auto, --level near) unless a number is given, and the pairs found are
    confirmed by their pixels when the images can be read (--confirm)."""
    from facespace.errors import FacespaceError
    from facespace.index import Index
    from facespace.index.binding import check_model, index_model
    from facespace.models.registry import resolve_model
    from facespace.pipelines.duplicate_confirm import find_confirmed_duplicates
    from facespace.pipelines.duplicate_levels import LEVELS
    from facespace.pipelines.duplicate_threshold import learn_max_distance
    from facespace.pipelines.retrieval import find_duplicates

    if thumb_size < 8:
        raise FacespaceError(f"--thumb-size {thumb_size} is too small to see a face; give 8 pixels or more")
    fixed = _parse_max_distance(max_distance)
    if level is not None and level not in LEVELS:
        raise FacespaceError(f"unknown --level {level!r}; expected one of: {', '.join(LEVELS)}")
    if level is not None and fixed is not None:
        raise FacespaceError("--level chooses a learned threshold; give it with --max-distance auto, or drop it")
    if confirm and fixed is not None:
        raise FacespaceError("--confirm checks pairs against a pixel threshold learned with --max-distance auto; "
                             "give --max-distance auto, or drop --confirm")
    learned = None

    def learn(index: Any, **options: Any) -> float:  # the threshold, learned from the set(s) and told on stderr
        nonlocal learned
        if fixed is not None:
            say(f"max distance {fixed:g} as given; pairs are not confirmed in pixel space (--max-distance auto "
                f"learns a pixel threshold too)")
            return fixed
        learned = learn_max_distance(index, level=level or "near", crop=crop, batch_size=batch_size,
                                     confirm=confirm is not False, progress=say, **options)
        say(learned.describe())
        return learned.max_distance

    def find(index: Any, threshold: float, **options: Any) -> Any:  # confirmed in pixel space where learned so
        if learned is None:
            return find_duplicates(index, threshold, **options)
        found, check = find_confirmed_duplicates(index, learned, **options)
        if check is not None:
            say(check.summary())
        return found

    def within() -> str:  # the threshold(s) the pairs met, for the summary line
        if learned is not None and learned.confirmed:
            return (f"within {learned.candidate_distance:.4g} ({learned.metric}) in the codes and "
                    f"{learned.pixel_max_distance:.4g} in pixels")
        return f"within {threshold:.4g} ({learned.metric if learned else metric})"

    writer = csv.writer(sys.stdout, lineterminator="\n")
    if against is None:
        if not Path(new).is_file():
            raise FacespaceError(f"{new}: not an index file; give an index, or a folder with --against REF")
        from facespace.pipelines.retrieval import as_index

        index = as_index(new, metric=metric)  # an index file, or exported codes
        metric = index.metric
        threshold = learn(index, model=model)
        groups = find(index, threshold)
        writer.writerow(["group", "id", "path", "name"])
        for g, members in enumerate(groups):
            for i, meta in zip(members, index.get_metadata(members)):
                writer.writerow([g, i, meta.get("path", ""), meta.get("name") or ""])
        say(f"{len(groups)} groups of near-duplicates ({sum(map(len, groups))} images) {within()}")
        if report is not None:
            from facespace.reports.duplicates import write_groups_report

            write_groups_report(report, [index.get_metadata(m) for m in groups], max_distance=threshold, size=thumb_size,
                                learned=learned)
            say(f"report written to {report}")
        return
    from facespace.pipelines.export.formats import is_codes_file

    given = [Index.load(a) if Path(a).is_file() and not is_codes_file(a) else None for a in (new, against)]
    metric = next((g.metric for g in given if g is not None), metric)
    cache: list[Any] = []

    def net_of() -> Any:  # the model, loaded once, only when a folder must be encoded
        if not cache:
            recorded = next((g for g in given if g is not None and g.model and g.model.get("path")), None)
            if model is None and recorded is None:
                raise FacespaceError("folders are encoded with a model: give --model PATH")
            net = resolve_model(str(model)) if model is not None else index_model(recorded)
            for g in given:
                if g is not None and g.model is not None:
                    check_model(g, net)
            cache.append(net)
        return cache[0]

    new_set = given[0] or _code_set(new, net_of, metric, batch_size, crop)
    ref_set = given[1] or _code_set(against, net_of, metric, batch_size, crop)
    metric = new_set.metric
    threshold = learn(new_set, against=ref_set, model=cache[0] if cache else model)
    pairs = find(new_set, threshold, against=ref_set)
    new_meta = new_set.get_metadata([p.new for p in pairs])
    ref_meta = ref_set.get_metadata([p.ref for p in pairs])
    writer.writerow(["new_path", "ref_path", "distance"])
    for p, a, b in zip(pairs, new_meta, ref_meta):
        writer.writerow([a.get("path", p.new), b.get("path", p.ref), f"{p.distance:.6g}"])
    say(f"{len(pairs)} near-duplicate pair(s) of {len({p.new for p in pairs})} of {len(new_set)} new item(s) "
        f"{within()} of {len(ref_set)} reference item(s)")
    if report is not None:
        from facespace.reports.duplicates import write_pairs_report

        write_pairs_report(report, [(a, b, p.distance) for p, a, b in zip(pairs, new_meta, ref_meta)],
                           max_distance=threshold, metric=new_set.metric, new_label=str(new), ref_label=str(against),
                           size=thumb_size, learned=learned)
        say(f"report written to {report}")
