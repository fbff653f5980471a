"""Persistent face groups (issue 10): stable ids, incremental adds, corrections that stick."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from PIL import Image

from facespace.people.groups.constrained import enforce, match_labels, must_components
from facespace.people.gallery.gallery import Gallery
from facespace.people.gallery.store import SCHEMA_VERSION, GalleryError
from facespace.people.groups.groups import FaceGroups
from facespace.models.pixels import PixelEncoder

D = 16  # PixelEncoder(size=4, channels=1) makes 16-value codes


def blobs(k: int, per: int, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """`k` people as random directions in 16-d, `per` noisy codes of each; (codes, person)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    codes = np.concatenate([c + rng.normal(0, noise, (per, D)) for c in centres]).astype(np.float32)
    return codes, np.repeat(np.arange(k), per)


def by_person(g: FaceGroups, face_ids: np.ndarray, person: np.ndarray) -> dict[int, set[int]]:
    """For each person, the set of group ids their faces are in (-1 = ungrouped)."""
    group_of = {f: gid for f, _, _, gid in g.faces()}
    return {int(p): {group_of[int(f)] for f in face_ids[person == p]} for p in np.unique(person)}


@pytest.fixture
def groups():
    g = FaceGroups(":memory:", PixelEncoder(size=4, channels=1))
    yield g
    g.close()


HDB = dict(method="hdbscan", min_cluster_size=4, min_samples=3)


def test_ids_stay_stable_as_faces_are_added(groups):
    codes, person = blobs(4, 15)
    first = np.concatenate([np.flatnonzero(person == p)[:10] for p in range(4)])
    later = np.setdiff1d(np.arange(len(codes)), first)
    added = groups.add(codes[first])
    assert added.new.all() and (added.group_ids == -1).all()  # nothing grouped before a clustering
    groups.recluster(**HDB)
    before = by_person(groups, added.face_ids, person[first])
    assert all(len(s) == 1 and -1 not in s for s in before.values())
    assert len({next(iter(s)) for s in before.values()}) == 4
    ids_before = sorted(x.id for x in groups.groups())

    outlier = -np.ones((1, D), np.float32) / 4  # opposite every person: joins no group
    more = groups.add(np.concatenate([codes[later], outlier]), sources=[f"new{i}" for i in range(len(later) + 1)])
    own = np.array([next(iter(before[int(p)])) for p in person[later]])
    joined = more.group_ids[:-1] >= 0
    assert (more.group_ids[:-1][joined] == own[joined]).all()  # joined its person's group, by id
    assert joined.mean() >= 0.6 and more.group_ids[-1] == -1  # radius: 90 % of in-group neighbour distances
    again = groups.add(codes[later] + 0.001, max_distance=0.05)  # a wider radius: every face joins
    assert (again.group_ids == own).all()
    assert sorted(x.id for x in groups.groups()) == ids_before  # no id renumbered by adding

    groups.recluster(**HDB)  # re-clustering everything keeps the ids by overlap
    allf = np.concatenate([added.face_ids, more.face_ids[:-1], again.face_ids])
    after = by_person(groups, allf, np.concatenate([person[first], person[later], person[later]]))
    assert after == before


def test_adding_a_face_twice_stores_it_once(groups):
    codes, _ = blobs(2, 5)
    a = groups.add(codes)
    b = groups.add(np.concatenate([codes[:2], codes[:1]]))
    assert not b.new.any() and b.face_ids.tolist() == [a.face_ids[0], a.face_ids[1], a.face_ids[0]]
    assert len(groups) == 10


def test_images_are_encoded_with_the_model(groups, rng):
    images = rng.random((3, 4, 4, 1), dtype=np.float32)
    added = groups.add(images, sources=["a", "b", "c"])
    np.testing.assert_allclose(groups.codes(added.face_ids), images.reshape(3, -1))
    assert [f[1] for f in groups.faces()] == ["a", "b", "c"]


def test_must_and_cannot_links_hold_after_recluster(groups):
    codes, person = blobs(3, 12)
    ids = groups.add(codes).face_ids
    groups.recluster(**HDB)
    p0, p1 = ids[person == 0], ids[person == 1]
    groups.cannot_link(p0[0], p0[1])  # "these two are different people", though the codes agree
    groups.must_link(p0[2], p1[0])  # "this face of person 1 is person 0"
    for _ in range(2):
        group_of = {f: gid for f, _, _, gid in groups.faces()}
        assert group_of[p0[0]] != group_of[p0[1]]
        assert group_of[p0[2]] == group_of[p1[0]] != -1
        groups.recluster(**HDB)
    assert ("cannot" in {k for *_, k in groups.links()}) and ("must" in {k for *_, k in groups.links()})
    with pytest.raises(GalleryError, match="both the same person"):
        groups.must_link(p0[0], p0[1])  # contradicts the cannot-link
    assert groups.unlink(p0[0], p0[1]) == 1
    groups.must_link(p0[0], p0[1])


