"""The people and groups verbs take what `facespace encode` takes: image URLs (read through fsspec),
folders at URLs and `.txt` lists, and answer for them exactly as for the same files on disk; a URL
that cannot be read is named and changes nothing."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from people_helpers import TinyConfig, TinyEncoder, write_people

from facespace.data.inputs import expand_images
from facespace.models.registry import save_model

fsspec = pytest.importorskip("fsspec")

ROOT = "/facespace-people-urls"  # a folder of fsspec's in-process memory:// file system
URL = "memory://" + ROOT.lstrip("/")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """3 synthetic people x 4 images on disk and the same bytes at memory:// URLs, and a tiny model."""
    root = tmp_path_factory.mktemp("people-urls")
    people = write_people(root / "people", 3, 4, ext=".png", seed=5)
    model = save_model(TinyEncoder(TinyConfig(size=16, channels=3)), root / "tiny.safetensors")
    fs = fsspec.filesystem("memory")
    urls = {}
    for name, files in people.items():
        urls[name] = [f"{URL}/people/{name}/{p.name}" for p in files]
        for p in files:
            fs.pipe(f"{ROOT}/people/{name}/{p.name}", p.read_bytes())
    yield {"root": root, "people": people, "urls": urls, "model": str(model), "fs": fs}
    if fs.exists(ROOT):
        fs.rm(ROOT, recursive=True)


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def answers(text: str) -> list[tuple[str, str, str]]:
    """The `name, distance, quality` of each identify row (the path column aside)."""
    return [(r["name"], r["distance"], r["quality"]) for r in rows(text)]


def cli(run_cli, world, *args):
    """Run a command with the tiny model on faces already cut out; assert it succeeded; its stdout."""
    code, out, err = run_cli(*args, "--model", world["model"], "--crop", "none")
    assert code == 0, err
    return out


def enrol(run_cli, world, gallery, images_of):
    """Enrol each person with `images_of(name)`; the enroll lines printed."""
    return [cli(run_cli, world, "people", "enroll", name, *images_of(name), "--gallery", gallery, "--force").strip()
            for name in world["people"]]


def test_expand_images_keeps_local_paths_as_given_and_reads_lists_and_urls(world, monkeypatch):
    monkeypatch.chdir(world["root"])
    local = expand_images(["people/P01", "./people/P00/P00_0001.png"])
    assert local == [f"people/P01/P01_{j:04d}.png" for j in range(1, 5)] + ["people/P00/P00_0001.png"]
    assert expand_images([f"{URL}/people/P01/"]) == world["urls"]["P01"]  # a folder URL, listed
    assert expand_images([world["urls"]["P02"][0]]) == world["urls"]["P02"][:1]
    (world["root"] / "some.txt").write_text("# two faces\npeople/P00/P00_0002.png\n\n" + world["urls"]["P02"][1] + "\n")
    assert expand_images(["some.txt"]) == [str(world["people"]["P00"][1].resolve()), world["urls"]["P02"][1]]


def test_enrol_and_identify_by_url_or_list_answer_as_the_same_local_files(run_cli, world, tmp_path):
    people, urls, fs = world["people"], world["urls"], world["fs"]
    local, by_url, by_list = tmp_path / "local.db", tmp_path / "url.db", tmp_path / "list.db"
    enrolled = enrol(run_cli, world, local, lambda n: people[n][:3])
    assert enrolled == [f"{n},3" for n in people]
    assert enrol(run_cli, world, by_url, lambda n: urls[n][:3]) == enrolled
    # P00: a list at a URL, its lines relative to it; P01: a local list of URLs; P02: a local list of paths
    # relative to it
    fs.pipe(f"{ROOT}/people/P00/enrol.txt", "\n".join(p.name for p in people["P00"][:3]).encode())
    try:
        (tmp_path / "P01.txt").write_text("\n".join(urls["P01"][:3]) + "\n")
        (tmp_path / "P02.txt").write_text("\n".join(os.path.relpath(p, tmp_path) for p in people["P02"][:3]))
        lists = {"P00": f"{URL}/people/P00/enrol.txt", "P01": str(tmp_path / "P01.txt"),
                 "P02": str(tmp_path / "P02.txt")}
        assert enrol(run_cli, world, by_list, lambda n: [lists[n]]) == enrolled
        probes = [people[n][3] for n in people]
        want = cli(run_cli, world, "people", "identify", *probes, "--gallery", local)
        assert [r["path"] for r in rows(want)] == [str(p) for p in probes]  # local paths print as given
        assert [r["name"] for r in rows(want)] == list(people)
        for gallery in (local, by_url, by_list):
            got = cli(run_cli, world, "people", "identify", *[urls[n][3] for n in people], "--gallery", gallery)
            assert [r["path"] for r in rows(got)] == [urls[n][3] for n in people]
            assert answers(got) == answers(want)
        # a whole folder at a URL: every image, in the order of the local folder (the list file is skipped)
        got = cli(run_cli, world, "people", "identify", f"{URL}/people", "--gallery", by_url)
        want = cli(run_cli, world, "people", "identify", world["root"] / "people", "--gallery", local)
        assert len(rows(got)) == 12 and answers(got) == answers(want)
        assert [r["path"] for r in rows(got)] == [u for n in people for u in urls[n]]
    finally:
        fs.rm(f"{ROOT}/people/P00/enrol.txt")


