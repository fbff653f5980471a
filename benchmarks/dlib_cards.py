"""Write the dlib model cards (facespace/models/extras/dlib*.json) from benchmarks/results/identity_dlib.json.

`dlib` is the configuration chosen on View 1 (flip averaging), `dlib-fast` the stock one. Each card
keeps its honest View 2 number, the verification threshold (dlib's 0.6 for the stock one; the median
of the ten per-fold View 2 thresholds for the chosen one), the gallery scoring chosen on the dev split,
and the impostor distances of 1M random LFW pairs of different people, from which a gallery too small
to calibrate itself takes its stranger threshold, and the quality gate's image reference (400 LFW
photos as dlib's chips). Where View 1 had chosen an adaptation, it also
ships `dlib-adapted` (the map fitted on all LFW people; impostors measured on people it never saw).

    .venv/bin/python benchmarks/dlib_cards.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dlib_codes import codes_for, load_codes  # noqa: E402
from identity_dlib import NAME, label  # noqa: E402
from verification import RESULTS  # noqa: E402

from facespace.people.adaptation import CodeAdapter  # noqa: E402


def impostor_distances(t: np.ndarray, names: np.ndarray, metric: str, n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    """Distances of `n` random pairs of images of different people."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(t), n), rng.integers(0, len(t), n)
    keep = names[a] != names[b]
    a, b = a[keep], b[keep]
    if metric == "l2":
        return np.linalg.norm(t[a] - t[b], axis=1)
    u = t / np.linalg.norm(t, axis=1, keepdims=True)
    return 1.0 - np.sum(u[a] * u[b], 1)


def quality_of_chips(n: int = 400, seed: int = 7) -> dict:
    """An image-only quality reference: `n` LFW photos (seed 7) as dlib's 150x150 chips."""
    from dlib_codes import LFW as IMAGES

    from facespace.data.inputs import as_images
    from facespace.models.dlib_face import DlibEncoder
    from facespace.people.quality_reference import quality_reference

    files = sorted(IMAGES.glob("*/*.jpg"))
    pick = [str(files[i]) for i in np.random.default_rng(seed).permutation(len(files))[:n]]
    chips = as_images(DlibEncoder(), pick)
    return quality_reference(chips, source=f"{n} LFW photos as dlib's chips (image checks)").to_dict()


def cohort_gallery(z: np.ndarray, names: np.ndarray, top_fraction: float, size: int = 3000, seed: int = 0) -> dict:
    """S-norm scoring for galleries of this model: a cohort of `size` LFW people with one image each
    (written beside the card as fp16), and the impostor distances S-normalised against it of 1M
    random pairs of different people among those with two or more images (never in the cohort)."""
    from facespace.models.registry import EXTRAS_DIR
    from facespace.people.cohort_norm import CohortNorm
    from facespace.people.thresholds import impostor_record

    counts = {n: c for n, c in zip(*np.unique(names, return_counts=True))}
    single = np.flatnonzero([counts[n] == 1 for n in names])
    rng = np.random.default_rng(seed)
    cohort_rows = np.sort(rng.choice(single, size, replace=False))
    cohort = z[cohort_rows].astype(np.float16)
    np.save(EXTRAS_DIR / "dlib-cohort.npy", cohort)
    norm = CohortNorm(top_fraction=top_fraction).fit(cohort.astype(np.float32))
    others = np.flatnonzero([counts[n] >= 2 for n in names])
    stats = norm.stats(z[others].astype(np.float32))
    a, b = rng.integers(0, len(others), 1_000_000), rng.integers(0, len(others), 1_000_000)
    keep = names[others][a] != names[others][b]
    a, b = a[keep], b[keep]
    u = z[others] / np.linalg.norm(z[others], axis=1, keepdims=True)
    d = norm.normalise_pairs(1.0 - np.sum(u[a] * u[b], 1), (stats[0][a], stats[1][a]), (stats[0][b], stats[1][b]))
    source = (f"LFW deep-funneled, {len(d)} random pairs of different people with 2+ images (flip-averaged codes), "
              f"S-normalised against the cohort")
    return {"scoring": "snorm", "source": "chosen on View 1's people (identity_dlib.md, plan 2)",
            "cohort": {"file": "dlib-cohort.npy", "top_fraction": float(top_fraction),
                       "source": f"{size} LFW people with one image each (seed {seed}), flip-averaged dlib codes, fp16"},
            "impostors": impostor_record(d, source=source)}


