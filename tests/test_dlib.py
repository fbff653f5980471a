"""dlib's face encoder behind the Encoder contract (the optional extra facespace[dlib])."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from facespace.errors import FacespaceError
from facespace.models import dlib_face
from facespace.models.registry import load_model
from facespace.people.gallery.gallery import Gallery


@pytest.fixture()
def no_dlib(monkeypatch):
    """An installation without the extra: `import dlib` fails."""
    dlib_face.dlib_models.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)
    yield
    dlib_face.dlib_models.cache_clear()


def test_without_the_extra_the_model_names_the_pip_command(no_dlib):
    with pytest.raises(FacespaceError, match=r"pip install 'facespace\[dlib\]'"):
        load_model("dlib")


def test_without_the_extra_the_cli_exits_2_and_writes_nothing(no_dlib, tmp_path, run_cli):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(img)
    code, _, err = run_cli("people", "enroll", "x", str(img), "--model", "dlib", "--gallery", str(tmp_path / "g.db"))
    assert code == 2
    assert "facespace[dlib]" in err
    assert not (tmp_path / "g.db").exists()


dlib = pytest.importorskip("dlib", reason="the optional extra facespace[dlib] is not installed")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The astronaut photo (one real face), its grey and 16-bit copies, a mirrored one, a tiny one."""
    from skimage.data import astronaut

    d = tmp_path_factory.mktemp("photos")
    img = astronaut()
    Image.fromarray(img).save(d / "astro.png")
    Image.fromarray(img).convert("L").resize((300, 300)).save(d / "grey.png")
    grey16 = (np.asarray(Image.fromarray(img).convert("L"), np.uint16) * 257)
    Image.fromarray(grey16).save(d / "grey16.png")
    Image.fromarray(np.ascontiguousarray(img[:, ::-1])).save(d / "mirror.png")
    Image.fromarray(img[60:200, 150:290]).resize((16, 16)).save(d / "tiny.png")
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(d / "blank.png")
    return d


@pytest.fixture(scope="module")
def model():
    return load_model("dlib")


def test_dlib_honours_the_encoder_contract(model):
    from facespace.protocol import Encoder, is_aligning

    assert isinstance(model, Encoder) and is_aligning(model)
    chips = np.random.default_rng(0).random((3, 150, 150, 3), dtype=np.float32)
    z = model.encode(chips, batch_size=2)
    assert z.shape == (3, 128) and z.dtype == np.float32 and np.isfinite(z).all()
    assert np.allclose(z, model.encode(chips, batch_size=3), atol=1e-6)  # batching changes nothing
    with pytest.raises(FacespaceError, match="150, 150, 3"):
        model.encode(np.zeros((1, 32, 32, 3), np.float32))


def test_dlib_detectors_find_the_face_with_eye_landmarks(photos):
    from facespace.photos.detect import detect_faces

    img = np.asarray(Image.open(photos / "astro.png"))
    for detector in ("dlib-hog", "dlib-cnn"):
        best = detect_faces(img, detector=detector)[0]
        x, y, w, h = best.box
        assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 180  # the astronaut's face
        eyes = best.landmarks
        assert eyes.shape == (2, 2) and eyes[0, 0] < eyes[1, 0]
        assert all(x <= ex <= x + w and y <= ey <= y + h for ex, ey in eyes)


def test_the_same_face_grey_16_bit_or_mirrored_is_the_same_person(model, photos):
    from facespace.data.inputs import as_images

    x = as_images(model, [str(photos / n) for n in ("astro.png", "grey.png", "grey16.png", "mirror.png")],
                  check_faces=True)
    z = model.encode(x)
    d = np.linalg.norm(z[1:] - z[0], axis=1)
    assert (d < dlib_face.DLIB_THRESHOLD).all(), d
    assert abs(d[1] - d[0]) < 0.05  # the 16-bit grey file reads as the 8-bit one


def test_different_people_are_farther_than_the_same_person(model, photos):
    from skimage.data import lfw_subset

    from facespace.data.inputs import align_arrays

    faces = lfw_subset()[:10]  # ten faces of different people, 25x25 grey in [0, 1]
    big = np.stack([np.asarray(Image.fromarray((f * 255).astype(np.uint8)).resize((100, 100)))
                    for f in faces]).astype(np.float32)[..., None] / 255.0
    z = model.encode(align_arrays(model, list(big)))
    zf = model.encode(align_arrays(model, list(big[:, :, ::-1])))
    same = np.linalg.norm(z - zf, axis=1)
    other = np.linalg.norm(z[:, None] - z[None], axis=2)[~np.eye(10, dtype=bool)]
    assert np.median(same) < np.median(other)


def test_a_face_too_small_for_the_landmarks_is_refused_by_name(model, photos):
    from facespace.data.inputs import as_images

    with pytest.raises(FacespaceError, match="too small"):
        as_images(model, [str(photos / "tiny.png")], check_faces=True)