def test_names_survive_recluster_and_merge(groups):
    codes, person = blobs(3, 12)
    ids = groups.add(codes).face_ids
    groups.recluster(**HDB)
    g0, g1, g2 = (by_person(groups, ids, person)[p].pop() for p in range(3))
    groups.name(g0, " Ada ")
    groups.name(g2, "Bea")
    merged = groups.merge(g0, g1)
    assert merged.id == g0 and merged.name == "Ada" and len(merged) == 24
    assert sorted(x.id for x in groups.groups()) == sorted([g0, g2])
    groups.recluster(**HDB)
    assert {x.id: (x.name, len(x)) for x in groups.groups()} == {g0: ("Ada", 24), g2: ("Bea", 12)}
    # a clustering told "one group" still never puts two named people together
    groups.recluster("agglomerative", n_clusters=1, min_cluster_size=1)
    assert {x.name for x in groups.groups()} == {"Ada", "Bea"}
    assert by_person(groups, ids, person) == {0: {g0}, 1: {g0}, 2: {g2}}
    with pytest.raises(GalleryError, match="both have names"):
        groups.merge(g0, g2)


def test_split_then_recluster_keeps_the_parts_apart(groups):
    codes, person = blobs(2, 12)
    ids = groups.add(codes).face_ids
    groups.recluster(**HDB)
    g0 = by_person(groups, ids, person)[0].pop()
    groups.name(g0, "Ada")
    part = ids[person == 0][:5]
    kept, new = groups.split(g0, part)
    assert kept.id == g0 and kept.name == "Ada" and len(kept) == 7
    assert set(new.face_ids) == set(part.tolist()) and new.name is None and new.id not in (g0,)
    rest = set(ids[person == 0][5:].tolist())
    groups.recluster(**HDB)
    gs = {x.id: set(x.face_ids) for x in groups.groups()}
    assert gs[g0] == rest and gs[new.id] == set(part.tolist())  # same ids, same faces
    assert groups.group(g0).name == "Ada"
    groups.recluster("agglomerative", n_clusters=1, min_cluster_size=1)  # "all one person" is overruled
    gs = {x.id: set(x.face_ids) for x in groups.groups()}
    assert rest <= gs[g0] and set(part.tolist()) <= gs[new.id] and groups.group(g0).name == "Ada"


def test_constraint_helpers_on_known_answers():
    assert must_components(5, [(3, 1), (1, 4)]).tolist() == [0, 1, 2, 1, 1]
    points = np.array([[0.0], [0.1], [0.3], [5.0], [5.1]])
    # must: rows 3 and 4 move together to the cluster holding most of them; cannot: of rows 0 and 2
    # the one farther from the cluster's centre (2) leaves, alone; row 1 stays with row 0
    labels = enforce(points, np.array([0, 0, 0, 1, -1]), must=[(3, 4)], cannot=[(0, 2)])
    assert labels.tolist() == [0, 0, 2, 1, 1]
    big = np.r_[np.linspace(0, 1, 8), 1.2, 1.3][:, None]  # the edge nearest the outlier leaves with it
    assert enforce(big, np.zeros(10, int), must=[], cannot=[(0, 9)]).tolist() == [0] * 7 + [1, 1, 1]
    with pytest.raises(Exception, match="must-linked"):
        enforce(points, np.zeros(5, int), must=[(0, 1)], cannot=[(1, 0)])
    # new clusters take the old id they share most rows with; unmatched ones get none
    assert match_labels(np.array([7, 7, 7, 9, 9, -1]), np.array([1, 1, 0, 0, 0, 2])) == {1: 7, 0: 9}
    assert match_labels(np.array([7, 7, 9, 9]), np.array([0, 0, 1, 0]), forced={1: 7}) == {1: 7, 0: 9}


