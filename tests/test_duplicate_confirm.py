"""Candidate duplicate pairs confirmed in pixel space: a distinct photo that the codes take for a copy
is dropped, the planted copies are kept, pairs whose images are gone are judged by their codes with a
note, and `index duplicates` / the web app say whether pairs were confirmed."""

from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facespace.index import Index
from facespace.models.registry import resolve_model
from facespace.people.distances import pair_distances
from facespace.pipelines.duplicate_confirm import PixelReader, find_confirmed_duplicates, pair_pixel_distances
from facespace.pipelines.duplicate_threshold import encode_files, learn_max_distance
from facespace.pipelines.indexing import build_index
from facespace.pipelines.retrieval import find_duplicates

from duplicate_helpers import (face, found_pairs, pairs_across, planted_set,  # noqa: E402
                               split_for_against, truth_pairs)

LOOKALIKE = ("face_05.png", "lookalike.png")  # two distinct photos, one made to share the other's coarse layout
CODES = "pixels:4"  # a model whose codes are coarse: 4x4 pixels


def blur(x: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(x.astype(np.uint8)).filter(ImageFilter.GaussianBlur(10)), np.float32)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """40 grey faces (scikit-image's LFW subset, 100x100 PNGs), 5 planted copies, and a look-alike of
    face 5: another face's details over face 5's blurred layout, so that its 4x4 code lies as close to
    face 5's as a copy's (cosine ~0.001) while its 32x32 pixels are another face's (~0.03)."""
    made, pictures = planted_set(tmp_path_factory.mktemp("confirm"))
    folder = made["folder"]
    a, c = (np.asarray(face(pictures, i), np.float32) for i in (5, 60))
    Image.fromarray(np.clip(c - blur(c) + blur(a), 0, 255).astype(np.uint8)).save(folder / LOOKALIKE[1])
    return made


@pytest.fixture(scope="module")
def coarse(faces):
    """The 4x4-pixel index of the set and its threshold, learned with the pixel stage."""
    index = build_index(CODES, str(faces["folder"]))
    return index, learn_max_distance(index, model=CODES)


# ---- the pieces


def test_pixel_codes_are_read_as_the_index_reads_its_files(faces):
    paths = [str(faces["folder"] / f"face_{i:02d}.png") for i in range(3)] + [str(faces["folder"] / "copy_small.png")]
    for crop in ("none", "10,5,70,75"):
        reader = PixelReader.of(resolve_model("pixels:16"), crop)
        expected = encode_files(resolve_model("pixels:32"), paths, crop=crop)
        assert np.allclose(reader.codes(paths), expected, atol=1e-6), crop
    reader = PixelReader.of(resolve_model("pixels:16:grey"))
    assert reader.describe() == "32x32 grey pixels" and reader.codes(paths[:1]).shape == (1, 32 * 32)
    d = pair_pixel_distances(reader, [paths[0], paths[0], "/gone/x.png", None], [paths[0], paths[1], paths[1], paths[1]])
    assert d[0] == pytest.approx(0, abs=1e-6) and d[1] > 0.005 and np.isnan(d[2:]).all()


