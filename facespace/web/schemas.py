"""The JSON shapes of the web API (they make FastAPI's OpenAPI document).

Pictures travel as PNG data URIs (`data:image/png;base64,...`) or as URLs under `/api/` that
serve PNGs by integer id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "no_face"]


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong and what to do.")


class Features(BaseModel):
    decode: bool = Field(description="The model has a decoder: reconstructions, morphs, decoded codes.")
    gallery: bool = Field(description="A gallery file was given: identify and enrol.")
    explain: bool = Field(description="facespace.pipelines.explanation is installed.")
    quality: bool = Field(description="facespace.people.quality is installed.")
    reject: bool = Field(description="The gallery supports 'not this person' corrections.")


class Info(BaseModel):
    model_kind: str
    image_shape: list[int] = Field(description="(H, W, C) the model takes.")
    code_size: int
    index_size: int
    metric: str = Field(description="The index's distance.")
    verify_threshold: float | None = Field(description="The model's calibrated verification threshold, if any.")
    max_upload_bytes: int
    features: Features


class IndexItem(BaseModel):
    id: int
    name: str | None = Field(None, description="The person, when the index knows it.")
    label: str = Field(description="The file name, or the id.")
    image_url: str = Field(description="GET it for the face as PNG.")


class DuplicateGroup(BaseModel):
    items: list[IndexItem] = Field(description="Faces within the threshold of one another (linked), nearest first.")


class Duplicates(BaseModel):
    level: Literal["exact", "near", "similar"]
    max_distance: float = Field(description="The threshold used, in the index's distance.")
    learned: bool = Field(description="True when learned from the set itself (--max-distance auto); false when given.")
    how: str = Field(description="learned (from the image files), decoded (from the codes), fallback (too few "
                                 "images: a stated fixed level) or given.")
    thresholds: dict[str, float] = Field(description="Every level's learned threshold.")
    copy_quantiles: list[float] = Field(description="The planted copies' distances to their originals at 0, 5, 50, 95 "
                                                    "and 100 %.")
    distinct_quantiles: list[float] = Field(description="The distances of items to their nearest distinct item, at "
                                                        "the same quantiles.")
    confirmed: bool = Field(description="True when the pairs found in the codes were confirmed in pixel space (the "
                                        "images' 32x32 pixels); false with a given max_distance, confirm=false, or "
                                        "images that are gone (see confirm_note).")
    candidate_distance: float = Field(description="The codes' threshold of the candidate pairs (the next looser "
                                                  "level's when confirmed, else max_distance).")
    pixel_max_distance: float | None = Field(description="The pixel threshold a candidate pair had to meet (cosine), "
                                                         "or null when not confirmed.")
    pixel_thresholds: dict[str, float] = Field(description="Every level's pixel threshold (empty when not confirmed).")
    pixel_copy_quantiles: list[float] = Field(description="The planted copies' pixel distances at the quantiles above.")
    pixel_distinct_quantiles: list[float] = Field(description="The pixel distances of items to their nearest distinct "
                                                              "item by the model, at the same quantiles.")
    confirm_note: str = Field(description="Why the pairs were not confirmed in pixel space, or how many candidates "
                                          "were kept.")
    notes: list[str]
    groups: list[DuplicateGroup]


class IndexPage(BaseModel):
    total: int
    offset: int
    items: list[IndexItem]


class FaceBox(BaseModel):
    face: int = Field(description="Which face of the photo, best detector score first.")
    box: list[int] = Field(description="(x, y, width, height) in the photo's pixels.")
    score: float
    crop: str = Field(description="The aligned crop the model sees, PNG data URI.")


class Detection(BaseModel):
    """What face detection found in one uploaded photo."""

    source: str = Field(description="The uploaded file's name.")
    status: Status
    photo: str = Field(description="The photo with numbered boxes, PNG data URI.")
    faces: list[FaceBox]
    chosen: int | None = Field(None, description="The face used (None: none found, or all used).")


class Neighbour(IndexItem):
    rank: int
    distance: float


class SearchResult(BaseModel):
    status: Status
    message: str | None = None
    query: str | None = Field(None, description="The query face as the model sees it, PNG data URI.")
    reconstruction: str | None = Field(None, description="Its reconstruction (None without a decoder).")
    neighbours: list[Neighbour] = []
    detection: Detection | None = None


class VerifyResult(BaseModel):
    status: Status
    message: str | None = None
    faces: list[str] = Field([], description="The two faces, PNG data URIs.")
    distance: float | None = None
    threshold: float | None = Field(None, description="Distances up to this are the same person.")
    same: bool | None = Field(None, description="The verdict (None without a threshold).")
    metric: str
    detections: list[Detection] = []


class MorphResult(BaseModel):
    status: Status
    message: str | None = None
    frames: list[str] = Field([], description="PNG data URIs from A to B.")
    detections: list[Detection] = []


class ExplainResult(BaseModel):
    status: Status
    message: str | None = None
    picture: str | None = Field(None, description="Faces, reconstructions and heatmap side by side, PNG data URI.")
    heatmap: str | None = None
    distance: float | None = None
    threshold: float | None = None
    same: bool | None = None
    detections: list[Detection] = []


class DecodeIn(BaseModel):
    code: list[float] = Field(description="A code of the model's code size.", max_length=65536)


class Decoded(BaseModel):
    image: str = Field(description="The decoded face, PNG data URI.")


class CodeOut(BaseModel):
    id: int
    code: list[float]
    decoded_url: str | None = Field(None, description="GET it for the decoded face (None without a decoder).")


class Quality(BaseModel):
    score: float = Field(description="In [0, 1], higher is better.")
    ok: bool
    reasons: list[str]
    recon_error: float | None = None
    sharpness: float | None = None
    brightness: float | None = None


class Candidate(BaseModel):
    name: str
    distance: float


class IdentifiedFace(BaseModel):
    face: int
    box: list[int] | None = None
    crop: str
    name: str | None = Field(description="The person, or None for a stranger.")
    distance: float
    candidates: list[Candidate]
    quality: Quality | None = None


class IdentifyResult(BaseModel):
    status: Status
    message: str | None = None
    threshold: float | None = None
    results: list[IdentifiedFace] = []
    detection: Detection | None = None


class EnrollResult(BaseModel):
    name: str
    added: int
    images: int = Field(description="How many images the person has now.")
    threshold: float | None
    no_face: list[str] = Field([], description="Uploaded photos with no face (not used).")


class Person(BaseModel):
    name: str
    images: int


class People(BaseModel):
    threshold: float | None
    people: list[Person]


class RejectResult(BaseModel):
    name: str
    rejected: bool


class Cluster(BaseModel):
    cluster: int
    size: int
    members: list[IndexItem]


class Clusters(BaseModel):
    method: str
    n_clusters: int
    noise: int = Field(description="Faces in no cluster.")
    clusters: list[Cluster]