def test_reject_and_quality_by_url_equal_the_local_answers(run_cli, world, tmp_path):
    people, urls = world["people"], world["urls"]
    galleries = {}
    for where, files in (("local", people), ("url", urls)):
        galleries[where] = tmp_path / f"{where}.db"
        enrol(run_cli, world, galleries[where], lambda n, files=files: files[n][:3])
    got = cli(run_cli, world, "people", "reject", urls["P01"][3], "P00", "--gallery", galleries["url"])
    want = cli(run_cli, world, "people", "reject", people["P01"][3], "P00", "--gallery", galleries["local"])
    assert got == want == "P00,1\n"
    got = cli(run_cli, world, "people", "quality", urls["P02"][0], f"{URL}/people/P01")
    want = cli(run_cli, world, "people", "quality", people["P02"][0], world["root"] / "people" / "P01")
    assert len(rows(got)) == 5
    assert [r["path"] for r in rows(got)] == [urls["P02"][0], *urls["P01"]]
    assert [list(r.values())[1:] for r in rows(got)] == [list(r.values())[1:] for r in rows(want)]


def test_verify_and_explain_two_urls_as_the_same_local_files(run_cli, world, tmp_path):
    people, urls = world["people"], world["urls"]
    for a, b in ((("P00", 0), ("P00", 1)), (("P00", 0), ("P02", 2))):
        got = json.loads(cli(run_cli, world, "people", "verify", urls[a[0]][a[1]], urls[b[0]][b[1]],
                             "--max-distance", "0.5"))
        want = json.loads(cli(run_cli, world, "people", "verify", people[a[0]][a[1]], people[b[0]][b[1]],
                              "--max-distance", "0.5"))
        assert (got["a"], got["b"]) == (urls[a[0]][a[1]], urls[b[0]][b[1]])
        assert (want["a"], want["b"]) == (str(people[a[0]][a[1]]), str(people[b[0]][b[1]]))
        assert {k: v for k, v in got.items() if k not in ("a", "b")} == \
            {k: v for k, v in want.items() if k not in ("a", "b")}
    a, b = urls["P00"][0], urls["P01"][0]
    code, out, err = run_cli("people", "explain", a, b, "--model", world["model"], "--out", tmp_path / "u.png")
    assert code == 0, err
    got = json.loads(out)
    code, out, err = run_cli("people", "explain", people["P00"][0], people["P01"][0], "--model", world["model"],
                             "--out", tmp_path / "l.png")
    assert code == 0, err
    assert (got["a"], got["b"]) == (a, b) and got["distance"] == json.loads(out)["distance"]


def test_groups_add_of_a_url_folder_adds_the_faces_of_the_local_folder(run_cli, world, tmp_path):
    got = rows(cli(run_cli, world, "groups", "add", f"{URL}/people/", "--gallery", tmp_path / "url.db"))
    want = rows(cli(run_cli, world, "groups", "add", world["root"] / "people", "--gallery", tmp_path / "local.db"))
    assert len(got) == len(want) == 12
    assert [r["source"] for r in got] == [u for n in world["people"] for u in world["urls"][n]]
    assert [(r["group"], r["status"]) for r in got] == [(r["group"], r["status"]) for r in want]
    # the same faces again are known, not added twice
    again = rows(cli(run_cli, world, "groups", "add", *world["urls"]["P00"], "--gallery", tmp_path / "url.db"))
    assert [r["status"] for r in again] == ["known"] * 4


def test_a_missing_url_is_named_and_changes_no_gallery(run_cli, world, tmp_path):
    people, urls = world["people"], world["urls"]
    missing = f"{URL}/people/P00/nobody_0001.png"
    g = tmp_path / "g.db"
    enrol(run_cli, world, g, lambda n: people[n][:3])
    before = run_cli("people", "list", "--gallery", g)
    for args in (("people", "enroll", "P00", urls["P00"][3], missing, "--gallery", g, "--force"),
                 ("people", "enroll", "Nobody", missing, "--gallery", g, "--force"),
                 ("people", "identify", urls["P00"][3], missing, "--gallery", g),
                 ("people", "reject", missing, "P00", "--gallery", g),
                 ("people", "verify", urls["P00"][0], missing, "--max-distance", "0.5")):
        code, out, err = run_cli(*args, "--model", world["model"], "--crop", "none")
        assert code == 2 and out == "", args
        assert f"{missing}: no such file; check the URL" in " ".join(err.split()), err
    assert run_cli("people", "list", "--gallery", g) == before
    # a first enrolment that fails leaves no gallery behind
    code, _, err = run_cli("people", "enroll", "P00", missing, "--model", world["model"], "--gallery",
                           tmp_path / "new.db", "--force", "--crop", "none")
    assert code == 2 and missing in err and not (tmp_path / "new.db").exists()
    groups = tmp_path / "groups.db"
    cli(run_cli, world, "groups", "add", *urls["P01"], "--gallery", groups)
    faces = run_cli("groups", "faces", "--gallery", groups)
    code, out, err = run_cli("groups", "add", urls["P02"][0], missing, "--model", world["model"], "--gallery", groups,
                             "--crop", "none")
    assert code == 2 and out == "" and missing in err
    assert run_cli("groups", "faces", "--gallery", groups) == faces
