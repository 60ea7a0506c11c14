"""The API document tells the truth: schemathesis fuzzes the running service from its own OpenAPI document.

Every operation of ``/openapi.json`` gets the fuzzer's coverage cases (each documented parameter missing, at
its bounds, of the wrong type...) and ``max-examples`` generated cases of valid and of invalid data
(``tests/schemathesis.toml``: fixed seed, every check on). Every answer must have a documented status, content
type, body schema and headers; valid data must be accepted and invalid data refused; no answer may be a 5xx.
``/v1/tryon`` is fuzzed like the others at no cost in sampler time: a generated form never holds a usable photo
with its pose, so the service refuses it before any model runs (the genuine try-ons are test_serving.py's).

The run goes through schemathesis's engine, what ``schemathesis run`` does (its pytest plugin's lazy schema does
not work with pytest 9), so a failure here reproduces from the command line (``tests/schemathesis.toml``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, StopReason, events
from schemathesis.engine.recorder import CheckFailureInfo
from schemathesis.openapi.checks import UndefinedStatusCode

CONFIG = Path(__file__).with_name("schemathesis.toml")

pytestmark = pytest.mark.slow


@dataclass
class FuzzRun:
    """What a schemathesis run found: cases sent per operation, checks made, failed checks and engine errors."""

    cases: Counter[str] = field(default_factory=Counter)
    checks: int = 0
    failures: list[CheckFailureInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_reason: StopReason | None = None


def fuzz(schema) -> FuzzRun:
    """Run every phase and check of ``schema``'s config against its API, as ``schemathesis run`` does."""
    run = FuzzRun()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            run.cases[event.label] += len(event.recorder.cases)
            for case_checks in event.recorder.checks.values():
                run.checks += len(case_checks)
                run.failures += [check.failure_info for check in case_checks
                                 if check.status == Status.FAILURE and check.failure_info is not None]
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info}")
        elif isinstance(event, events.FatalError):
            run.errors.append(repr(event.exception))
        elif isinstance(event, events.EngineFinished):
            run.stop_reason = event.stop_reason
    return run


def test_the_service_answers_only_what_its_api_document_declares(service):
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json", config=SchemathesisConfig.from_path(CONFIG))
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert {"POST /v1/tryon", "POST /v1/feedback", "PUT /v1/ab/weights", "GET /v1/ab/report"} <= operations
    run = fuzz(schema)
    print(f"\nschemathesis: {sum(run.cases.values())} cases, {run.checks} checks, {len(run.failures)} failures: "
          f"{dict(run.cases)}")
    assert not run.errors, "\n".join(run.errors)
    assert not run.failures, "\n\n".join(dict.fromkeys(
        f"{info.failure.operation}: {info.failure.title or type(info.failure).__name__}: {info.failure.message}\n"
        f"{info.code_sample}" for info in run.failures))
    assert run.stop_reason == StopReason.COMPLETED and set(run.cases) == operations  # every operation was fuzzed


def test_the_fuzzer_flags_a_status_the_document_leaves_out(service):
    """The same run against the service's document with 415 struck from ``/v1/tryon``: the fuzzer must notice."""
    document = httpx.get(f"{service}/openapi.json", timeout=30).json()
    document["paths"] = {"/v1/tryon": document["paths"]["/v1/tryon"]}
    del document["paths"]["/v1/tryon"]["post"]["responses"]["415"]
    schema = schemathesis.openapi.from_dict(document, config=SchemathesisConfig.from_path(CONFIG))
    schema.config.update(base_url=service)
    run = fuzz(schema)
    assert set(run.cases) == {"POST /v1/tryon"} and not run.errors, run.errors[:1]
    assert any(isinstance(info.failure, UndefinedStatusCode) and info.failure.status_code == 415
               for info in run.failures), [info.failure for info in run.failures]
