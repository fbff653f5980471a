"""The previous release's command spellings still work for one release, moved to their nouns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facespace.cli import MOVED, moved_command


def test_moved_commands_become_their_noun_and_verb():
    assert moved_command(["search", "I.index", "q.jpg", "-k", "3"]) == ["index", "search", "I.index", "q.jpg", "-k", "3"]
    assert moved_command(["faces", "p.jpg", "--out", "d"]) == ["photos", "detect", "p.jpg", "--out", "d"]
    assert moved_command(["index", "search", "I.index"]) == ["index", "search", "I.index"]  # new spellings pass
    assert moved_command([]) == []


def test_a_model_given_first_becomes_the_model_option():
    # an option that takes a value is skipped with its value; the first plain word is the model
    assert moved_command(["verify", "--metric", "l2", "m.safetensors", "a.png", "b.png", "--threshold", "1"]) == [
        "people", "verify", "--metric", "l2", "--model", "m.safetensors", "a.png", "b.png", "--max-distance", "1"]
    assert moved_command(["morph", "--detect", "m", "a", "b"]) == ["generate", "morph", "--detect", "--model", "m", "a", "b"]
    assert moved_command(["cluster", "I.index", "--gallery", "g"]) == ["index", "cluster", "I.index", "--montages", "g"]
    assert moved_command(["decode", "--help"]) == ["generate", "decode", "--help"]


def test_every_moved_command_exists_under_its_noun():
    import typer.main

    from facespace.cli import build_app

    group = typer.main.get_command(build_app())
    for old, (words, _, _) in MOVED.items():
        assert old not in group.commands or group.commands[old].hidden, old
        command = group
        for word in words:
            command = command.commands[word]


@pytest.fixture
def two_faces(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        path = tmp_path / f"f{i}.png"
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_the_old_spelling_runs_the_new_command_and_says_where_it_moved(run_cli, two_faces):
    a, b = two_faces
    code, new_out, _ = run_cli("people", "verify", a, b, "--model", "pixels:16", "--max-distance", "1", "--crop", "none")
    assert code == 0
    code, old_out, err = run_cli("verify", "pixels:16", a, b, "--threshold", "1", "--crop", "none")
    assert code == 0 and json.loads(old_out) == json.loads(new_out)
    assert "facespace people verify --model MODEL" in err and "next release" in err


def test_index_build_takes_the_old_model_first_form(run_cli, tmp_path, two_faces):
    folder = two_faces[0].parent
    code, out, err = run_cli("index", "build", "pixels:8", folder, "--out", tmp_path / "i.index", "--crop", "none")
    assert code == 0 and json.loads(out)["count"] == 2 and "index build SOURCE --model MODEL" in err
    code, _, err = run_cli("index", "build", folder, folder, folder, "--model", "pixels:8", "--out", tmp_path / "j.index")
    assert code == 2 and "give one SOURCE" in err
