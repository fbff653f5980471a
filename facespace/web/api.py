"""API routes on faces and codes: info, the index's items and pictures, search, verify, morph,
explain and decode. (People and clusters are in `api_people.py`.)

Routes are plain `def`, so FastAPI runs them in its threadpool; a face is given as a multipart
upload (with `detect` for whole photos) or as an index id (`id`, `id_a`, `id_b`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response

from facespace.web.state import WebError, WebState
from facespace.protocol import METRICS
from facespace.web.schemas import (
    CodeOut, DecodeIn, Decoded, ErrorOut, ExplainResult, Features, IndexItem, IndexPage, Info, MorphResult,
    Neighbour, SearchResult, VerifyResult,
)
from facespace.web.uploads import (
    data_uri, decode_codes, decoded_item, faces_from_upload, has_file, index_face, item_meta, no_face_message,
    one_face,
)

MAX_ID = 2**62  # ids are int64; larger numbers are no id at all
ERRORS = {400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 413: {"model": ErrorOut},
          415: {"model": ErrorOut}, 422: {"model": ErrorOut}}
PNG = {200: {"content": {"image/png": {}}, "description": "A PNG picture."}}

router = APIRouter()


def state_of(request: Request) -> WebState:
    return request.app.state.facespace


def _decoder(state: WebState) -> bool:
    from facespace.protocol import has_decoder

    return has_decoder(state.model)


def _verify_settings(state: WebState) -> tuple[float | None, str]:
    """The model's calibrated threshold (or None) and the metric it is for."""
    from facespace.people.verification import stored_threshold

    stored = stored_threshold(state.model) or {}
    metric = stored.get("metric") or (state.index.metric if state.index.metric in METRICS else "cosine")
    t = stored.get("threshold")
    return (float(t) if t is not None else None), str(metric)


def item(state: WebState, id_: int, meta: dict[str, Any] | None = None) -> IndexItem:
    """An index item as the API shows it."""
    meta = item_meta(state, id_) if meta is None else meta
    path = str(meta.get("path") or "")
    label = os.path.basename(path) if path and not path.startswith("embedded:") else (path.split(":", 1)[-1] or f"#{id_}")
    name = meta.get("name")
    return IndexItem(id=int(id_), name=None if name in (None, "") else str(name), label=label or f"#{id_}",
                     image_url=f"/api/images/{int(id_)}")


def encode(state: WebState, images: np.ndarray) -> np.ndarray:
    from facespace.pipelines.codes import encode as encode_images

    with state.lock:
        return encode_images(state.model, images)


# --- about the server ------------------------------------------------------------------------------
@router.get("/info", response_model=Info, summary="The model, the index and what this server offers")
def info(request: Request) -> Info:
    state = state_of(request)
    threshold, _ = _verify_settings(state)
    reject = state.gallery is not None
    return Info(
        model_kind=str(getattr(state.model, "kind", type(state.model).__name__)),
        image_shape=list(state.image_shape), code_size=int(state.model.code_size), index_size=len(state.index),
        metric=state.index.metric, verify_threshold=threshold, max_upload_bytes=state.max_upload_bytes,
        features=Features(decode=_decoder(state), gallery=state.gallery is not None,
                          explain=True, quality=True, reject=reject),
    )


@router.get("/index", response_model=IndexPage, responses=ERRORS, summary="The index's faces, a page at a time")
def index_items(request: Request, offset: int = Query(0, ge=0, le=MAX_ID), limit: int = Query(48, ge=1, le=500)) -> IndexPage:
    state = state_of(request)
    ids = state.index.ids[offset : offset + limit]
    metas = state.index.get_metadata(ids) if len(ids) else []
    return IndexPage(total=len(state.index), offset=offset, items=[item(state, int(i), m) for i, m in zip(ids, metas)])


@router.get("/images/{id}", response_class=Response, responses={**PNG, **ERRORS},
            summary="An index item's own picture (PNG), by integer id only")
