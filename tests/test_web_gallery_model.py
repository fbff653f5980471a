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


def test_a_new_gallery_takes_the_model_it_is_given(tmp_path_factory, tmp_path, run_cli):
    """`gallery_model` is the model of a gallery not yet created; the CLI then reads it with that model."""
    site = shared_site(tmp_path_factory)
    other = save_model(TinyEncoder(TinyConfig(size=16, channels=3)), tmp_path / "other.safetensors")
    gallery = tmp_path / "people.db"
    from facespace.checkpoint import weights_hash
    from facespace.models.registry import resolve_model
    from facespace.people.gallery.store import recorded_model
    from facespace.web import create_app

    with api_client(create_app(model=site["model"], index=site["index"], gallery=gallery, gallery_model=other)) as client:
        for name, ids in {"ann": [0, 1, 2], "bob": [20, 21, 22]}.items():
            r = client.post("/api/enroll", data={"name": name, "force": "true"},
                            files=[("files", upload(site, i)["file"]) for i in ids])
            assert r.status_code == 200, r.text
    assert recorded_model(gallery) == str(other)  # the gallery records the model it was given, not the index's
    assert recorded_model(gallery, other_than=weights_hash(resolve_model(other))) is None
    code, out, err = run_cli("people", "identify", site["faces"] / "face_021.png", "--gallery", gallery, "--crop", "none")
    assert code == 0, err
    assert out.splitlines()[1].split(",")[1] == "bob"


def test_serve_gives_a_new_gallery_the_default_identity_model(tmp_path, capsys):
    from facespace.cli.serve import new_gallery_model
    from facespace.models.registry import default_identity_model

    assert new_gallery_model(None, None) is None
    existing = tmp_path / "people.db"
    existing.write_bytes(b"")
    assert new_gallery_model(existing, "faces-id") is None  # an existing gallery keeps its own model
    assert "keeps the model it was built with" in capsys.readouterr().err
    assert new_gallery_model(tmp_path / "new.db", "faces-id") == "faces-id"
    capsys.readouterr()
    assert new_gallery_model(tmp_path / "new.db", None) == default_identity_model()
    assert "default identity model" in capsys.readouterr().err