def cards(results: dict) -> dict:
    """Write what the shipped dlib models keep: their verification thresholds and impostor distances
    (measured on people the adaptation never saw), and the adaptation fitted on all of LFW."""
    from facespace.models.adapted import AdaptedConfig, AdaptedEncoder
    from facespace.models.registry import EXTRAS_DIR, save_model
    from facespace.people.thresholds import impostor_record

    c, names, _ = load_codes()
    stock = codes_for(c, False)
    dlib_card = json.loads((EXTRAS_DIR / "dlib.json").read_text())
    source = "LFW deep-funneled, 1M random pairs of different people (dlib's stock codes)"
    scoring = results.get("identification_plan", {}).get("chosen", {}).get("scoring", "nearest")
    dlib_card["extra"] = {
        "gallery": {"scoring": scoring, "source": "chosen on a dev split of LFW View 1 (identity_dlib.md)"},
        "verify": {"threshold": 0.6, "metric": "l2", "source": "dlib's own threshold (LFW View 2: see identity_dlib.md)"},
        "impostors": {m: impostor_record(impostor_distances(stock, names, m), source=source) for m in ("l2", "cosine")}}
    chosen = results["view1"]["chosen"]["config"]
    v2 = results.get("view2", {}).get("rows", {})
    stock_row = next((r for k, r in v2.items() if k.startswith("stock dlib (")), None)
    chosen_row = next((r for k, r in v2.items() if "chosen on View 1" in k), None)

    def honest(row, what):
        return (f"LFW View 2 (unrestricted, labelled outside data), {what}: "
                + (f"{100 * row['accuracy']:.2f} % +- {100 * row['standard_error']:.2f}" if row else "see")
                + " (benchmarks/results/identity_dlib.md)")

    # "dlib": the configuration chosen on View 1 (flip averaging); "dlib-fast": the stock one, half the work
    fast = dict(dlib_card, name="dlib-fast", options={}, honest_numbers=honest(stock_row, "stock, no flip"),
                what="dlib's encoder as it ships (no flip averaging): half the encoding work")
    dlib_card["what"] = ("dlib's encoder with flip averaging (the chip and its mirror, codes averaged): the strongest "
                         "identity model measured here")
    fast["extra"] = dict(dlib_card["extra"])
    dlib_card.update(options={"flip": bool(chosen["flip"])},
                     honest_numbers=honest(chosen_row, "flip averaging" if chosen["flip"] else "stock"))
    thresholds = results.get("view2_thresholds", {}).get("chosen")
    if chosen["flip"]:
        zf = codes_for(c, True)
        dlib_card["extra"] = dict(dlib_card["extra"], impostors={
            m: impostor_record(impostor_distances(zf, names, m), source=source.replace("stock", "flip-averaged"))
            for m in ("l2", "cosine")})
        if thresholds:
            dlib_card["extra"]["verify"] = {"threshold": float(np.median(thresholds)), "metric": "l2",
                                            "source": "median of the ten View 2 per-fold thresholds (each chosen on the "
                                                      "other nine folds)"}
    if chosen["flip"]:
        cohort_plan = results.get("identification_plan_2", {}).get("chosen", {})
        if cohort_plan.get("top_fraction"):
            dlib_card["extra"]["gallery"] = cohort_gallery(codes_for(c, True), names, cohort_plan["top_fraction"])
            dlib_card["extra"]["impostors"]["cosine+snorm"] = dlib_card["extra"]["gallery"].pop("impostors")
    # the quality gate's image checks (sharpness, contrast, brightness) against real photos as dlib cuts
    # them; without it they fell back to the embedded 25-px faces enlarged to 150 px and let blur pass
    quality = quality_of_chips()
    for card in (dlib_card, fast):
        card["extra"] = dict(card["extra"], quality=quality)
    (EXTRAS_DIR / "dlib.json").write_text(json.dumps(dlib_card, indent=2))
    (EXTRAS_DIR / "dlib-fast.json").write_text(json.dumps(fast, indent=2))
    if chosen["method"] == "none":
        return results
    z = codes_for(c, chosen["flip"])
    options = {k: chosen[k] for k in ("n_components", "shrinkage") if k in chosen}
    # impostor distances of people the adaptation never saw: fitted on one half of the people, measured on the other
    people = np.unique(names)
    half = set(np.random.default_rng(0).permutation(people)[: len(people) // 2].tolist())
    in_half = np.array([n in half for n in names])
    a = CodeAdapter(method=chosen["method"], **options).fit(z[in_half], names[in_half])
    unseen = a.transform(z[~in_half])
    rec = impostor_record(impostor_distances(unseen, names[~in_half], "cosine"),
                          source="LFW: adaptation fitted on half of the people, impostors among the other half")
    adapter = CodeAdapter(method=chosen["method"], **options).fit(z, names)
    config = AdaptedConfig(base="dlib", base_options=json.dumps({"flip": bool(chosen["flip"])}),
                           code_size=int(adapter.components_.shape[1]), method=chosen["method"])
    model = AdaptedEncoder(config, adapter.mean_, adapter.components_)
    target = EXTRAS_DIR / "dlib-adapted.safetensors"
    save_model(model, target)
    adapted_row = next((r for k, r in v2.items() if k.startswith("adapted")), None)
    card = {"name": "dlib-adapted", "kind": "adapted", "loader": "facespace.models.adapted:load_adapted",
            "options": {"file": target.name}, "check": "facespace.models.dlib_face:dlib_available",
            "requires": dlib_card["requires"], "image_shape": [150, 150, 3], "code_size": config.code_size,
            "weights": f"a {config.code_size}x128 map and a mean, float64 ({target.stat().st_size:,} bytes), on dlib's encoder",
            "file_bytes": target.stat().st_size,
            "training_data": f"the map: {label(chosen)}, fitted on all {len(people)} LFW people (13,233 images) "
                             "with their identity labels; the encoder: dlib's (outside data)",
            "recipe": "python benchmarks/dlib_codes.py && python benchmarks/identity_dlib.py --select --score && python benchmarks/dlib_cards.py",
            "honest_numbers": "LFW View 2 (unrestricted, labelled outside data), the map fitted per fold on the "
                              "other nine folds' people: " + (f"{100 * adapted_row['accuracy']:.2f} % +- "
                                                              f"{100 * adapted_row['standard_error']:.2f}" if adapted_row else "see")
                              + " (benchmarks/results/identity_dlib.md)",
            "caveat": "the shipped map saw every LFW person: its own LFW numbers are not test numbers; the per-fold "
                      "recipe's are",
            "metric": "cosine",
            "extra": {"verify": {"threshold": float(np.median(thresholds)) if thresholds else None, "metric": "cosine",
                                 "source": "median of the ten View 2 per-fold thresholds"},
                      "impostors": {"cosine": rec}}}
    (EXTRAS_DIR / "dlib-adapted.json").write_text(json.dumps(card, indent=2))
    return results


if __name__ == "__main__":
    cards(json.loads((RESULTS / f"{NAME}.json").read_text()))
