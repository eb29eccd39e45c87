"""Property-based API tests from each service's own OpenAPI document (Schemathesis), against
the real services: whatever a client sends within (or, for the negative cases, outside) the
document, the answer is never a 5xx and always matches the document (status, content type,
JSON error bodies).

Cases per operation and mode are bounded (``API_PROPERTY_EXAMPLES``, default 50) to keep the suite's
time in check; raise it for a longer hunt.
"""
from __future__ import annotations

from tests.api_checks import check_every_operation


def test_matting_service_answers_by_its_document(services):
    # These services run without a job queue (test_jobs.py checks /jobs with one): there
    # every /jobs endpoint answers the documented 503 that says how to start it.
    checked = check_every_operation(services.matting, queue_may_be_down=True)
    assert {"POST /matte", "POST /", "POST /with_bg", "GET /health",
            "GET /jobs/{job_id}"} <= set(checked)


def test_segmentation_service_answers_by_its_document(services):
    checked = check_every_operation(services.segmentation)
    assert "POST /trimap" in checked and "POST /mask" in checked