def test_bad_input_is_refused_with_a_clear_error(tmp_path, groups):
    with pytest.raises(GalleryError, match="no gallery at"):
        FaceGroups(tmp_path / "missing.db")
    with pytest.raises(GalleryError, match="no faces .* to group"):
        groups.recluster()
    codes, _ = blobs(2, 6)
    ids = groups.add(codes).face_ids
    groups.recluster("agglomerative", n_clusters=2, min_cluster_size=1)
    g = groups.groups()[0]
    with pytest.raises(GalleryError, match="no group 999"):
        groups.name(999, "Ada")
    with pytest.raises(GalleryError, match="no group 999"):
        groups.merge(g.id, 999)
    with pytest.raises(GalleryError, match="reserved"):
        groups.name(g.id, "Unknown")
    with pytest.raises(GalleryError, match="non-empty"):
        groups.name(g.id, "  ")
    groups.name(g.id, "Ada")
    with pytest.raises(GalleryError, match="already names group"):
        groups.name(groups.groups()[1].id, "Ada")
    with pytest.raises(GalleryError, match="not in group"):
        groups.split(g.id, [int(f) for f in ids if f not in g.face_ids][:1])
    with pytest.raises(GalleryError, match="all the faces"):
        groups.split(g.id, list(g.face_ids))
    with pytest.raises(GalleryError, match="no face 12345"):
        groups.must_link(ids[0], 12345)
    with pytest.raises(GalleryError, match="5 values each but .* makes 16"):
        groups.add(np.zeros((2, 5), np.float32))
    with pytest.raises(GalleryError, match="unknown clustering option 'epsilon'"):
        groups.recluster("dbscan", epsilon=0.1)
    with pytest.raises(GalleryError, match="itself"):
        groups.merge(g.id, g.id)
    assert groups.group(g.id).name == "Ada" and len(groups) == 12  # nothing changed by the failures


V1_DUMP = """BEGIN TRANSACTION;
CREATE TABLE faces (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    code BLOB NOT NULL,             -- (d,) float32 little-endian
    code_hash TEXT NOT NULL UNIQUE, -- hash of the image's pixels: one image is enrolled once
    source TEXT,
    added REAL NOT NULL
);
INSERT INTO "faces" VALUES(1,1,X'0AD7233F713D8A3E0AD7233D0AD7A33C','79711fe6532e218e68898261f6ddcb12d22b8b3593667f785ab0b015d29e1cb4','array[0]',1.79543594157207584381e+09);
INSERT INTO "faces" VALUES(2,1,X'295C4F3FC3F5683FF6281C3F48E13A3F','d9900954cd3f9b334a4bf9ffbfe9215e9c73b7fa28088ac452704e737b739f58','array[1]',1.79543594157207584381e+09);
INSERT INTO "faces" VALUES(3,2,X'713D0A3FD7A3703F85EB513F00000000','f271d4c5feb1cf49933418cb12b5f16166014353b471a87204003a07c0e2e959','array[0]',1.79543594160749816895e+09);
INSERT INTO "faces" VALUES(4,2,X'F6285C3F8FC2F53C48E13A3FEC51383E','eb5f1b3343886207ec0f550d959147b1a8a9617c3059a1a3f42451687865509e','array[1]',1.79543594160749816895e+09);
CREATE TABLE links (
    id INTEGER PRIMARY KEY,
    face_a INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    face_b INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),
    created REAL NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','1');
INSERT INTO "meta" VALUES('model_fingerprint','587427022b9fe983');
INSERT INTO "meta" VALUES('model_hash','');
INSERT INTO "meta" VALUES('model_kind','pixels');
INSERT INTO "meta" VALUES('model_path','');
INSERT INTO "meta" VALUES('code_size','4');
INSERT INTO "meta" VALUES('image_shape','[2, 2, 1]');
INSERT INTO "meta" VALUES('metric','cosine');
INSERT INTO "meta" VALUES('target_far','0.01');
INSERT INTO "meta" VALUES('threshold_source','auto');
INSERT INTO "meta" VALUES('created','1795435941.5600526');
INSERT INTO "meta" VALUES('threshold','0.1466050631862936');
INSERT INTO "meta" VALUES('calibration','{"target_far": 0.01, "impostor_scores": 4, "genuine_scores": 4, "genuine_accept_rate": 0.0}');
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    max_distance REAL,              -- per-person threshold (issue 10), NULL for the gallery one
    created REAL NOT NULL
);
INSERT INTO "people" VALUES(1,'ann',NULL,1.79543594157207584381e+09);
INSERT INTO "people" VALUES(2,'bob',NULL,1.79543594160749816895e+09);
CREATE TABLE rejections (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    code BLOB NOT NULL,
    source TEXT,
    created REAL NOT NULL
);
CREATE INDEX faces_person ON faces(person_id);
COMMIT;
"""


