"""View 1 test-time augmentation check for dlib (DevTest images only): flip, dlib jitter x10, chips at padding 0.15 / 0.35.

Part 1 encodes the 1,549 DevTest images in the variants (runs/dlib_lfw/tta_devtest.npz, ~35 min on one core);
part 2 scores each variant on the DevTest pairs by 10-fold cross-validation inside DevTest (threshold on nine
tenths, accuracy on the tenth), AUC and EER. Nothing here touches View 2.

    .venv/bin/python benchmarks/dlib_tta_view1.py encode
    .venv/bin/python benchmarks/dlib_tta_view1.py score
"""
import sys
if sys.argv[1:] == ["encode"]:
    import time, numpy as np
    sys.path.insert(0, "benchmarks")
    from dlib_codes import load_codes
    from identity_dlib import pair_index
    from dlib_codes import LFW as IM
    from verification import LFW
    from facespace.data.pairs import read_pairs
    from facespace.models.dlib_face import dlib_models
    from PIL import Image
    c, names, row = load_codes()
    test = read_pairs(LFW / "pairsDevTest.txt")
    te_a, te_b, te_same, _ = pair_index(test, row)
    imgs = np.union1d(te_a, te_b)
    print(len(imgs), "images", file=sys.stderr)
    m = dlib_models()
    paths = list(row)
    out = {k: np.zeros((len(c["codes"]), 128), np.float32) for k in ("pad15", "pad35", "pad15f", "pad35f", "jit10")}
    t0 = time.time()
    for n, i in enumerate(imgs):
        img = np.asarray(Image.open(IM / paths[i]).convert("RGB"))
        x, y, w, h = (int(v) for v in c["boxes"][i])
        shape = m.landmarks(img, m.dlib.rectangle(x, y, x + w, y + h))
        for pad in (0.15, 0.35):
            chip = m.dlib.get_face_chip(img, shape, size=150, padding=pad)
            # crop/resize so the network sees a 150 chip at padding 0.25 scale? no: use as is (a scale jitter)
            out[f"pad{int(pad*100)}"][i] = np.asarray(m.encoder.compute_face_descriptor(chip))
            out[f"pad{int(pad*100)}f"][i] = np.asarray(m.encoder.compute_face_descriptor(np.ascontiguousarray(chip[:, ::-1])))
        chip = m.dlib.get_face_chip(img, shape, size=150, padding=0.25)
        out["jit10"][i] = np.asarray(m.encoder.compute_face_descriptor(chip, 10))
        if n % 200 == 0: print(n, time.time()-t0, file=sys.stderr, flush=True)
    np.savez("/work/main/runs/dlib_lfw/tta_devtest.npz", imgs=imgs, **out)
else:
    import numpy as np
    sys.path.insert(0, "benchmarks")
    from dlib_codes import load_codes
    from identity_dlib import pair_index
    from verification import LFW
    from facespace.data.pairs import read_pairs
    from facespace.people.thresholds import calibrate_threshold, pair_accuracy, roc_metrics
    c, names, row = load_codes()
    t = np.load("runs/dlib_lfw/tta_devtest.npz")
    test = read_pairs(LFW / "pairsDevTest.txt")
    a, b, same, _ = pair_index(test, row)
    base, flip = c["codes"].astype(np.float64), c["codes_flip"].astype(np.float64)
    V = {"base": base, "flip": 0.5*(base+flip), "jit10": t["jit10"], "pad15+35": 0.5*(t["pad15"]+t["pad35"]),
         "base+flip+pad15/35 (x2)": (base+flip+t["pad15"]+t["pad15f"]+t["pad35"]+t["pad35f"])/6,
         "flip+pad35": (base+flip+t["pad35"]+t["pad35f"])/4, "flip+pad15": (base+flip+t["pad15"]+t["pad15f"])/4,
         "jit10+flip": 0.5*(t["jit10"]+flip)}
    rng = np.random.default_rng(0); folds = rng.permutation(np.arange(len(a)) % 10)
    for k, z in V.items():
        for metric in ("l2",):
            d = np.linalg.norm(z[a]-z[b], axis=1)
            accs = []
            for f in range(10):
                th = calibrate_threshold(d[folds != f], same[folds != f]); accs.append(pair_accuracy(d[folds == f], same[folds == f], th))
            _,_,auc,eer,_ = roc_metrics(d, same)
            print(f"{k:<26} {metric} 10-fold-CV acc {np.mean(accs):.4f}  AUC {auc:.5f}  EER {eer:.4f}")
