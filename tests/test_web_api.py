"""The web app's JSON API, in-process through FastAPI's TestClient, on a PCA model of
`lfw_subset()` faces written to a temporary folder (`web_helpers`). The people routes are tested
in `test_web_api_people`."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

# build_site is imported from here by test_web_browser and test_web_schema
from web_helpers import N_FACES, api_client, build_site, png, shared_site, upload  # noqa: E402,F401


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return shared_site(tmp_path_factory)


@pytest.fixture(scope="module")
def client(site):
    from facespace.web import create_app

    with api_client(create_app(model=site["model"], index=site["index"], gallery=site["gallery"])) as c:
        yield c


# --- info, index, pictures ---------------------------------------------------------------------------
def test_info_describes_model_and_index(client):
    info = client.get("/api/info").json()
    assert info["model_kind"] == "pca" and info["image_shape"] == [32, 32, 3] and info["code_size"] == 16
    assert info["index_size"] == N_FACES and info["metric"] == "cosine"
    assert info["features"]["decode"] and info["features"]["gallery"]


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for src in ("/static/app.js", "/static/style.css"):
        assert src in page.text
        assert client.get(src).status_code == 200
    from facespace.web.state import STATIC

    for f in STATIC.iterdir():  # nothing is fetched from the network
        text = f.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name


def test_openapi_document_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/info", "/api/index", "/api/images/{id}", "/api/codes/{id}", "/api/codes/{id}/decoded.png",
              "/api/decode", "/api/search", "/api/faces", "/api/verify", "/api/morph", "/api/explain",
              "/api/identify", "/api/enroll", "/api/people", "/api/reject", "/api/clusters"):
        assert p in paths, p


def test_index_pages_through_every_id(client):
    first = client.get("/api/index", params={"offset": 0, "limit": 25}).json()
    rest = client.get("/api/index", params={"offset": 25, "limit": 500}).json()
    ids = [it["id"] for it in first["items"] + rest["items"]]
    assert first["total"] == N_FACES and ids == list(range(N_FACES))
    assert first["items"][3]["label"] == "face_003.png" and first["items"][3]["image_url"] == "/api/images/3"


def test_image_is_the_file_the_index_recorded(client, site):
    from facespace.data import load_images

    r = client.get("/api/images/7")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    got = load_images([r.content], size=32)[0]
    want = load_images([str(site["faces"] / "face_007.png")], size=32)[0]
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6
    big = client.get("/api/images/7", params={"size": 96})
    assert load_images([big.content], size=96, crop=None).shape == (1, 96, 96, 3)


@pytest.mark.parametrize("url", ["/api/images/999", "/api/codes/60", "/api/codes/123456/decoded.png"])
def test_unknown_id_is_404_naming_it(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "no face with id" in r.json()["detail"]


@pytest.mark.parametrize("url", ["/api/images/..%2F..%2Fetc%2Fpasswd", "/api/images/../../etc/passwd",
                                 "/api/images/-1", "/api/images/1.5", "/api/images/%2Fetc%2Fpasswd",
                                 "/api/images/99999999999999999999999", "/static/..%2F..%2Fapp.py",
                                 "/static/../app.py"])
def test_paths_from_the_client_never_reach_a_file(client, url):
    r = client.get(url)
    assert r.status_code in (404, 422)
    assert b"root:" not in r.content and b"def create_app" not in r.content


def test_code_and_decoded_code_match_the_model(client, site):
    from facespace.models.registry import load_model
    from facespace.index import Index

    model, index = load_model(site["model"]), Index.load(site["index"])
    code = client.get("/api/codes/4").json()
    assert np.allclose(code["code"], index.reconstruct([4])[0], atol=1e-5)
    from facespace.data import load_images

    png_face = load_images([client.get(code["decoded_url"]).content], size=32)[0]
    want = np.clip(model.decode(index.reconstruct([4])), 0, 1)[0]
    assert np.abs(png_face - want).max() <= 1 / 255 + 1e-6


def test_decode_any_code_and_refuse_wrong_sizes(client, site):
    from facespace.models.registry import load_model

    model = load_model(site["model"])
    z = np.zeros(16)
    r = client.post("/api/decode", json={"code": z.tolist()})
    assert r.status_code == 200 and r.json()["image"].startswith("data:image/png;base64,")
    from base64 import b64decode

    from facespace.data import load_images

    face = load_images([b64decode(r.json()["image"].split(",", 1)[1])], size=32)[0]
    assert np.abs(face - np.clip(model.decode(z[None].astype(np.float32))[0], 0, 1)).max() <= 1 / 255 + 1e-6
    wrong = client.post("/api/decode", json={"code": [0.0] * 3})
    assert wrong.status_code == 400 and "3" in wrong.json()["detail"] and "16" in wrong.json()["detail"]
    assert client.post("/api/decode", json={"code": "abc"}).status_code == 422
    assert client.post("/api/decode", json={"code": [1e300] * 16}).status_code == 400


# --- search ---------------------------------------------------------------------------------------------
def test_search_upload_finds_itself_first(client, site):
    r = client.post("/api/search", files=upload(site, 5), data={"k": "4"})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok"
    hits = body["neighbours"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4] and hits[0]["id"] == 5 and hits[0]["distance"] < 1e-5
    assert all(a["distance"] <= b["distance"] for a, b in zip(hits, hits[1:]))
    assert body["query"].startswith("data:image/png") and body["reconstruction"].startswith("data:image/png")


def test_search_by_id_matches_search_by_upload(client, site):
    by_id = client.post("/api/search", data={"id": "12", "k": "5"}).json()["neighbours"]
    by_file = client.post("/api/search", files=upload(site, 12), data={"k": "5"}).json()["neighbours"]
    assert [h["id"] for h in by_id] == [h["id"] for h in by_file]
    assert np.allclose([h["distance"] for h in by_id], [h["distance"] for h in by_file], atol=1e-4)


def test_search_k_larger_than_the_index_returns_everything(client):
    hits = client.post("/api/search", data={"id": "0", "k": "100"}).json()["neighbours"]
    assert sorted(h["id"] for h in hits) == list(range(N_FACES))


@pytest.mark.parametrize("files,status,words", [
    ({"file": ("junk.png", b"\x00\x01 not an image at all", "image/png")}, 400, "not an image"),
    ({"file": ("empty.png", b"", "image/png")}, 400, "empty"),
    ({"file": ("notes.txt", b"hello", "text/plain")}, 415, "not an image"),
    ({"file": ("trunc.png", None, "image/png")}, 400, "junk"),
])
def test_bad_uploads_are_refused_with_a_message(client, files, status, words):
    if files["file"][1] is None:  # a PNG cut in half
        whole = png(np.full((64, 64, 3), 100, np.uint8) + np.arange(64, dtype=np.uint8)[:, None, None])
        files = {"file": ("trunc.png", whole[: len(whole) // 2], "image/png")}
        words = "trunc.png"
    r = client.post("/api/search", files=files)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_too_big_upload_is_413(client):
    r = client.post("/api/search", files={"file": ("big.png", b"\x89PNG" + b"0" * (10 * 2**20 + 10), "image/png")})
    assert r.status_code == 413 and "MB" in r.json()["detail"]
    huge = client.post("/api/search", files={"file": ("huge.png", b"0" * (90 * 2**20), "image/png")})
    assert huge.status_code == 413


def test_pixel_limit_refuses_a_decompression_bomb(site):
    from facespace.web import create_app

    bomb = png(np.zeros((400, 400, 3), np.uint8))  # tiny file, 160,000 pixels
    with api_client(create_app(model=site["model"], index=site["index"], max_pixels=100_000)) as small:
        r = small.post("/api/search", files={"file": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 400 and "more than the limit of 100,000" in r.json()["detail"] and "max_pixels" not in r.json()["detail"]


def test_search_needs_a_face_and_refuses_both(client, site):
    assert client.post("/api/search", data={"k": "3"}).status_code == 422
    both = client.post("/api/search", files=upload(site, 1), data={"id": "2"})
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    assert client.post("/api/search", data={"id": "5000"}).status_code == 404
    assert client.post("/api/search", data={"id": "abc"}).status_code == 422
    assert client.post("/api/search", data={"id": "1", "k": "0"}).status_code == 422


# --- whole photos -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo():
    from skimage.data import astronaut

    return png(astronaut())  # one face


def test_detect_uses_the_face_in_a_photo(client, photo):
    r = client.post("/api/search", files={"file": ("astronaut.png", photo, "image/png")},
                    data={"detect": "true", "k": "3"})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and len(body["neighbours"]) == 3
    det = body["detection"]
    assert det["status"] == "ok" and det["chosen"] == 0 and len(det["faces"]) >= 1
    x, y, w, h = det["faces"][0]["box"]
    assert 120 < x + w / 2 < 260 and 40 < y + h / 2 < 160  # the astronaut's face, upper middle of 512x512
    assert det["photo"].startswith("data:image/png")


def test_detect_reports_no_face_without_error(client):
    blank = png(np.full((200, 300, 3), 128, np.uint8))
    for url, data in (("/api/search", {"detect": "true"}), ("/api/identify", {"detect": "true"})):
        r = client.post(url, files={"file": ("wall.png", blank, "image/png")}, data=data)
        assert r.status_code == 200 and r.json()["status"] == "no_face"
        assert "no face found in wall.png" in r.json()["message"]
    r = client.post("/api/faces", files={"file": ("wall.png", blank, "image/png")})
    assert r.status_code == 200 and r.json()["status"] == "no_face" and r.json()["detection"]["faces"] == []


def test_detect_several_faces_each_with_its_box(client, photo):
    from PIL import Image

    one = Image.open(io.BytesIO(photo)).convert("RGB")
    two = Image.new("RGB", (1024, 512))
    two.paste(one, (0, 0))
    two.paste(one, (512, 0))
    r = client.post("/api/faces", files={"file": ("pair.png", png(np.asarray(two)), "image/png")})
    faces = r.json()["detection"]["faces"]
    assert r.status_code == 200 and len(faces) >= 2
    centres = sorted(f["box"][0] + f["box"][2] / 2 for f in faces)
    assert centres[0] < 512 < centres[-1]
    # a face number beyond those found is a clear 400
    bad = client.post("/api/search", files={"file": ("pair.png", png(np.asarray(two)), "image/png")},
                      data={"detect": "true", "face": "50"})
    assert bad.status_code == 400 and "choose face 0 to" in bad.json()["detail"]


# --- two faces --------------------------------------------------------------------------------------
def test_verify_same_image_is_same_and_threshold_decides(client, site):
    same = client.post("/api/verify", files={**upload(site, 3, "a"), **upload(site, 3, "b")},
                       data={"threshold": "0.1"}).json()
    assert same["status"] == "ok" and same["distance"] == pytest.approx(0.0, abs=1e-5) and same["same"] is True
    other = client.post("/api/verify", data={"id_a": "3", "id_b": "40", "threshold": "0.1"}).json()
    from facespace.index import Index
    from facespace.people.distances import pair_distances

    index = Index.load(site["index"])
    want = float(pair_distances(index.reconstruct([3]), index.reconstruct([40]))[0])
    assert other["distance"] == pytest.approx(want, abs=1e-4)
    assert other["same"] is (want <= 0.1) and other["threshold"] == 0.1
    none = client.post("/api/verify", data={"id_a": "3", "id_b": "40"}).json()
    assert none["threshold"] is None and none["same"] is None and "calibrate" in none["message"]


def test_verify_needs_both_faces(client):
    r = client.post("/api/verify", data={"id_a": "1"})
    assert r.status_code == 422 and "face B" in r.json()["detail"]


def test_morph_runs_from_a_to_b(client, site):
    from facespace.models.registry import load_model
    from facespace.data import load_images
    from facespace.pipelines.generation import morph
    from base64 import b64decode

    r = client.post("/api/morph", data={"id_a": "1", "id_b": "2", "steps": "5"})
    frames = r.json()["frames"]
    assert r.status_code == 200 and len(frames) == 5
    got = load_images([b64decode(f.split(",", 1)[1]) for f in frames], size=32)
    faces = load_images([str(site["faces"] / f"face_{i:03d}.png") for i in (1, 2)], size=32)
    want = morph(load_model(site["model"]), faces[0], faces[1], steps=5)
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6
    assert client.post("/api/morph", data={"id_a": "1", "id_b": "2", "steps": "1"}).status_code == 422


def test_explain_shows_the_pair(client, site):
    pytest.importorskip("facespace.pipelines.explanation")
    r = client.post("/api/explain", files={**upload(site, 3, "a"), **upload(site, 9, "b")})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and body["picture"].startswith("data:image/png")
    assert body["distance"] > 0


# --- clusters ---------------------------------------------------------------------------------------------
def test_clusters_partition_the_index_and_are_cached(client, site):
    from facespace.people.clustering import cluster
    from facespace.index import Index

    r = client.get("/api/clusters", params={"method": "hdbscan", "min_cluster_size": 3, "members": 500})
    body = r.json()
    index = Index.load(site["index"])
    labels = cluster(index.reconstruct(index.ids), "hdbscan", min_cluster_size=3, min_samples=3)
    assert body["n_clusters"] == labels.max() + 1 and body["noise"] == int((labels < 0).sum())
    for c in body["clusters"]:
        assert c["size"] == len(c["members"]) and sorted(m["id"] for m in c["members"]) == \
            sorted(index.ids[labels == c["cluster"]].tolist())
    again = client.get("/api/clusters", params={"method": "hdbscan", "min_cluster_size": 3, "members": 2}).json()
    assert [c["size"] for c in again["clusters"]] == [c["size"] for c in body["clusters"]]
    assert all(len(c["members"]) <= 2 for c in again["clusters"])
    assert client.get("/api/clusters", params={"method": "kmeans"}).status_code == 422


def test_model_of_another_index_is_refused(site, tmp_path):
    from facespace.models.registry import save_model
    from facespace.errors import FacespaceError
    from facespace.models.pca import PCAAutoencoder
    from facespace.web import create_app

    other = save_model(PCAAutoencoder(code_size=16).fit(np.random.default_rng(0).random((40, 32, 32, 3),
                                                                                         dtype=np.float32)),
                       tmp_path / "other.safetensors")
    with pytest.raises(FacespaceError, match="another model"):
        create_app(model=other, index=site["index"])
    with pytest.raises(FacespaceError, match="no such file|not"):
        create_app(model=site["model"], index=tmp_path / "missing.index")


# --- facespace serve ----------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_prints_the_url_and_runs_the_app_on_loopback(run_cli, site, monkeypatch):
    import uvicorn

    seen = {}

    def run(server, sockets):  # the socket is bound and listening before the URL is printed (#27.15)
        (sock,) = sockets
        seen.update(app=server.config.app, host=sock.getsockname()[0], port=sock.getsockname()[1])
        sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    port = free_port()
    code, out, err = run_cli("serve", "--index", site["index"], "--model", site["model"], "--gallery",
                             site["gallery"], "--port", str(port))
    assert code == 0, err
    assert seen["host"] == "127.0.0.1" and seen["port"] == port
    assert f"http://127.0.0.1:{port}/" in err and out == ""
    assert len(seen["app"].state.facespace.index) == N_FACES
    # without --model, the checkpoint the index records
    code, _, err = run_cli("serve", "--index", site["index"], "--port", str(free_port()))
    assert code == 0 and seen["app"].state.facespace.model.kind == "pca"
    # a port already taken: said before anything is printed as served
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        code, _, err = run_cli("serve", "--index", site["index"], "--port", str(taken.getsockname()[1]))
    assert code == 2 and "cannot listen on 127.0.0.1" in err and "--port" in err and "open http" not in err


def test_serve_bad_files_exit_2_with_a_message(run_cli, site, tmp_path):
    code, _, err = run_cli("serve", "--index", tmp_path / "nope.index")
    assert code == 2 and "nope.index" in err
    code, _, err = run_cli("serve", "--index", site["index"], "--gallery", tmp_path)
    assert code == 2 and "folder" in err
    code, out, _ = run_cli("serve", "--help")
    assert code == 0 and "--gallery" in out


def test_a_big_json_body_is_refused_early_and_no_error_echoes_the_input(client):
    """#27.13: a 5 MB JSON body gets 413 before it is parsed; a malformed body's 422 names what is
    wrong without sending the input back."""
    big = '{"code": [' + ",".join(["0.5"] * 1_000_000) + "]}"
    r = client.post("/api/decode", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "JSON body is at most" in r.json()["detail"] and len(r.content) < 1000
    junk = '{"code": "' + "x" * 200_000 + '"}'
    r = client.post("/api/decode", content=junk, headers={"content-type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 2000 and "xxxx" not in r.text
    assert r.json()["detail"][0]["loc"][-1] == "code"