def test_a_version_1_gallery_opens_and_migrates(tmp_path):
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(V1_DUMP)  # written by the version-1 code (two people enrolled)
    db.close()
    model = PixelEncoder(size=2, channels=1)
    with FaceGroups(path, model) as g:
        version = dict(g.db.execute("SELECT key, value FROM meta"))["schema_version"]
        assert int(version) == SCHEMA_VERSION == 2
        g.add(np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0.9, 0.1]], np.float32))
        assert [len(x) for x in g.recluster("agglomerative", n_clusters=2, min_cluster_size=1)] == [2, 2]
    with Gallery(path, model) as people:  # the enrolled people are untouched
        assert people.list() == [("ann", 2), ("bob", 2)]
        codes, person, names = people.codes()
        assert names == ["ann", "bob"] and person.tolist() == [0, 0, 1, 1]
        np.testing.assert_allclose(codes[0], [0.64, 0.27, 0.04, 0.02], atol=1e-6)
    with FaceGroups(path) as g:  # reopening a migrated file is a no-op
        assert len(g.groups()) == 2


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """3 people x 6 images of 8x8 colour patterns (PNG), plus one blank photo."""
    root = tmp_path_factory.mktemp("groups_photos")
    rng = np.random.default_rng(3)
    for p in range(3):
        base = rng.random((8, 8, 3))
        for i in range(6):
            img = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)
            Image.fromarray((img * 255).astype(np.uint8)).save(root / f"p{p}_{i}.png")
    return root


def test_cli_groups_round_trip(run_cli, photo_dir, tmp_path):
    gal = tmp_path / "g.db"
    code, out, err = run_cli("groups", "add", photo_dir, "--model", "pixels:8", "--gallery", gal)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "face,source,box,group,status" and len(lines) == 19
    assert all(line.endswith(",ungrouped") for line in lines[1:])
    code, out, err = run_cli("groups", "recluster", "--gallery", gal, "--method", "agglomerative", "--n-clusters", "3",
                             "--min-cluster-size", "1")
    assert code == 0, err
    rows = [r.split(",") for r in out.strip().splitlines()]
    assert rows[0] == ["group", "name", "faces"] and sorted(r[2] for r in rows[1:]) == ["6", "6", "6"]
    g1, g2 = rows[1][0], rows[2][0]
    assert run_cli("groups", "name", g1, "Ada", "--gallery", gal)[1].strip().splitlines()[1] == f"{g1},Ada,6"
    code, out, err = run_cli("groups", "show", g1, "--gallery", gal, "--out", tmp_path / "m.png")
    assert code == 0, err
    faces = [r.split(",")[0] for r in out.strip().splitlines()[1:]]
    assert len(faces) == 6 and Image.open(tmp_path / "m.png").size[0] > 48
    code, out, _ = run_cli("groups", "split", g1, faces[0], faces[1], "--gallery", gal)
    assert code == 0 and [r.split(",")[2] for r in out.strip().splitlines()[1:]] == ["4", "2"]
    code, out, _ = run_cli("groups", "merge", g2, out.strip().splitlines()[2].split(",")[0], "--gallery", gal)
    assert code == 0 and out.strip().splitlines()[1] == f"{g2},,8"
    # adding the same photos again stores nothing new
    code, out, _ = run_cli("groups", "add", photo_dir, "--model", "pixels:8", "--gallery", gal)
    assert code == 0 and all(line.endswith(",known") for line in out.strip().splitlines()[1:])
    code, out, _ = run_cli("groups", "list", "--gallery", gal)
    assert sorted(r.split(",")[2] for r in out.strip().splitlines()[1:]) == ["4", "6", "8"]


def test_cli_groups_bad_input(run_cli, photo_dir, tmp_path):
    gal = tmp_path / "g.db"
    assert run_cli("groups", "list", "--gallery", gal)[0] == 2  # no gallery yet
    run_cli("groups", "add", photo_dir, "--model", "pixels:8", "--gallery", gal)
    code, _, err = run_cli("groups", "merge", "1", "77", "--gallery", gal)
    assert code == 2 and "no group" in err
    code, _, err = run_cli("groups", "add", photo_dir, "--model", "pixels:4", "--gallery", gal)
    assert code == 2 and "another model" in err
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(blank)
    code, out, err = run_cli("groups", "add", blank, "--model", "pixels:8", "--gallery", gal, "--detect")
    assert code == 0 and out.strip().splitlines()[1] == f",{blank},,,no face" and "no face found" in " ".join(err.split())
