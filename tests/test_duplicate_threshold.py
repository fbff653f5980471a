"""A duplicate threshold learned from the set itself: planted copies found, distinct faces kept
apart, levels ordered, small sets and missing images handled, and `index duplicates` with no option."""

from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from facespace.errors import FacespaceError
from facespace.index import Index, IndexingError
from facespace.models.registry import resolve_model
from facespace.pipelines import duplicate_levels as dl
from facespace.pipelines.duplicate_levels import ALTERATIONS, LEVELS, choose_thresholds, distinct_distances
from facespace.pipelines.duplicate_threshold import copy_distances, learn_max_distance
from facespace.data.alterations import alter_image
from facespace.pipelines.indexing import build_index
from facespace.pipelines.retrieval import find_duplicates

from duplicate_helpers import (N_FACES, PLANTED, found_pairs, pairs_across, planted_set,  # noqa: E402
                               split_for_against, truth_pairs)

@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """40 distinct grey faces (scikit-image's LFW subset, 100x100 PNGs) and 5 planted copies, and a
    PCA model fitted on other faces."""
    return planted_set(tmp_path_factory.mktemp("dups"))[0]


@pytest.fixture(scope="module")
def pixel_index(faces):
    return build_index("pixels:16", str(faces["folder"]))


# ---- pure pieces


def test_every_alteration_gives_a_readable_file_of_the_expected_size():
    from facespace.data.images import read_image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 80, 3), np.uint8))
    for name in ALTERATIONS:
        copy = read_image(alter_image(img, name))
        assert copy.shape[2] == 3 and copy.shape[:2] == {
            "resize90": (45, 72), "resize70": (35, 56), "resize50": (25, 40), "trim1": (50, 78), "trim2": (48, 76),
            "corner2": (49, 78)}.get(name, (50, 80)), name
    grey = read_image(alter_image(img.convert("L"), "jpeg70"))
    assert grey.shape == (50, 80, 1)  # grey stays grey
    with pytest.raises(FacespaceError, match="unknown alteration 'blur3'; expected one of: jpegP"):
        alter_image(img, "blur3")


def test_copies_of_a_rotated_photo_are_upright_like_its_original(tmp_path):
    from skimage.data import astronaut

    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to view
    Image.fromarray(astronaut()).resize((200, 120)).save(path, quality=95, exif=exif)
    d = copy_distances(resolve_model("pixels:16"), [str(path)], alterations=["jpeg95", "darker10"])
    assert d["jpeg95"][0] < 1e-3 and d["darker10"][0] < 0.02  # not a quarter turn away


def test_thresholds_reach_the_copies_and_stop_short_of_distinct_images():
    copies = {"jpeg95": np.full(20, 1e-5), "jpeg50": np.full(20, 1e-4), "trim2": np.linspace(1e-3, 1e-2, 20)}
    far = choose_thresholds(copies, np.linspace(0.2, 0.6, 200))
    assert far["exact"] < far["near"] < far["similar"] < 0.2  # ordered, all below every distinct distance
    assert far["near"] >= 1e-2 and far["exact"] >= 1e-5  # each reaches its level's copies
    distinct = np.linspace(0.005, 0.6, 200)  # distinct images as close as the trims
    close = choose_thresholds(copies, distinct)
    assert close["near"] == pytest.approx(dl.CAP * np.quantile(distinct, dl.FLOOR_QUANTILE)) and close["near"] < 0.01
    assert close["exact"] <= close["near"] <= close["similar"] <= np.quantile(distinct, dl.SIMILAR_QUANTILE)
    with pytest.raises(FacespaceError, match="needs distances"):
        choose_thresholds(copies, np.array([np.nan]))


