"""Open-set identification with dlib's codes (benchmarks/identity_dlib.py --identify): how a gallery
scores a person, chosen on View 1's people before identification.py's split is scored.

Plan 1 (View 1 DevTrain's people, seed 1): flip averaging and nearest-face or centroid scoring.
Plan 2 (View 1's people, five seeds): centroid distances S-normalised against a cohort
(`facespace.people.cohort_norm`) at several top fractions. The test split is then scored with the
reference row and each plan's choice, every configuration counted.
"""

from __future__ import annotations

import datetime
import sys

import numpy as np

from dlib_codes import codes_for, load_codes
from verification import LFW

from facespace.data.pairs import read_pairs
from facespace.people.cohort_norm import CohortNorm


def _open_set(t: np.ndarray, names, gallery, known, strangers, far: float, scoring: str, cohort=None) -> dict:
    """The gallery's numbers on unit codes `t`: rank-1, DIR@FAR (oracle threshold at `far` of the
    strangers), and strangers accepted / known named at the gallery's own calibrated threshold.
    `cohort`: a fitted CohortNorm for scoring "snorm" (codes of people neither enrolled nor probes)."""
    from facespace.people.gallery.matching import calibrate_strangers, match_codes

    people = sorted(gallery)
    enrolled = np.concatenate([gallery[p] for p in people])
    person = np.concatenate([np.full(len(gallery[p]), i) for i, p in enumerate(people)])
    threshold, _, _ = calibrate_strangers(t[enrolled], person, metric="cosine", target_far=far, scoring=scoring, cohort=cohort)
    res_k = match_codes(t[known], t[enrolled], person, people, threshold=threshold, k=1, scoring=scoring, cohort=cohort)
    res_s = match_codes(t[strangers], t[enrolled], person, people, threshold=threshold, k=1, scoring=scoring, cohort=cohort)
    truth = names[known]
    rank1 = np.array([r.candidates[0][0] for r in res_k]) == truth
    d_known = np.array([r.distance for r in res_k])
    d_strange = np.sort([r.distance for r in res_s])
    oracle = np.nextafter(d_strange[int(np.floor(far * len(d_strange)))], -np.inf)
    return {"rank1": float(rank1.mean()), "dir_at_far": float((rank1 & (d_known <= oracle)).mean()),
            "calibrated_threshold": float(threshold), "strangers_accepted": int(sum(r.name is not None for r in res_s)),
            "strangers": len(strangers), "known_named_right": float(np.mean([r.name == n for r, n in zip(res_k, truth)]))}


def identification(results: dict, save, enrol: int = 3, far: float = 0.01, seed: int = 0) -> dict:
    """Open-set identification as benchmarks/identification.py (same split, same gallery math), on
    dlib's codes. How the gallery scores a person (nearest face or centroid) and flip averaging are
    chosen first on a dev split: View 1 DevTrain's people only, split the same way with seed 1."""
    from identification import split

    from facespace.data.faceset import FaceSet

    c, names, row = load_codes()
    unit = {f: codes_for(c, f) / np.linalg.norm(codes_for(c, f), axis=1, keepdims=True) for f in (False, True)}
    if "identification_plan" not in results:
        dev_people = set().union(*({p.name_a, p.name_b} for p in read_pairs(LFW / "pairsDevTrain.txt")))
        keep = np.flatnonzero(np.isin(names, sorted(dev_people)))
        sub = FaceSet(np.zeros((len(keep), 1, 1, 1), np.float32), names[keep], np.array(list(row))[keep])
        g, k, s, _ = split(sub, enrol, 1)
        dev = []
        for flip in (False, True):
            for scoring in ("nearest", "centroid"):
                r = _open_set(unit[flip][keep], names[keep], g, k, s, far, scoring)
                dev.append({"flip": flip, "scoring": scoring, **r})
                print("dev", dev[-1], file=sys.stderr)
        best = max(dev, key=lambda r: r["dir_at_far"])
        results["identification_plan"] = {
            "dev": dev, "dev_split": f"View 1 DevTrain's {len(dev_people)} people, identification.py's split with seed 1 "
                                    f"({len(g)} enrolled, {len(k)} known probes, {len(s)} stranger probes)",
            "chosen": {"flip": best["flip"], "scoring": best["scoring"]},
            "written": datetime.datetime.now().isoformat(timespec="seconds")}
        save(results)  # the plan is on file before the test split is scored
    if "identification_plan_2" not in results:
        results["identification_plan_2"] = cohort_plan(unit[True], names, row, enrol, far)
        save(results)  # the second plan is on file before the test split is scored again
    plan = results["identification_plan"]["chosen"]
    faces = FaceSet(np.zeros((len(names), 1, 1, 1), np.float32), names, np.array(list(row)))
    gallery, known, strangers, training = split(faces, enrol, seed)
    rows = [{"model": "stock dlib, nearest enrolled face (the reference)", **_open_set(unit[False], names, gallery, known, strangers, far, "nearest")},
            {"model": f"dlib{' +flip' if plan['flip'] else ''}, {plan['scoring']} scoring (chosen on the dev split)",
             **_open_set(unit[plan["flip"]], names, gallery, known, strangers, far, plan["scoring"])}]
    top = results["identification_plan_2"]["chosen"]["top_fraction"]
    if top is not None:
        cohort = CohortNorm(top_fraction=top).fit(unit[True][training])
        rows.append({"model": f"dlib +flip, centroid S-normalised against a cohort (top {top:.0%} of the split's "
                              f"{len(training)} training images; plan 2, chosen on View 1's people)",
                     **_open_set(unit[True], names, gallery, known, strangers, far, "snorm", cohort)})
    for r in rows:
        print(r, file=sys.stderr)
    results["identification"] = {
        "protocol": f"benchmarks/identification.py's split (seed {seed}): {len(gallery)} people with >= {enrol + 1} "
                    f"images enrolled with {enrol} each, {len(known)} known probes, {len(strangers)} stranger probes "
                    f"(half of the people with < {enrol + 1} images); stranger threshold calibrated by the gallery for "
                    f"FAR {far:.0%}; DIR@FAR with the oracle threshold at 1 % of the actual strangers; "
                    f"{len(rows)} configurations scored on this split",
        "rows": rows}
    return results


