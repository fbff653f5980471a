"""Which identity model a command uses when none is named: the one named, else the gallery's own,
else the default (dlib where its extra is installed, else the built-in faces-id)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest
from people_helpers import TinyConfig, TinyEncoder, write_people

from facespace.models import registry
from facespace.checkpoint import weights_hash
from facespace.models.registry import default_identity_model, load_model, save_model
from facespace.people.gallery.store import recorded_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity-default")
    people = write_people(root / "people", 3, 4, ext=".png", seed=3)
    model = save_model(TinyEncoder(TinyConfig(size=16, channels=3)), root / "tiny.safetensors")
    return {"people": people, "model": str(model)}


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def enrol_all(run_cli, world, gallery, *model):
    for name, files in world["people"].items():
        code, _, err = run_cli("people", "enroll", name, *files[:3], *model, "--gallery", gallery, "--force",
                               "--crop", "none")
        assert code == 0, err


def test_the_default_is_the_first_identity_model_installed(monkeypatch):
    monkeypatch.setattr(registry, "extra_available", lambda name: False)
    assert default_identity_model() == "faces-id"
    monkeypatch.setattr(registry, "extra_available", lambda name: name == "dlib")
    assert default_identity_model() == "dlib"


def test_a_gallery_answers_with_its_own_model_when_none_is_named(run_cli, world, tmp_path):
    g = tmp_path / "g.db"
    enrol_all(run_cli, world, g, "--model", world["model"])
    assert recorded_model(g) == world["model"]  # a checkpoint file: its path
    held = weights_hash(load_model(world["model"]))
    assert recorded_model(g, other_than=held) is None and recorded_model(g, other_than="0" * 16) == world["model"]
    probes = [files[3] for files in world["people"].values()]
    code, named, err = run_cli("people", "identify", *probes, "--model", world["model"], "--gallery", g, "--crop", "none")
    assert code == 0, err
    code, unnamed, err = run_cli("people", "identify", *probes, "--gallery", g, "--crop", "none")
    assert code == 0, err
    assert unnamed == named and "default identity model" not in err
    assert [r["name"] for r in rows(unnamed)] == list(world["people"])


def test_a_builtin_gallery_records_the_name_and_is_not_switched_to_the_default(run_cli, world, tmp_path, monkeypatch):
    g = tmp_path / "g.db"
    enrol_all(run_cli, world, g, "--model", "faces-id")
    assert recorded_model(g) == "faces-id"
    monkeypatch.setattr(registry, "extra_available", lambda name: name == "dlib")  # the default would be dlib
    probe = world["people"]["P01"][3]
    code, out, err = run_cli("people", "identify", probe, "--gallery", g, "--crop", "none")
    assert code == 0, err  # not refused as "another model"
    assert rows(out)[0]["name"] == "P01"
    # enrolling more into it keeps its model too
    code, out, err = run_cli("people", "enroll", "P01", probe, "--gallery", g, "--force", "--crop", "none")
    assert code == 0 and out.strip() == "P01,4", err  # 3 + 1: its total


def test_a_gallery_older_than_the_name_row_is_found_by_path_or_extra_kind(run_cli, world, tmp_path):
    g = tmp_path / "g.db"
    enrol_all(run_cli, world, g, "--model", world["model"])
    with sqlite3.connect(g) as db:
        db.execute("DELETE FROM meta WHERE key = 'model_builtin'")
    assert recorded_model(g) == world["model"]
    with sqlite3.connect(g) as db:
        db.execute("UPDATE meta SET value = '/gone/model.safetensors' WHERE key = 'model_path'")
    assert recorded_model(g) is None  # the caller's default then meets the gallery's model check
    with sqlite3.connect(g) as db:
        db.execute("UPDATE meta SET value = 'dlib' WHERE key = 'model_kind'")
    assert recorded_model(g) == "dlib"
    assert recorded_model(tmp_path / "none.db") is None
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a gallery at all")
    assert recorded_model(bad) is None  # opening it then says what is wrong:
    code, out, err = run_cli("people", "identify", world["people"]["P00"][0], "--model", world["model"], "--gallery", bad)
    assert code == 2 and "not a facespace gallery" in " ".join(err.split()) and out == ""


def test_without_a_gallery_the_default_is_used_and_named(run_cli, world, monkeypatch):
    monkeypatch.setattr(registry, "extra_available", lambda name: False)
    a, b = world["people"]["P00"][:2]
    code, out, err = run_cli("people", "verify", a, b, "--crop", "none")
    assert code == 0, err
    assert json.loads(out)["model"] == "faces-id"
    assert "model: faces-id (the default identity model" in " ".join(err.split()) and "facespace[dlib]" in err
