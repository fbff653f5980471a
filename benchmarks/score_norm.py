"""How much can scoring alone, with the networks fixed, move an ensemble's LFW View 2 accuracy?

Takes the per-fold kept models of `--fold-models` folders as one ensemble per fold, exactly as
`verification.py --fold-models` does (their codes come from the cache `fold_models.CachedEnsemble`
keeps, so a scored ensemble costs no encoding), and scores the same pairs several ways, each under
the View 2 protocol (fold k: fold k's models; its threshold from the other nine folds' pairs):
- mean cosine of the members: the ensemble's own score (the baseline; equals verification.py's row);
- cohort score normalisation (S-norm): the cosine of a pair, standardised by each face's cosines to a
  cohort of training images (mean and std over all of them, or over the top K), then averaged. The
  cohort of a pair in fold j under fold k's models is the images of the folds other than j and k,
  so no face meets its own people in it and fold k stays unseen;
- thresholds from impostors only: the nine folds' pairs show people fold k's model trained on, whose
  same-person cosines run higher than a stranger's, while different-person cosines barely move; a
  threshold set at a false-accept rate on the nine folds' different-person pairs alone ignores the
  biased side.
It also reports that bias: the mean cosine of same- and different-person pairs of the tested fold
(unseen people) and of the other folds (seen), averaged over the folds.

    .venv/bin/python benchmarks/score_norm.py --fold-models runs/folds-e24d5 runs/folds-64w12 runs/folds-wide

A rule can be checked on View 1 before it is used on View 2: `--pairs pairsDevTrain.txt pairsDevTest.txt
--folds 2` scores DevTest with thresholds from DevTrain (per-fold models kept for DevTest's training
people, which are DevTrain's; S-norm needs a third fold for its cohort and is left out).

Writes benchmarks/results/score_norm.{json,md} (`--name` for another name).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from verification import LFW, RESULTS, write_results

from facespace.people.score_norm import score, snorm

FARS = (0.05, 0.075, 0.10)
TOPS = (0, 200)


def fold_codes(folders: list[Path], shift_test: int, size: int, pairs: list[Path], lfw: Path, threads: int,
               folds: str | None = None, train_people: str = "other-folds"):
    """Each tested fold's ensemble codes of all pair images, as `evaluate_lfw` encodes them.

    Args:
        pairs: pairs.txt, or several files read as one (`facespace.data.read_pair_files`).
        folds: test only these folds (numbers from 1, e.g. "2"); None: all.
        train_people: as the kept models were trained (`evaluate_lfw`'s option; it picks them by their people).

    Returns:
        (codes, ia, ib, same, fold, report): `codes[k]` `(n_used, d)` float32 under tested fold k's
        models (rows of `ia`/`ib`: the images of the pairs, in file order), `same` `(n_pairs,)` bool,
        `fold` `(n_pairs,)` 0-based, and evaluate_lfw's report on the mean cosine (the baseline).
    """
    import torch

    from facespace.people import fold_models
    from facespace.data import load_faces, read_pair_files
    from facespace.people.lfw import evaluate_lfw, find_lfw_root, pair_rows

    torch.set_num_threads(threads)
    replay = fold_models.replay_ensemble(folders, shift_test=shift_test, size=size)
    codes: list[np.ndarray] = []

    class Captured:  # the fold's ensemble, keeping what it encoded
        def __init__(self, model):
            self.model, self.code_size = model, model.code_size

        def encode(self, images):
            codes.append(self.model.encode(images))
            return codes[-1]

    kw = fold_models.ensemble_settings(folders, size)
    kw.pop("input")
    report = evaluate_lfw(None, pairs, lfw, train_fn=lambda faces: Captured(replay(faces)), progress=True,
                          folds=folds, train_people=train_people, **kw)
    plist = read_pair_files(pairs)
    root = find_lfw_root(pairs[0], lfw)
    # the faces evaluate_lfw encoded, in its file order: its own load again, now a memory-mapped cache read
    faces = load_faces(str(root), progress=False, **kw)
    ia, ib = pair_rows(plist, root, faces)
    used = np.union1d(ia, ib)
    row = np.full(len(faces), -1)
    row[used] = np.arange(len(used))
    same = np.array([bool(p.same) for p in plist])
    fold = np.array([int(p.fold) for p in plist])
    # one encode per tested fold, in fold order (evaluate_lfw trains and encodes them in turn)
    tested = [k - 1 for k in report.folds]
    assert len(codes) == len(tested) and all(len(c) == len(used) for c in codes)
    # evaluate_lfw encoded the images `used` in order, once per fold, with that fold's ensemble,
    # whose codes are the members' unit codes over sqrt(M): their dot product is the members' mean cosine
    return dict(zip(tested, codes)), row[ia], row[ib], same, fold, report


def main() -> None:
    from facespace.people.lfw import TRAIN_PEOPLE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fold-models", type=Path, nargs="+", required=True)
    ap.add_argument("--shift-test", type=int, default=2)
    ap.add_argument("--ensemble-size", type=int, default=160)
    ap.add_argument("--pairs", type=Path, nargs="+", default=[LFW / "pairs.txt"],
                    help="pairs.txt, or View 1's pairsDevTrain.txt pairsDevTest.txt (two folds; with --folds 2)")
    ap.add_argument("--folds", default=None, help="test only these folds, e.g. 2 (View 1's DevTest)")
    ap.add_argument("--train-people", choices=TRAIN_PEOPLE, default=TRAIN_PEOPLE[0],
                    help="as verification.py --train-people trained the models (kept models are found by their people)")
    ap.add_argument("--lfw", type=Path, default=LFW / "lfw-deepfunneled")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--name", default="score_norm", help="results file name (<name>.json and .md)")
    args = ap.parse_args()
    t0 = time.time()
    codes, ia, ib, same, fold, report = fold_codes(args.fold_models, args.shift_test, args.ensemble_size,
                                                      args.pairs, args.lfw, args.threads, args.folds,
                                                      args.train_people)
    cos = {k: np.sum(c[ia] * c[ib], 1) for k, c in codes.items()}
    rows = [{"scoring": "mean cosine of the members (the ensemble's own score)", **score(cos, same, fold)}]
    for top in TOPS if len(np.unique(fold)) > 2 else ():  # a cohort needs a fold that is neither tested nor the pair's
        norm = {k: snorm(codes[k], ia, ib, fold, k, top) for k in cos}
        rows.append({"scoring": f"S-norm, cohort statistics over {'the top ' + str(top) if top else 'all'} "
                                f"cohort images", **score(norm, same, fold)})
    for far in FARS:
        rows.append({"scoring": f"mean cosine, threshold at FAR {far:.1%} of the other folds' different-person pairs",
                     **score(cos, same, fold, far=far)})
    gap = {f"{kind} pairs, {who}": float(np.mean([cos[k][(fold == k if who == 'unseen' else fold != k) & want].mean()
                                                  for k in cos]))
           for kind, want in (("same-person", same), ("different-person", ~same)) for who in ("seen", "unseen")}
    base = rows[0]["mean_accuracy"]
    lines = ["| scoring | accuracy ± SE | change | AUC | at each fold's own best threshold |", "|---|---|---|---|---|"]
    lines += [f"| {r['scoring']} | {r['mean_accuracy']:.4f} ± {r['standard_error']:.4f} | "
              f"{(r['mean_accuracy'] - base) * 100:+.2f} pts | {r['auc']:.4f} | {r['own_best']:.4f} |" for r in rows]
    lines += ["", "| mean cosine under each fold's models | seen (other folds' people) | unseen (the tested fold) |",
              "|---|---|---|"]
    lines += [f"| {kind} pairs | {gap[kind + ' pairs, seen']:.3f} | {gap[kind + ' pairs, unseen']:.3f} |"
              for kind in ("same-person", "different-person")]
    view = ("LFW View 2, the full 10-fold protocol" if report.full_protocol and len(args.pairs) == 1 else
            f"pairs {' + '.join(map(str, args.pairs))} (each file's folds after the previous file's), tested fold(s) "
            f"{', '.join(map(str, report.folds))}, thresholds from the others")
    notes = (f"{view}, ensemble of the kept per-fold models of "
             f"{' + '.join(map(str, args.fold_models))} (test-time shifts {args.shift_test} px, input "
             f"{args.ensemble_size} px), each scoring rule applied to the same codes. Baseline check: "
             f"verification.py's protocol on these codes gives {report.mean_accuracy:.4f}.")
    write_results(args.name, rows, "\n".join(lines), notes, extra={"seen_unseen_mean_cosine": gap,
                  "seconds": round(time.time() - t0, 1)}, results_dir=args.results_dir)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
