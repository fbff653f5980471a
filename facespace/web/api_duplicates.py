"""API route: the index's near-duplicates, with a threshold learned from the index itself.

`GET /api/duplicates?level=near` learns the level's threshold once per server (as `facespace index
duplicates` does: altered copies of the index's own images against each item's nearest distinct
item; `facespace.pipelines.duplicate_threshold`) and groups the index's faces within it, the pairs
found in the codes confirmed by their images' pixels when the images can be read
(`facespace.pipelines.duplicate_confirm`; `confirm=false` turns that off); `max_distance=` uses a
given threshold instead, unconfirmed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import APIRouter, Query, Request

from facespace.pipelines.duplicate_confirm import find_confirmed_duplicates
from facespace.pipelines.duplicate_levels import QUANTILES
from facespace.pipelines.duplicate_threshold import learn_max_distance
from facespace.pipelines.retrieval import find_duplicates
from facespace.web.api import ERRORS, item, state_of
from facespace.web.schemas import DuplicateGroup, Duplicates

router = APIRouter()


def _quantiles(values: np.ndarray) -> list[float]:
    v = np.asarray(values, np.float64)
    return [float(q) for q in np.quantile(v, QUANTILES)] if len(v) else []


@router.get("/duplicates", response_model=Duplicates, responses=ERRORS,
            summary="Near-duplicates in the index, with a threshold learned from the index itself")
def duplicates(request: Request, level: Literal["exact", "near", "similar"] = Query("near"),
               max_distance: float | None = Query(None, ge=0.0, le=4.0,
                                                  description="Use this threshold instead of learning one."),
               confirm: bool = Query(True, description="Confirm the pairs found in the codes by the images' pixels "
                                                       "(with a learned threshold, where the images can be read).")
               ) -> Duplicates:
    state = state_of(request)
    learned = state.duplicates.get(level)
    if learned is None:  # learned outside the lock (seconds of encoding): other routes go on meanwhile
        learned = learn_max_distance(state.index, level=level, model=state.model)
        with state.lock:
            state.duplicates.setdefault(level, learned)
    confirmed = max_distance is None and confirm and learned.confirmed
    t = float(max_distance) if max_distance is not None else learned.max_distance
    if confirmed:
        groups, check = find_confirmed_duplicates(state.index, learned)
        note = check.summary()
    else:
        groups = find_duplicates(state.index, t)
        note = ("not confirmed in pixel space: a given max_distance is used as it is" if max_distance is not None
                else "not confirmed in pixel space (confirm=false): the codes alone decide" if not confirm
                else learned.confirm_note)
    return Duplicates(level=level, max_distance=t, learned=max_distance is None,
                      how="given" if max_distance is not None else learned.how,
                      thresholds={k: float(v) for k, v in learned.thresholds.items()},
                      copy_quantiles=_quantiles(learned.copy_distances(level)),
                      distinct_quantiles=_quantiles(learned.distinct),
                      confirmed=confirmed, candidate_distance=learned.candidate_distance if confirmed else t,
                      pixel_max_distance=learned.pixel_max_distance if confirmed else None,
                      pixel_thresholds={k: float(v) for k, v in learned.pixel_thresholds.items()},
                      pixel_copy_quantiles=_quantiles(learned.pixel_copy_distances(level)),
                      pixel_distinct_quantiles=_quantiles(learned.pixel_distinct),
                      confirm_note=note, notes=list(learned.notes),
                      groups=[DuplicateGroup(items=[item(state, int(i)) for i in g]) for g in groups])
