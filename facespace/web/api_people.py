"""API routes on people and groups: identify against the gallery, enrol, list, "not this person",
and the index's faces clustered into galleries.

The gallery is opened per request (an SQLite connection belongs to one thread); each change is one
transaction inside `facespace.people.gallery.gallery.Gallery`, so an enrolment is all or nothing.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from facespace.people.quality import LowQualityError
from facespace.web.api import ERRORS, FACE, MAX_ID, item, state_of
from facespace.web.state import WebError, WebState
from facespace.protocol import METRICS
from facespace.web.schemas import (
    Candidate, Cluster, Clusters, EnrollResult, IdentifiedFace, IdentifyResult, People, Person, Quality, RejectResult,
)
from facespace.web.uploads import Faces, data_uri, faces_from_upload, has_file, no_face_message, one_face

router = APIRouter()


def _gallery_path(state: WebState) -> str:
    if state.gallery is None:
        raise WebError(409, "this server was started without a gallery; restart it with "
                            "`facespace serve ... --gallery people.db` to identify and enrol people")
    return state.gallery


def _open(state: WebState, *, create: bool = False) -> Any:
    """The gallery with the model; 409 while it does not exist yet (unless creating it)."""
    from facespace.people.gallery.gallery import Gallery

    path = _gallery_path(state)
    if not create and not FilePath(path).exists():
        raise WebError(409, "nobody is enrolled yet; enrol people first (two or more, so that strangers can be told apart)")
    return Gallery(path, state.model)


def _quality(state: WebState, images: np.ndarray, answers: list[Any]) -> list[Quality | None]:
    """Each face's quality: from the identification when it carries one, else facespace.people.quality."""
    found = [getattr(a, "quality", None) for a in answers]
    if any(q is None for q in found):
        from facespace.people.quality import face_quality

        with state.lock:
            found = list(face_quality(images, model=state.model))
    return [None if q is None else Quality(
        score=float(q.score), ok=bool(q.ok), reasons=[str(r) for r in q.reasons],
        recon_error=None if getattr(q, "recon_error", None) is None else float(q.recon_error),
        sharpness=None if getattr(q, "sharpness", None) is None else float(q.sharpness),
        brightness=None if getattr(q, "brightness", None) is None else float(q.brightness),
    ) for q in found]


@router.post("/identify", response_model=IdentifyResult, responses=ERRORS,
             summary="Who is this? Each face's nearest enrolled person, or unknown")
def identify(
    request: Request,
    file: UploadFile | None = File(None, description="A face crop, or a whole photo with detect (every face is named)."),
    id: int | None = Form(None, ge=0, le=MAX_ID, description="Or an index id."),
    detect: bool = Form(False, description="The upload is a whole photo: find the faces first."),
    k: int = Form(3, ge=1, le=20, description="Candidate people per face."),
) -> IdentifyResult:
    state = state_of(request).people()  # the gallery's model where it has its own
    _gallery_path(state)
    if has_file(file) and id is None:
        faces = faces_from_upload(state, file, detect=detect)
    else:
        x, _ = one_face(state, file, id, detect=False, slot="the face to identify")
        faces = Faces(x, [None], None, f"#{id}")
    if len(faces.images) == 0:
        return IdentifyResult(status="no_face", message=no_face_message([faces.detection]), detection=faces.detection)
    with _open(state) as g, state.lock:
        answers = g.identify(faces.images, k=k)
        threshold = g.threshold
    quality = _quality(state, faces.images, answers)
    results = [IdentifiedFace(face=j, box=faces.boxes[j], crop=data_uri(faces.images[j]), name=a.name,
                              distance=float(a.distance), quality=quality[j],
                              candidates=[Candidate(name=n, distance=float(d)) for n, d in a.candidates])
               for j, a in enumerate(answers)]
    return IdentifyResult(status="ok", threshold=threshold, results=results, detection=faces.detection)


@router.post("/enroll", response_model=EnrollResult, responses=ERRORS,
             summary="Enrol a person from uploaded faces (added to the gallery in one transaction)")
