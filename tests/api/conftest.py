"""In-process API tests on the real PostgreSQL test database."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def api(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    from backend.config import get_settings
    from backend.dispatch import get_celery

    saved = {
        k: os.environ.get(k)
        for k in ("DATABASE_URL", "REDIS_URL", "FITBOARD_HOME", "FITBOARD_QUEUE")
    }
    os.environ.update(
        DATABASE_URL=pg_url,
        REDIS_URL=redis_url,
        FITBOARD_HOME=str(tmp_path_factory.mktemp("api-home")),
        # runs submitted here go to a queue no worker reads
        FITBOARD_QUEUE="fitboard-api-tests-unread",
    )
    get_settings.cache_clear()
    get_celery.cache_clear()
    from backend.api.app import create_app

    with TestClient(create_app()) as client:
        yield client
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()
    get_celery.cache_clear()
