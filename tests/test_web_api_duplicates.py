"""The web app's near-duplicates: a threshold learned from the index itself, as the CLI learns it."""

from __future__ import annotations

import shutil

import pytest

from web_helpers import api_client, build_site


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from facespace.models.registry import load_model
    from facespace.pipelines.indexing import build_index
    from facespace.web.app import create_app

    root = tmp_path_factory.mktemp("dup-site")
    site = build_site(root, n=40)
    faces = site["faces"]
    shutil.copy(faces / "face_003.png", faces / "zz_copy_of_003.png")  # a planted byte-identical copy
    model = load_model(site["model"])
    index = build_index(model, str(faces))
    index.save(root / "dup.index")
    return api_client(create_app(model=site["model"], index=root / "dup.index"))


def test_the_planted_copy_is_found_with_a_learned_threshold(client):
    r = client.get("/api/duplicates")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["level"] == "near" and body["learned"] and body["how"] in ("learned", "decoded")
    assert body["thresholds"]["exact"] <= body["thresholds"]["near"] <= body["thresholds"]["similar"]
    assert len(body["copy_quantiles"]) == 5 and len(body["distinct_quantiles"]) == 5
    labels = [{i["label"] for i in g["items"]} for g in body["groups"]]
    assert {"face_003.png", "zz_copy_of_003.png"} in labels


def test_a_given_threshold_and_a_bad_level(client):
    body = client.get("/api/duplicates", params={"max_distance": 0.0}).json()
    assert body["how"] == "given" and body["max_distance"] == 0.0
    assert any(len(g["items"]) == 2 for g in body["groups"])  # identical files: distance 0
    assert client.get("/api/duplicates", params={"level": "loose"}).status_code == 422