def enroll(
    request: Request,
    name: str = Form(..., min_length=1, max_length=100, description="The person's name."),
    files: list[UploadFile] = File(..., description="One or more images of the person (at most 8)."),
    detect: bool = Form(False, description="Uploads are whole photos, each with this one person's face."),
    force: bool = Form(False, description="Enrol low-quality images too."),
) -> EnrollResult:
    from facespace.web.state import MAX_FILES

    state = state_of(request).people()  # the gallery's model where it has its own
    _gallery_path(state)
    files = [f for f in files if has_file(f)]
    if not files:
        raise WebError(422, "choose one or more images of the person to enrol")
    if len(files) > MAX_FILES:
        raise WebError(400, f"{len(files)} images at once is too many; enrol at most {MAX_FILES} at a time")
    images, names, no_face = [], [], []
    for f in files:
        faces = faces_from_upload(state, f, detect=detect)
        if len(faces.images) == 0:
            no_face.append(faces.source)
        elif len(faces.images) > 1:
            raise WebError(400, f"{faces.source} has {len(faces.images)} faces, so it is not clear which is {name}; "
                                "upload a photo of this person alone, or a crop of their face")
        else:
            images.append(faces.images[0])
            names.append(faces.source)
    if not images:
        raise WebError(400, f"no face found in {', '.join(no_face)}; nothing was enrolled; use photos where the "
                            "face is upright and clear, or untick 'detect faces' to use each image as a face crop")
    with _open(state, create=True) as g, state.lock:
        try:
            count = g.enroll(name, np.stack(images), force=force, sources=names)
        except LowQualityError as e:  # the page's way to enrol them anyway is its 'force' box
            raise WebError(422, str(e).replace("(force=True)", "(tick 'force')")) from None
        threshold = g.threshold
    return EnrollResult(name=name, added=len(images), images=int(count), threshold=threshold, no_face=no_face)


@router.get("/people", response_model=People, responses=ERRORS, summary="Who is enrolled")
def people(request: Request) -> People:
    from facespace.people.gallery.gallery import Gallery

    state = state_of(request).people()  # the gallery's model where it has its own
    path = _gallery_path(state)
    if not FilePath(path).exists():
        return People(threshold=None, people=[])
    with Gallery(path) as g:
        return People(threshold=g.threshold, people=[Person(name=n, images=c) for n, c in g.list()])


@router.post("/reject", response_model=RejectResult, responses=ERRORS,
             summary="'Not this person': never name this face (or near-identical ones) as this person again")
def reject(
    request: Request,
    name: str = Form(..., min_length=1, max_length=100, description="The person it is not."),
    file: UploadFile | None = File(None, description="The face (a crop, or a whole photo with detect)."),
    id: int | None = Form(None, ge=0, le=MAX_ID, description="Or an index id."),
    detect: bool = Form(False),
    face: int = FACE,
) -> RejectResult:
    state = state_of(request).people()  # the gallery's model where it has its own
    _gallery_path(state)
    from facespace.people.gallery.gallery import Gallery

    if not hasattr(Gallery, "reject"):
        raise WebError(409, "'not this person' needs a facespace whose gallery supports rejections; update facespace")
    x, detection = one_face(state, file, id, detect=detect, face=face, slot="the face")
    if x is None:
        raise WebError(400, no_face_message([detection]))
    with _open(state) as g, state.lock:
        g.reject(x[0], name)
    return RejectResult(name=name, rejected=True)


@router.get("/clusters", response_model=Clusters, responses=ERRORS,
            summary="The index's faces grouped by facespace.people.clustering (computed once per setting)")
def clusters(
    request: Request,
    method: Literal["hdbscan", "dbscan", "agglomerative"] = Query("hdbscan"),
    min_cluster_size: int = Query(3, ge=2, le=1000, description="Smaller groups count as noise."),
    members: int = Query(24, ge=1, le=500, description="Faces listed per cluster (size gives them all)."),
) -> Clusters:
    state = state_of(request)
    key = (method, min_cluster_size)
    with state.lock:
        if key not in state.clusters:
            from facespace.people.clustering import cluster

            ids = state.index.ids
            metric = state.index.metric if state.index.metric in METRICS else "cosine"
            labels = cluster(state.index.reconstruct(ids), method, metric=metric, min_cluster_size=min_cluster_size,
                             min_samples=min(min_cluster_size, 5))
            state.clusters[key] = (ids, labels)
        ids, labels = state.clusters[key]
    groups = []
    for c in range(int(labels.max(initial=-1)) + 1):
        chosen = ids[labels == c]
        metas = state.index.get_metadata(chosen[:members])
        groups.append(Cluster(cluster=c, size=len(chosen), members=[item(state, int(i), m)
                                                                    for i, m in zip(chosen[:members], metas)]))
    return Clusters(method=method, n_clusters=len(groups), noise=int((labels < 0).sum()), clusters=groups)

