"""Property-based API tests from each service's own OpenAPI document (Schemathesis), against
the real services: whatever a client sends within (or, for the negative cases, outside) the
document, the answer is never a 5xx and always matches the document (status, content type,
JSON error bodies).

Cases per operation and mode are bounded (``API_PROPERTY_EXAMPLES``, default 50) to keep the suite's
time in check; raise it for a longer hunt.
"""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("API_PROPERTY_EXAMPLES", "50"))
# Random bytes fit the document's "binary" image field but are not photos, so a 400 for a
# schema-valid request is right here: that one check does not apply.
EXCLUDED = ("positive_data_acceptance",)


def _excluded():
    from schemathesis.specs.openapi import checks

    return [getattr(checks, name) for name in EXCLUDED if hasattr(checks, name)]


def check_every_operation(base_url: str, only=None, examples: int = EXAMPLES) -> list[str]:
    """Run each operation of the service's document as a Hypothesis test; returns the
    operations checked (a failure raises with the case that broke it). ``only``: a test
    on the operation's label (``"POST /jobs"``) choosing which to run."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is not None and not only(operation.label):
            continue

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                case.call_and_validate(base_url=base_url, excluded_checks=_excluded(),
                                       timeout=120)

            try:
                run()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                # An operation with nothing to get wrong (GET /health) has no negative case.
        checked.append(operation.label)
    return checked


def test_matting_service_answers_by_its_document(services):
    checked = check_every_operation(services.matting)
    assert {"POST /matte", "POST /", "POST /with_bg", "GET /health"} <= set(checked)


def test_segmentation_service_answers_by_its_document(services):
    checked = check_every_operation(services.segmentation)
    assert "POST /trimap" in checked and "POST /mask" in checked