def test_distinct_distances_skip_a_query_s_copies():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((30, 8)).astype(np.float32)
    codes[1] = codes[0] + 1e-4  # a copy of item 0
    codes[2] = codes[0] - 1e-4  # and another
    index = Index(8, metric="l2")
    index.add(codes)
    d = distinct_distances(index, codes, exclude=index.ids)
    full = np.linalg.norm(codes[:, None] - codes[None], axis=2)
    np.fill_diagonal(full, np.inf)
    assert d[0] == pytest.approx(np.sort(full[0])[2], rel=1e-4)  # past both copies
    assert np.allclose(d[3:], full[3:].min(1), rtol=1e-4)  # distinct items keep their nearest neighbour
    codes[1] = codes[0]  # an identical copy and a farther, altered one: both skipped
    codes[2] = codes[0] + 0.01
    index = Index(8, metric="l2")
    index.add(codes)
    full = np.linalg.norm(codes[:, None] - codes[None], axis=2)
    np.fill_diagonal(full, np.inf)
    assert distinct_distances(index, codes[:1], exclude=index.ids[:1], reach=0.1)[0] == pytest.approx(
        np.sort(full[0])[2], rel=1e-4)
    # beyond the copies' reach a close neighbour is a distinct image, however far the next one is
    assert distinct_distances(index, codes[:1], exclude=index.ids[:1], reach=1e-6)[0] == pytest.approx(
        np.sort(full[0])[1], rel=1e-4)


# ---- learning from a set


def test_auto_finds_the_planted_copies_and_no_distinct_pair(faces, pixel_index):
    learned = learn_max_distance(pixel_index, model="pixels:16")
    assert learned.how == "learned" and learned.level == "near" and learned.n_items == N_FACES + len(PLANTED)
    assert set(learned.copies) == set(ALTERATIONS) and len(learned.distinct) == len(pixel_index)
    groups = find_duplicates(pixel_index, learned.max_distance)
    assert found_pairs(pixel_index, groups) == truth_pairs()
    text = learned.describe()
    assert "near-copies" in text and "distinct images" in text and f"{learned.max_distance:.4g}" in text


def test_levels_order_their_thresholds_and_exact_finds_only_re_encodes(faces, pixel_index):
    learned = {lv: learn_max_distance(pixel_index, model="pixels:16", level=lv) for lv in LEVELS}
    t = [learned[lv].max_distance for lv in LEVELS]
    assert t[0] <= t[1] <= t[2] and t[0] < t[2]
    assert learned["exact"].thresholds == learned["near"].thresholds  # one rule, three points on it
    exact = found_pairs(pixel_index, find_duplicates(pixel_index, t[0]))
    assert ("copy_same.png", "face_00.png") in exact and exact <= truth_pairs()


def test_a_pca_index_from_another_crop_is_recognised(faces):
    index = build_index(str(faces["pca"]), str(faces["folder"]), crop="none")  # files are 100x100: same cut as "lfw"
    learned = learn_max_distance(index, crop="tight")  # "tight" cannot cut 100x100 files: the index's crop is found
    assert learned.how == "learned" and not any("not what its files give" in n for n in learned.notes)
    assert found_pairs(index, find_duplicates(index, learned.max_distance)) == truth_pairs()


def test_a_set_too_small_falls_back_to_the_fixed_level(pixel_index):
    index = pixel_index  # two of its items: a single distance, nothing to compare it with
    small = Index(index.dim, metric="cosine")
    small.add(index.reconstruct(index.ids[:2]), metadata=index.get_metadata(index.ids[:2]))
    learned = learn_max_distance(small, model="pixels:16")
    assert learned.how == "fallback" and learned.max_distance == dl.FALLBACK_COSINE
    assert "too few" in learned.describe() and f"at least {dl.MIN_IMAGES}" in learned.describe()
    l2 = Index(index.dim, metric="l2")
    l2.add(index.reconstruct(index.ids[:2]))
    norm = np.median(np.linalg.norm(index.reconstruct(index.ids[:2]), axis=1))
    assert learn_max_distance(l2, model="pixels:16").max_distance == pytest.approx(np.sqrt(2e-4) * norm, rel=1e-5)


def test_missing_images_learn_from_decoded_codes_or_say_what_to_do(faces, tmp_path):
    folder = tmp_path / "gone"
    shutil.copytree(faces["folder"], folder)
    index = build_index(str(faces["pca"]), str(folder))
    shutil.rmtree(folder)
    learned = learn_max_distance(index)  # PCA decodes: copies of decoded codes
    assert learned.how == "decoded" and any("decoded" in n for n in learned.notes)
    assert learned.thresholds["exact"] <= learned.max_distance <= learned.thresholds["similar"]

    class NoDecoder:  # an encoder that cannot turn codes back into images
        kind = "meanpool"
        image_shape = (8, 8, 1)
        code_size = 4
        checkpoint_info = None

        def encode(self, images, *, batch_size=256):
            return np.asarray(images, np.float32).reshape(len(images), 4, 16).mean(2)

    plain = Index(4, metric="cosine")
    plain.add(np.random.default_rng(0).random((10, 4), np.float32),
              metadata=[{"path": f"/gone/{i}.png"} for i in range(10)])
    with pytest.raises(IndexingError, match=r"only 0 of the set's 10 images can be read \(e.g. '/gone/\d.png' is gone"
                                            r".*cannot turn codes back into images.*restore the images.*--max-distance"):
        learn_max_distance(plain, model=NoDecoder())
    with pytest.raises(IndexingError, match="record no model.*--model"):
        learn_max_distance(plain)
    with pytest.raises(FacespaceError, match="unknown level 'loose'"):
        learn_max_distance(plain, level="loose")
    ip = Index(4, metric="ip")
    ip.add(np.eye(4, dtype=np.float32))
    with pytest.raises(IndexingError, match="ip.*--metric cosine"):
        learn_max_distance(ip, model=NoDecoder())