def cohort_plan(unit: np.ndarray, names, row, enrol: int, far: float, seeds=(1, 2, 3, 4, 5),
                fractions=(0.3, 0.5, 0.6, 0.7, 0.8)) -> dict:
    """Plan 2: S-norm against a cohort, chosen on View 1's people (DevTrain and DevTest), identification.py's
    split with five seeds; the cohort is each split's training images (people neither enrolled nor strangers)."""
    from identification import split

    from facespace.data.faceset import FaceSet

    dev_people = set()
    for f in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        dev_people |= set().union(*({p.name_a, p.name_b} for p in read_pairs(LFW / f)))
    keep = np.flatnonzero(np.isin(names, sorted(dev_people)))
    sub = FaceSet(np.zeros((len(keep), 1, 1, 1), np.float32), names[keep], np.array(list(row))[keep])
    t = unit[keep]
    found: dict = {}
    for seed in seeds:
        g, k, s, training = split(sub, enrol, seed)
        found.setdefault("centroid", []).append(_open_set(t, names[keep], g, k, s, far, "centroid")["dir_at_far"])
        for frac in fractions:
            cohort = CohortNorm(top_fraction=frac).fit(t[training])
            found.setdefault(frac, []).append(_open_set(t, names[keep], g, k, s, far, "snorm", cohort)["dir_at_far"])
        print("plan 2, seed", seed, {str(k_): v[-1] for k_, v in found.items()}, file=sys.stderr)
    dev = [{"top_fraction": None if key == "centroid" else key, "dir_at_far_mean": float(np.mean(v)),
            "dir_at_far_se": float(np.std(v, ddof=1) / np.sqrt(len(v))), "per_seed": [float(x) for x in v]}
           for key, v in found.items()]
    best = max(dev, key=lambda r: r["dir_at_far_mean"])
    return {"dev": dev, "written": datetime.datetime.now().isoformat(timespec="seconds"),
            "dev_split": f"View 1's {len(dev_people)} people (DevTrain and DevTest), identification.py's split with seeds "
                         f"{', '.join(map(str, seeds))}; dlib +flip codes; cohort: each split's training images",
            "chosen": {"top_fraction": best["top_fraction"]}}


def identification_lines(results: dict) -> list[str]:
    """The markdown of the identification plans and the test split's rows."""
    lines: list[str] = []
    if "identification_plan" in results:
        plan = results["identification_plan"]
        lines += ["## Open-set identification: the plan, chosen on a dev split", "", plan["dev_split"] + ".", "",
                  "| flip | scoring | rank-1 | DIR@FAR=1% |", "|---|---|---|---|"]
        lines += [f"| {r['flip']} | {r['scoring']} | {r['rank1']:.4f} | {r['dir_at_far']:.4f} |" for r in plan["dev"]]
        lines += ["", f"Chosen: flip {plan['chosen']['flip']}, {plan['chosen']['scoring']} scoring.", ""]
    if "identification_plan_2" in results:
        plan = results["identification_plan_2"]
        lines += ["## Open-set identification: plan 2, cohort normalisation, chosen on View 1's people", "",
                  plan["dev_split"] + f" (written {plan['written']}, before the test split was scored again).", "",
                  "| scoring | DIR@FAR=1% (mean of 5 splits) | SE | per split |", "|---|---|---|---|"]
        for r in plan["dev"]:
            what = "centroid" if r["top_fraction"] is None else f"S-norm, top {r['top_fraction']:.0%} of the cohort"
            lines.append(f"| {what} | {r['dir_at_far_mean']:.4f} | {r['dir_at_far_se']:.4f} | "
                         f"{', '.join(f'{x:.3f}' for x in r['per_seed'])} |")
        lines += ["", f"Chosen: top fraction {plan['chosen']['top_fraction']}.", ""]
    if "identification" in results:
        lines += ["## Open-set identification", "", results["identification"]["protocol"] + ".", "",
                  "| model | rank-1 | DIR@FAR=1% | gallery threshold | strangers accepted at it | known named right at it |",
                  "|---|---|---|---|---|---|"]
        for r in results["identification"]["rows"]:
            lines.append(f"| {r['model']} | {r['rank1']:.4f} | {r['dir_at_far']:.4f} | {r['calibrated_threshold']:.4f} | "
                         f"{r['strangers_accepted']} / {r['strangers']} | {r['known_named_right']:.4f} |")
        lines.append("")
    return lines