def test_cli_verify_enrol_identify_and_search_with_dlib(run_cli, photos, tmp_path):
    code, out, _ = run_cli("people", "verify", photos / "astro.png", photos / "grey.png", "--model", "dlib")
    row = json.loads(out.splitlines()[0])
    assert code == 0 and row["same"] and row["metric"] == "l2" and row["model"] == "dlib"
    code, out, _ = run_cli("people", "verify", photos / "astro.png", photos / "mirror.png", "--model", "dlib",
                           "--detector", "dlib-hog")
    assert code == 0 and all(json.loads(line)["status"] == "ok" for line in out.splitlines())
    g = tmp_path / "g.db"
    assert run_cli("people", "enroll", "eileen", photos / "astro.png", "--model", "dlib", "--gallery", g)[0] == 0
    code, out, _ = run_cli("people", "identify", photos / "grey.png", "--model", "dlib", "--gallery", g)
    assert code == 0 and out.splitlines()[1].split(",")[1] == "eileen"
    with Gallery(g) as gallery:  # scored as the card says: S-norm against the cohort shipped beside it
        facts = json.loads(gallery.meta["calibration"])
        assert gallery.scoring == "snorm" and len(gallery.cohort().cohort_) == 3000
        assert facts["source"] == "model" and "S-normalised" in facts["measured_on"]
    code, _, err = run_cli("people", "identify", photos / "grey.png", "--model", "faces-id", "--gallery", g)
    assert code == 2 and "model" in err
    codes = tmp_path / "c.npy"
    code, out, _ = run_cli("encode", photos / "astro.png", photos / "mirror.png", "--model", "dlib", "--out", codes,
                           "--detector", "dlib-cnn")
    assert code == 0 and json.loads(out.splitlines()[-1])["count"] == 2
    idx = tmp_path / "i.idx"
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("astro.png", "grey.png", "mirror.png", "blank.png"):
        (faces / name).write_bytes((photos / name).read_bytes())
    assert run_cli("index", "build", faces, "--model", "dlib", "--out", idx)[0] == 0
    code, out, _ = run_cli("index", "search", idx, photos / "grey16.png", "-k", "1")  # the index finds its model by name
    assert code == 0
    assert out.splitlines()[1].split(",")[2].endswith("grey.png")


def test_models_list_says_whether_dlib_can_be_used(run_cli):
    code, out, _ = run_cli("models", "list")
    row = [line for line in out.splitlines() if line.startswith("dlib,")]
    assert code == 0 and row and row[0].endswith(",yes")


def test_two_worker_processes_give_the_same_codes_in_the_same_order(photos):
    from facespace.pipelines.encoding import encode_sources

    model = load_model("dlib")
    files = [str(photos / n) for n in ("astro.png", "grey.png", "mirror.png", "grey16.png")] * 20  # 80: two chunks
    one, _, _ = encode_sources(model, files, workers=1)
    two, _, _ = encode_sources(model, files, workers=2)
    assert np.array_equal(one.codes, two.codes) and one.sources == two.sources


def test_the_identity_decoder_draws_faces_from_dlib_codes_and_morphs(run_cli, photos, tmp_path):
    ae = load_model("dlib-ae")
    assert ae.image_shape == (150, 150, 3)
    from facespace.data.inputs import as_images

    x = as_images(ae, [str(photos / "astro.png")])
    drawn = ae.decode(ae.encode(x))
    assert drawn.shape == (1, 150, 150, 3) and np.isfinite(drawn).all()
    # the drawing keeps some of who it is: nearer the astronaut than a drawing of the all-zero code is
    z = ae.encode(x)
    assert np.linalg.norm(ae.encode(drawn) - z) < np.linalg.norm(ae.encode(ae.decode(np.zeros_like(z))) - z)
    out = tmp_path / "m.png"
    code, stdout, _ = run_cli("generate", "morph", photos / "astro.png", photos / "mirror.png", "--model", "dlib-ae",
                              "--steps", "3", "--out", out)
    assert code == 0 and out.exists() and json.loads(stdout.splitlines()[-1])["steps"] == 3
    code, _, err = run_cli("generate", "morph", photos / "astro.png", photos / "mirror.png", "--model", "dlib",
                           "--out", tmp_path / "n.png")
    assert code == 2 and "decod" in err and not (tmp_path / "n.png").exists()  # an identity model has no decoder


def test_the_web_app_aligns_uploads_for_dlib(photos, tmp_path):
    from facespace.pipelines.indexing import build_index
    from facespace.web.app import create_app

    from web_helpers import api_client

    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("astro.png", "mirror.png", "blank.png"):
        (faces / name).write_bytes((photos / name).read_bytes())
    model = load_model("dlib")
    build_index(model, str(faces)).save(tmp_path / "d.index")
    client = api_client(create_app(model="dlib", index=tmp_path / "d.index"))
    with open(photos / "grey.png", "rb") as f:
        r = client.post("/api/search", files={"file": ("grey.png", f, "image/png")}, data={"k": "1"})
    assert r.status_code == 200, r.text
    top = r.json()["neighbours"][0]
    assert top["label"] in ("astro.png", "mirror.png") and top["distance"] < 0.1  # cosine: the same person
    with open(photos / "astro.png", "rb") as f:
        r = client.post("/api/search", files={"file": ("astro.png", f, "image/png")}, data={"k": "1", "detect": "true"})
    assert r.status_code == 200 and r.json()["detection"]["status"] == "ok"
    assert r.json()["neighbours"][0]["label"] in ("astro.png", "mirror.png")