def test_a_model_that_cuts_its_own_faces_gives_its_chips_shrunk(faces):
    class CentreChips:  # an aligning model: its "face" is the centre half of the photo, as a 64x64 chip
        kind = "centre"
        image_shape = (64, 64, 3)
        code_size = 8
        checkpoint_info = None

        def locate(self, image):
            h, w = image.shape[:2]
            return (w // 4, h // 4, w // 2, h // 2)

        def align(self, image, box):
            x, y, w, h = box
            chip = Image.fromarray((image[y:y + h, x:x + w] * 255 + 0.5).astype(np.uint8).squeeze())
            return np.asarray(chip.convert("RGB").resize((64, 64), Image.Resampling.BOX), np.float32) / 255

        def encode(self, images, *, batch_size=256):
            return np.asarray(images, np.float32).reshape(len(images), 8, -1).mean(2)

    paths = [str(faces["folder"] / f"face_{i:02d}.png") for i in range(3)]
    reader = PixelReader.of(CentreChips())
    assert reader.aligner is not None and reader.codes(paths).shape == (3, 32 * 32 * 3)
    centre = PixelReader.of(resolve_model("pixels:16"), "25,25,75,75").codes(paths)  # the same centre, read directly
    assert pair_distances(reader.codes(paths), centre, metric="cosine").max() < 2e-3
    assert pair_distances(reader.codes(paths[:1]), centre[1:2], metric="cosine")[0] > 5e-3  # another face is not


def test_a_pair_check_decides_which_links_group_and_which_pairs_are_returned():
    codes = np.array([[0, 0], [0, 0.1], [0, 0.2], [5, 5]], np.float32)
    index = Index(2, metric="l2")
    index.add(codes)
    seen = []

    def not_0_1(a, b, d):  # the link 0-1 is refused; 1-2 and 0-2 stand
        seen.append((a.tolist(), b.tolist()))
        return ~((a == 0) & (b == 1))

    assert find_duplicates(index, 0.15) == [[0, 1, 2]]
    assert find_duplicates(index, 0.15, keep=not_0_1) == [[1, 2]]
    assert seen == [([0, 1], [1, 2])]  # each pair once, lower id first, no self-links
    assert find_duplicates(index, 0.25, keep=not_0_1) == [[0, 1, 2]]  # linked through 0-2
    pairs = find_duplicates(index, 0.15, against=codes[:2], keep=lambda a, b, d: a != b)
    assert {(p.new, p.ref) for p in pairs} == {(1, 0), (0, 1), (2, 1)}  # (0, 0) and (1, 1) refused


# ---- learning and confirming


def test_the_pixel_stage_drops_a_look_alike_that_the_codes_take_for_a_copy(faces, coarse):
    index, learned = coarse
    assert learned.confirmed and learned.how == "learned" and learned.pixels.describe() == "32x32 RGB pixels"
    assert set(learned.pixel_copies) == set(learned.copies) and len(learned.pixel_distinct) == len(learned.distinct)
    assert learned.candidate_distance == learned.thresholds["similar"] >= learned.max_distance
    by_codes = found_pairs(index, find_duplicates(index, learned.max_distance))
    assert tuple(sorted(LOOKALIKE)) in by_codes  # the codes alone accept it (4x4 codes link one more distinct pair)
    groups, check = find_confirmed_duplicates(index, learned)
    assert found_pairs(index, groups) == truth_pairs()
    assert check.candidates >= len(truth_pairs()) + 1 and check.kept == len(truth_pairs()) and check.unread == 0
    text = learned.describe()
    assert "confirmed in pixel space" in text and "pixel near-copies" in text and "pixel distinct" in text
    assert f"{learned.pixel_max_distance:.4g}" in text and f"{learned.candidate_distance:.4g}" in text


def test_no_confirm_learns_the_codes_alone(coarse):
    index, _ = coarse
    learned = learn_max_distance(index, model=CODES, confirm=False)
    assert not learned.confirmed and learned.pixel_max_distance is None and "--no-confirm" in learned.confirm_note
    groups, check = find_confirmed_duplicates(index, learned)
    assert check is None and tuple(sorted(LOOKALIKE)) in found_pairs(index, groups)


def test_pairs_whose_images_are_gone_are_judged_by_their_codes_with_a_note(faces, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(faces["folder"], folder)
    index = build_index(CODES, str(folder))
    learned = learn_max_distance(index, model=CODES)
    (folder / LOOKALIKE[1]).unlink()  # gone after learning: its pair can no longer be confirmed
    groups, check = find_confirmed_duplicates(index, learned)
    assert found_pairs(index, groups) == truth_pairs() | {tuple(sorted(LOOKALIKE))}  # the codes decide it
    assert check.unread == 1 and "lookalike.png" in check.summary() and "judged by their codes alone" in check.summary()

    pca_folder = tmp_path / "gone"
    shutil.copytree(faces["folder"], pca_folder)
    pca = build_index(str(faces["pca"]), str(pca_folder))
    shutil.rmtree(pca_folder)
    learned = learn_max_distance(pca)  # decoded copies: there are no files to confirm pairs with
    assert learned.how == "decoded" and not learned.confirmed and "images are gone" in learned.confirm_note
    assert "images are gone" in learned.describe()
    groups, check = find_confirmed_duplicates(pca, learned)
    assert check is None and groups == find_duplicates(pca, learned.max_distance)


# ---- the command line and the web app


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def cli_pairs(out: str) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for g, _, path, _ in rows(out)[1:]:
        groups.setdefault(g, []).append(path.rsplit("/", 1)[1])
    return {tuple(sorted((a, b))) for m in groups.values() for a in m for b in m if a < b}


@pytest.fixture(scope="module")
def coarse_file(faces, coarse, tmp_path_factory):
    path = tmp_path_factory.mktemp("idx") / "coarse.index"
    coarse[0].save(path)
    return path


def test_cli_confirms_by_default_and_says_so(coarse_file, run_cli, tmp_path):
    report = tmp_path / "dup.html"
    code, out, err = run_cli("index", "duplicates", coarse_file, "-m", CODES, "--report", report)
    assert code == 0, err
    assert cli_pairs(out) == truth_pairs()
    assert "confirmed in pixel space" in err and "pixel confirmation: 5 of" in err and "in pixels" in err
    html = report.read_text()
    assert html.count("<svg") == 2 and "Confirmed in pixel space" in html

    code, out, err = run_cli("index", "duplicates", coarse_file, "-m", CODES, "--no-confirm")
    assert code == 0 and tuple(sorted(LOOKALIKE)) in cli_pairs(out) and "not confirmed in pixel space (--no-confirm)" in err
    code, out, err = run_cli("index", "duplicates", coarse_file, "-m", CODES, "--max-distance", "0.0001")
    assert code == 0 and "not confirmed in pixel space" in err and "0.0001 as given" in err
    code, out, err = run_cli("index", "duplicates", coarse_file, "-m", CODES, "--confirm", "--max-distance", "0.01", "--report", report)
    assert code == 2 and out == "" and "--confirm checks pairs against a pixel threshold" in err


def test_cli_against_a_reference_folder_confirms_too(faces, run_cli, tmp_path):
    new, ref = split_for_against(faces["folder"], tmp_path, extra=(LOOKALIKE[1],))
    found = {}
    for option in ("--confirm", "--no-confirm"):
        code, out, err = run_cli("index", "duplicates", new, "--against", ref, "--model", CODES, option)
        assert code == 0, err
        found[option] = pairs_across(rows(out))
    assert found["--confirm"] == truth_pairs() and tuple(sorted(LOOKALIKE)) in found["--no-confirm"]


def test_cli_with_the_images_gone_says_pairs_are_not_confirmed(faces, run_cli, tmp_path):
    folder = tmp_path / "gone"
    shutil.copytree(faces["folder"], folder)
    idx = tmp_path / "gone.index"
    assert run_cli("index", "build", folder, "--model", faces["pca"], "--out", idx)[0] == 0
    shutil.rmtree(folder)
    code, out, err = run_cli("index", "duplicates", idx)
    assert code == 0, err
    assert "not confirmed in pixel space: the images are gone" in err and "pixel confirmation:" not in err


def test_web_duplicates_say_whether_pairs_were_confirmed(faces, coarse_file):
    from web_helpers import api_client

    from facespace.web.app import create_app

    client = api_client(create_app(model=CODES, index=coarse_file))
    body = client.get("/api/duplicates").json()
    labels = [{i["label"] for i in g["items"]} for g in body["groups"]]
    assert body["confirmed"] and body["pixel_max_distance"] == pytest.approx(body["pixel_thresholds"]["near"])
    assert body["candidate_distance"] == pytest.approx(body["thresholds"]["similar"])
    assert len(body["pixel_copy_quantiles"]) == 5 and "pixel confirmation" in body["confirm_note"]
    assert set(LOOKALIKE) not in labels and {"face_00.png", "copy_same.png"} in labels
    off = client.get("/api/duplicates", params={"confirm": "false"}).json()
    assert not off["confirmed"] and off["pixel_max_distance"] is None and "confirm=false" in off["confirm_note"]
    assert set(LOOKALIKE) in [{i["label"] for i in g["items"]} for g in off["groups"]]
    given = client.get("/api/duplicates", params={"max_distance": 0.0}).json()
    assert not given["confirmed"] and "given max_distance" in given["confirm_note"]
