"""The web app's people routes (enrol, identify, people, reject), in-process through FastAPI's
TestClient, on the PCA model of `lfw_subset()` faces from `web_helpers`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from web_helpers import api_client, png, shared_site, upload  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return shared_site(tmp_path_factory)


@pytest.fixture(scope="module")
def client(site):
    from facespace.web import create_app

    with api_client(create_app(model=site["model"], index=site["index"], gallery=site["gallery"])) as c:
        yield c


def enroll(client, site, name: str, ids: list[int]):
    files = [("files", (f"face_{i:03d}.png", (site["faces"] / f"face_{i:03d}.png").read_bytes(), "image/png"))
             for i in ids]
    return client.post("/api/enroll", data={"name": name, "force": "true"}, files=files)


def test_enrol_then_identify(client, site):
    r = enroll(client, site, "ann", [0, 1, 2])
    assert r.status_code == 200 and r.json()["added"] == 3 and r.json()["images"] == 3
    assert enroll(client, site, "bob", [20, 21, 22]).json()["threshold"] is not None
    people = client.get("/api/people").json()
    assert {p["name"]: p["images"] for p in people["people"]} == {"ann": 3, "bob": 3}
    for i, name in ((1, "ann"), (21, "bob")):
        body = client.post("/api/identify", files=upload(site, i)).json()
        assert body["status"] == "ok" and len(body["results"]) == 1
        res = body["results"][0]
        assert res["name"] == name and res["distance"] < 1e-5 and res["candidates"][0]["name"] == name
        if client.get("/api/info").json()["features"]["quality"]:
            assert 0.0 <= res["quality"]["score"] <= 1.0
    by_id = client.post("/api/identify", data={"id": "2"}).json()
    assert by_id["results"][0]["name"] == "ann"


def test_enrol_refuses_bad_input_and_writes_nothing(client, site):
    before = client.get("/api/people").json()["people"]
    junk = client.post("/api/enroll", data={"name": "carl"}, files=[
        ("files", ("ok.png", (site["faces"] / "face_030.png").read_bytes(), "image/png")),
        ("files", ("junk.png", b"junk", "image/png"))])
    assert junk.status_code == 400 and "junk.png" in junk.json()["detail"]
    assert client.post("/api/enroll", data={"name": "carl"}).status_code == 422
    assert client.post("/api/enroll", data={"name": ""}, files=upload(site, 30, "files")).status_code == 422
    wall = png(np.full((200, 200, 3), 90, np.uint8))
    none = client.post("/api/enroll", data={"name": "carl", "detect": "true"},
                       files=[("files", ("wall.png", wall, "image/png"))])
    assert none.status_code == 400 and "no face found in wall.png" in none.json()["detail"]
    assert client.get("/api/people").json()["people"] == before


def test_routes_without_a_gallery_say_how_to_get_one(site):
    from facespace.web import create_app

    with api_client(create_app(model=site["model"], index=site["index"])) as c:
        assert not c.get("/api/info").json()["features"]["gallery"]
        for r in (c.get("/api/people"), c.post("/api/identify", data={"id": "1"}),
                  c.post("/api/enroll", data={"name": "x"}, files=upload(site, 1, "files"))):
            assert r.status_code == 409 and "--gallery" in r.json()["detail"]


def test_reject_is_available_or_says_why(client, site):
    enroll(client, site, "dan", [40, 41])
    r = client.post("/api/reject", data={"id": "40", "name": "dan"})
    if not client.get("/api/info").json()["features"]["reject"]:
        assert r.status_code == 409 and "update facespace" in r.json()["detail"]
        return
    assert r.status_code == 200 and r.json()["rejected"]
    answer = client.post("/api/identify", data={"id": "40"}).json()["results"][0]
    assert answer["name"] != "dan"


def test_a_low_quality_upload_is_refused_by_its_file_name_with_the_pages_way_round(client, site):
    """#27.14: the refusal names the upload (not "array[0]") and the page's 'force' box, not --force."""
    blurry = np.full((32, 32, 3), 128, np.uint8)
    blurry[10:22, 10:22] += 5  # almost flat: fails sharpness and contrast
    r = client.post("/api/enroll", data={"name": "flat"}, files=[("files", ("holiday.png", png(blurry), "image/png"))])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "holiday.png (flat)" in detail and "tick 'force'" in detail
    assert "array[" not in detail and "--force" not in detail and "force=True" not in detail
