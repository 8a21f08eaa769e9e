"""The fuzz stage: schemathesis over every operation of the OpenAPI, against the real app on a
PostgreSQL database of its own (what it creates, edits and deletes touches no other test).

Fails on any 5xx, any response that breaks its documented schema, and any status code the
operation does not document. Bounded by FITBOARD_FUZZ_EXAMPLES examples per operation
(default 10) and derandomized, so CI is reproducible and `make test` stays quick.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.conftest import Identity, create_identity, fresh_database

EXAMPLES = int(os.environ.get("FITBOARD_FUZZ_EXAMPLES", "10"))
# what the stage promises: no 5xx, every status code documented, every response (and its
# content type) as its schema says. Not "schema-valid data is accepted": a cross-field rule
# (a confusion matrix one row per class) is a documented 422 the schema cannot express.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_db(pg_url: str) -> str:
    """A fresh database beside the test one, migrated to head."""
    return fresh_database(pg_url, "fuzz")


@pytest.fixture(scope="module")
def fuzz_env(
    fuzz_db: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    from backend.config import get_settings
    from backend.dispatch import get_celery

    names = ("DATABASE_URL", "REDIS_URL", "FITBOARD_HOME", "FITBOARD_QUEUE", "FITBOARD_AUTH")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(
        DATABASE_URL=fuzz_db,
        REDIS_URL=redis_url,
        FITBOARD_HOME=str(tmp_path_factory.mktemp("fuzz-home")),
        FITBOARD_QUEUE="fitboard-fuzz-unread",  # runs it submits are never trained
        FITBOARD_AUTH="on",
    )
    get_settings.cache_clear()
    get_celery.cache_clear()
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
    get_celery.cache_clear()


@pytest.fixture(scope="module")
def fuzzer(fuzz_db: str) -> Identity:
    return create_identity(fuzz_db, "fuzz-admin", "admin")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_env: None, fuzzer: Identity) -> schemathesis.BaseSchema:
    from backend.api.app import create_app

    return schemathesis.openapi.from_asgi("/openapi.json", create_app())


def _fuzz(operation: Any, token: str) -> None:
    """Up to EXAMPLES generated requests for one operation, each checked against the schema."""

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    run()


def test_every_operation_answers_as_documented(
    fuzz_schema: schemathesis.BaseSchema, fuzzer: Identity
) -> None:
    # schemathesis' pytest plugin (schema.parametrize) does not run on pytest 9: one test
    # drives each operation through Hypothesis itself and reports every failing one
    failures: list[str] = []
    operations = 0
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation, fuzzer.token)
        except Exception as exc:  # a failed check, with its request to reproduce it
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert operations > 40, "every operation of the OpenAPI is fuzzed"
    assert not failures, "\n\n".join(failures)