def image(request: Request, id: int = Path(ge=0, le=MAX_ID), size: int = Query(0, ge=0, le=256)) -> Response:
    """The face from the file the index recorded for `id` (else its decoded code); `size` 0 = the model's."""
    from facespace.grid import png_bytes

    state = state_of(request)
    face = index_face(state, id, size=size or None, grayscale=False)
    return Response(png_bytes(face), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/codes/{id}", response_model=CodeOut, responses=ERRORS, summary="An index item's stored code")
def code(request: Request, id: int = Path(ge=0, le=MAX_ID)) -> CodeOut:
    state = state_of(request)
    item_meta(state, id)
    z = state.index.reconstruct([id])[0]
    return CodeOut(id=id, code=[float(v) for v in z],
                   decoded_url=f"/api/codes/{id}/decoded.png" if _decoder(state) else None)


@router.get("/codes/{id}/decoded.png", response_class=Response, responses={**PNG, **ERRORS},
            summary="An index item's stored code turned back into a face")
def decoded(request: Request, id: int = Path(ge=0, le=MAX_ID)) -> Response:
    from facespace.grid import png_bytes

    return Response(png_bytes(decoded_item(state_of(request), id)), media_type="image/png")


@router.post("/decode", response_model=Decoded, responses=ERRORS, summary="Any code turned into a face")
def decode(request: Request, body: DecodeIn) -> Decoded:
    state = state_of(request)
    if not _decoder(state):
        decoded_item(state, int(state.index.ids[0]))  # raises the 409 that names the model
    z = np.asarray(body.code, np.float64)
    if not np.isfinite(z).all() or np.abs(z).max(initial=0) > 1e6:
        raise WebError(400, "the code holds NaN, infinite or huge (> 1e6) values; send finite numbers")
    if len(z) != int(state.model.code_size):
        raise WebError(400, f"the code has {len(z)} numbers but this model's codes have {state.model.code_size}")
    return Decoded(image=data_uri(decode_codes(state, z.astype(np.float32)[None])[0]))


# --- one face ----------------------------------------------------------------------------------------
@router.post("/search", response_model=SearchResult, responses=ERRORS,
             summary="A face's reconstruction and its k nearest faces in the index")
def search(
    request: Request,
    file: UploadFile | None = File(None, description="A face crop, or a whole photo with detect."),
    id: int | None = Form(None, ge=0, le=MAX_ID, description="Or an index id."),
    k: int = Form(8, ge=1, le=100),
    detect: bool = Form(False, description="The upload is a whole photo: find the faces first."),
    face: int = Form(0, ge=0, le=1000, description="Which detected face (best first)."),
) -> SearchResult:
    state = state_of(request)
    x, detection = one_face(state, file, id, detect=detect, face=face, slot="the query face")
    if x is None:
        return SearchResult(status="no_face", message=no_face_message([detection]), detection=detection)
    z = state.index.reconstruct([id]) if id is not None and not has_file(file) else encode(state, x)
    recon = decode_codes(state, z)[0] if _decoder(state) else None
    distances, ids = state.index.search(z, min(k, len(state.index)))
    keep = ids[0] >= 0
    metas = state.index.get_metadata(ids[0][keep])
    if state.index.metric in METRICS:  # float rounding can leave -1e-7 for the face itself
        distances = np.maximum(distances, 0.0)
    hits = [Neighbour(rank=r + 1, distance=float(d), **item(state, int(i), m).model_dump())
            for r, (i, d, m) in enumerate(zip(ids[0][keep], distances[0][keep], metas))]
    return SearchResult(status="ok", query=data_uri(x[0]), reconstruction=None if recon is None else data_uri(recon),
                        neighbours=hits, detection=detection)


@router.post("/faces", response_model=SearchResult, responses=ERRORS,
             summary="Find the faces in a whole photo (boxes and crops), without searching")
def faces(request: Request, file: UploadFile = File(..., description="A whole photo.")) -> SearchResult:
    found = faces_from_upload(state_of(request), file, detect=True)
    if len(found.images) == 0:
        return SearchResult(status="no_face", message=no_face_message([found.detection]), detection=found.detection)
    return SearchResult(status="ok", detection=found.detection)


# --- two faces ---------------------------------------------------------------------------------------
def _two_faces(state: WebState, a: Any, id_a: int | None, b: Any, id_b: int | None, detect: bool,
               face_a: int, face_b: int) -> tuple[np.ndarray | None, np.ndarray | None, list]:
    xa, da = one_face(state, a, id_a, detect=detect, face=face_a, slot="face A")
    xb, db = one_face(state, b, id_b, detect=detect, face=face_b, slot="face B")
    return xa, xb, [d for d in (da, db) if d is not None]


A_FILE = File(None, description="Face A: a face crop, or a whole photo with detect.")
B_FILE = File(None, description="Face B.")
A_ID = Form(None, ge=0, le=MAX_ID, description="Or face A as an index id.")
B_ID = Form(None, ge=0, le=MAX_ID, description="Or face B as an index id.")
DETECT = Form(False, description="Uploads are whole photos: find the faces first.")
FACE = Form(0, ge=0, le=1000, description="Which detected face (best first).")


@router.post("/verify", response_model=VerifyResult, responses=ERRORS,
             summary="Are two faces the same person? Distance, threshold and verdict")
def verify(
    request: Request, a: UploadFile | None = A_FILE, id_a: int | None = A_ID, b: UploadFile | None = B_FILE,
    id_b: int | None = B_ID, detect: bool = DETECT, face_a: int = FACE, face_b: int = FACE,
    threshold: float | None = Form(None, ge=0.0, le=1e6, description="Override the model's calibrated threshold."),
) -> VerifyResult:
    from facespace.people.distances import pair_distances

    state = state_of(request)
    stored, metric = _verify_settings(state)
    xa, xb, detections = _two_faces(state, a, id_a, b, id_b, detect, face_a, face_b)
    if xa is None or xb is None:
        return VerifyResult(status="no_face", message=no_face_message(detections), metric=metric, detections=detections)
    z = encode(state, np.concatenate([xa, xb]))
    d = float(pair_distances(z[:1], z[1:], metric=metric)[0])
    d = 0.0 if abs(d) < 1e-7 else d
    t = threshold if threshold is not None else stored
    message = None if t is not None else ("this model has no calibrated threshold, so there is no verdict; give one, "
                                          "or calibrate with `facespace people calibrate --model MODEL --pairs FILE`")
    return VerifyResult(status="ok", message=message, faces=[data_uri(xa[0]), data_uri(xb[0])], distance=d,
                        threshold=t, same=None if t is None else bool(d <= t), metric=metric, detections=detections)


@router.post("/morph", response_model=MorphResult, responses=ERRORS,
             summary="Decoded faces along the straight line between two faces' codes")
def morph(
    request: Request, a: UploadFile | None = A_FILE, id_a: int | None = A_ID, b: UploadFile | None = B_FILE,
    id_b: int | None = B_ID, detect: bool = DETECT, face_a: int = FACE, face_b: int = FACE,
    steps: int = Form(9, ge=2, le=32, description="Frames, both ends included."),
) -> MorphResult:
    from facespace.pipelines.generation import morph as morph_faces

    state = state_of(request)
    if not _decoder(state):
        decoded_item(state, int(state.index.ids[0]))  # the 409 naming the model
    xa, xb, detections = _two_faces(state, a, id_a, b, id_b, detect, face_a, face_b)
    if xa is None or xb is None:
        return MorphResult(status="no_face", message=no_face_message(detections), detections=detections)
    with state.lock:
        frames = morph_faces(state.model, xa[0], xb[0], steps=steps)
    return MorphResult(status="ok", frames=[data_uri(f) for f in frames], detections=detections)


@router.post("/explain", response_model=ExplainResult, responses=ERRORS,
             summary="Why two faces match or not: faces, reconstructions and a difference heatmap")
def explain(
    request: Request, a: UploadFile | None = A_FILE, id_a: int | None = A_ID, b: UploadFile | None = B_FILE,
    id_b: int | None = B_ID, detect: bool = DETECT, face_a: int = FACE, face_b: int = FACE,
) -> ExplainResult:
    from facespace.pipelines.explanation import explain as explain_pair, explanation_picture

    state = state_of(request)
    _, metric = _verify_settings(state)
    xa, xb, detections = _two_faces(state, a, id_a, b, id_b, detect, face_a, face_b)
    if xa is None or xb is None:
        return ExplainResult(status="no_face", message=no_face_message(detections), detections=detections)
    with state.lock:
        e = explain_pair(state.model, xa[0], xb[0], metric=metric)
        picture = explanation_picture(e, scale=4)
    return ExplainResult(status="ok", picture=data_uri(picture), heatmap=data_uri(np.asarray(e.heatmap)),
                         distance=float(e.distance), threshold=None if e.threshold is None else float(e.threshold),
                         same=None if e.same is None else bool(e.same), detections=detections)
