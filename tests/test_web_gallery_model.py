"""The web app beside a gallery built with another model than its index's (the demo's faces-id
gallery beside its faces-ae index): the people routes answer with the gallery's own model."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from people_helpers import TinyConfig, TinyEncoder  # noqa: E402
from web_helpers import api_client, shared_site, upload  # noqa: E402

from facespace.models.registry import save_model  # noqa: E402


def test_a_gallery_of_another_model_answers_with_its_own(tmp_path_factory, tmp_path, run_cli):
    site = shared_site(tmp_path_factory)
    other = save_model(TinyEncoder(TinyConfig(size=16, channels=3)), tmp_path / "other.safetensors")
    gallery = tmp_path / "people.db"
    people = {"ann": [0, 1, 2], "bob": [20, 21, 22]}
    for name, ids in people.items():
        files = [site["faces"] / f"face_{i:03d}.png" for i in ids]
        code, _, err = run_cli("people", "enroll", name, *files, "--model", other, "--gallery", gallery, "--force",
                               "--crop", "none")
        assert code == 0, err
    from facespace.web import create_app

    with api_client(create_app(model=site["model"], index=site["index"], gallery=gallery)) as client:
        for i, name in ((1, "ann"), (21, "bob")):
            r = client.post("/api/identify", files=upload(site, i))
            assert r.status_code == 200, r.text  # not refused as "built with another model"
            assert r.json()["results"][0]["name"] == name
        r = client.post("/api/enroll", data={"name": "ann", "force": "true"}, files=[("files", upload(site, 3)["file"])])
        assert r.status_code == 200 and r.json()["images"] == 4, r.text  # enrolled with the gallery's model
        code, out, _ = run_cli("people", "identify", site["faces"] / "face_003.png", "--gallery", gallery, "--crop", "none")
        assert code == 0 and out.splitlines()[1].split(",")[1] == "ann"  # the CLI reads it with the same model
