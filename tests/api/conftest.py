"""In-process API tests on the real PostgreSQL test database."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Identity


@pytest.fixture(scope="module")
def app_env(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """The environment the in-process app reads (settings cached anew for each module)."""
    from backend.config import get_settings
    from backend.dispatch import get_celery

    saved = {
        k: os.environ.get(k)
        for k in ("DATABASE_URL", "REDIS_URL", "FITBOARD_HOME", "FITBOARD_QUEUE", "FITBOARD_AUTH")
    }
    os.environ.update(
        DATABASE_URL=pg_url,
        REDIS_URL=redis_url,
        FITBOARD_HOME=str(tmp_path_factory.mktemp("api-home")),
        # runs submitted here go to a queue no worker reads
        FITBOARD_QUEUE="fitboard-api-tests-unread",
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
def api(app_env: None, admin: Identity) -> Iterator[TestClient]:
    """The app in-process, as the session's admin (its API token on every request)."""
    from backend.api.app import create_app

    headers = {"Authorization": f"Bearer {admin.token}"}
    with TestClient(create_app(), headers=headers) as client:
        yield client


@pytest.fixture
def anonymous(api: TestClient) -> TestClient:
    """The same app with no identity and an empty cookie jar (the app is already started)."""
    return TestClient(api.app)
