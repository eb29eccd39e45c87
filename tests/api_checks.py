"""Schemathesis runs of a service's own OpenAPI document, shared by test_api_properties.py
and test_jobs.py (a module of its own, so that the custom check is registered once)."""
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


def _excluded_checks():
    from schemathesis.specs.openapi import checks

    return [getattr(checks, name) for name in EXCLUDED if hasattr(checks, name)]


@schemathesis.check
def not_a_server_error_but_no_queue(ctx, response, case):
    """``not_a_server_error``, except the documented 503 of a job queue that is not
    reachable (services started without Redis: every /jobs endpoint needs it). Registered,
    so it runs with the built-in checks; it stands in for ``not_a_server_error`` where that
    one is excluded (``queue_may_be_down``)."""
    from schemathesis.checks import not_a_server_error

    if response.status_code == 503:
        try:
            if response.json().get("code") == "queue_unavailable":
                return None
        except ValueError:
            pass
    return not_a_server_error(ctx, response, case)


def check_every_operation(base_url: str, only=None, examples: int = EXAMPLES,
                          queue_may_be_down: bool = False) -> list[str]:
    """Run each operation of the service's document as a Hypothesis test; returns the
    operations checked (a failure raises with the case that broke it). ``only``: a test
    on the operation's label (``"POST /jobs"``) choosing which to run.
    ``queue_may_be_down``: a 503 ``queue_unavailable`` is no failure."""
    from schemathesis.checks import not_a_server_error

    excluded = [*_excluded_checks(), *([not_a_server_error] if queue_may_be_down else [])]

    # run() below calls this by name: its source, from which Hypothesis derives the
    # examples' seed (derandomize), stays as it was, and so do the examples.
    def _excluded():
        return excluded

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
