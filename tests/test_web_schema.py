"""Property-based fuzzing of the web API from its own OpenAPI document (schemathesis, in-process ASGI):
no request, well-formed or not, makes any route answer 500."""

from __future__ import annotations

import pytest

from test_web_api import build_site

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (pip install schemathesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

EXAMPLES = 15  # per operation and generation mode (and per pinned id)


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    from facespace.web import create_app

    site = build_site(tmp_path_factory.mktemp("webschema"), n=40)
    app = create_app(model=site["model"], index=site["index"], gallery=site["gallery"])
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_route_answers_500(schema, mode):
    ops = operations(schema)
    assert len(ops) >= 16
    seen: dict[str, set[int]] = {}
    for op in ops:
        # random ids are almost never in a 40-face index: also run the id routes on a real id
        pins = [None, {"id": 3}] if "{id}" in op.path else [None]
        for pin in pins:

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode, path_parameters=pin))
            def run(case):
                response = case.call()
                seen.setdefault(op.label, set()).add(response.status_code)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} answered {response.status_code}: {response.text[:400]}")

            try:
                run()
            except Unsatisfiable:  # nothing to break: an operation with no inputs has no invalid requests
                assert mode == GenerationMode.NEGATIVE
                seen.setdefault(op.label, set())
    assert len(seen) == len(ops)
    if mode == GenerationMode.POSITIVE:  # valid requests reach the routes' own work, not only validation
        assert 200 in seen["GET /api/images/{id}"] and 200 in seen["GET /api/codes/{id}/decoded.png"]
    print(mode, seen)