# ---- the command line


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture(scope="module")
def pca_index(faces, tmp_path_factory):
    path = tmp_path_factory.mktemp("idx") / "faces.index"
    build_index(str(faces["pca"]), str(faces["folder"])).save(path)
    return path


def test_cli_duplicates_with_no_option_learns_and_reports(pca_index, run_cli, tmp_path):
    report = tmp_path / "dup.html"
    code, out, err = run_cli("index", "duplicates", pca_index, "--report", report)
    assert code == 0, err
    table = rows(out)
    assert table[0] == ["group", "id", "path", "name"]
    groups: dict[str, list[str]] = {}
    for g, _, path, _ in table[1:]:
        groups.setdefault(g, []).append(path.rsplit("/", 1)[1])
    assert {tuple(sorted(m)) for m in groups.values()} == truth_pairs()
    assert "max distance" in err and "level near" in err and "near-copies" in err and "distinct images" in err
    html = report.read_text()
    assert html.count("<svg") == 2 and "near-copies" in html and "distinct images" in html and "exact" in html  # codes, pixels

    code, out_exact, err = run_cli("index", "duplicates", pca_index, "--level", "exact")
    assert code == 0 and "level exact" in err and len(rows(out_exact)) <= len(table)


def test_cli_duplicates_against_a_reference_folder_learns_too(faces, run_cli, tmp_path):
    new, ref = split_for_against(faces["folder"], tmp_path)
    code, out, err = run_cli("index", "duplicates", new, "--against", ref, "--model", faces["pca"])
    assert code == 0, err
    found = pairs_across(rows(out))
    assert found == truth_pairs() and "max distance" in err


def test_cli_duplicates_bad_input_exits_2_and_writes_nothing(faces, pca_index, run_cli, tmp_path):
    report = tmp_path / "r.html"
    for args, message in (
        (("--max-distance", "lots"), "expected a number or auto"),
        (("--level", "loose"), "unknown --level 'loose'; expected one of: exact, near, similar"),
        (("--level", "exact", "--max-distance", "0.1"), "--level chooses a learned threshold"),
    ):
        code, out, err = run_cli("index", "duplicates", pca_index, *args, "--report", report)
        assert code == 2 and message in err and out == "" and not report.exists(), args

    folder = tmp_path / "gone"
    shutil.copytree(faces["folder"], folder)
    idx = tmp_path / "gone.index"
    assert run_cli("index", "build", folder, "--model", "faces-id", "--out", idx)[0] == 0
    shutil.rmtree(folder)
    code, out, err = run_cli("index", "duplicates", idx, "--report", report)
    assert code == 2 and out == "" and not report.exists()
    assert "cannot turn codes back into images" in err and "restore the images" in err and "--max-distance" in err


def test_cli_duplicates_of_a_tiny_set_says_it_falls_back(faces, run_cli, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    shutil.copyfile(faces["folder"] / "face_00.png", tiny / "a.png")
    shutil.copyfile(faces["folder"] / "copy_same.png", tiny / "b.png")
    idx = tmp_path / "tiny.index"
    assert run_cli("index", "build", tiny, "--model", faces["pca"], "--out", idx)[0] == 0
    code, out, err = run_cli("index", "duplicates", idx)
    assert code == 0, err
    assert f"auto needs at least {dl.MIN_IMAGES}" in err and f"{dl.FALLBACK_COSINE:.4g}" in err
    assert "pairs are not confirmed in pixel space: 2 item(s) are too few" in err
    assert len(rows(out)) == 3  # the header and the one pair of byte-identical files
