"""The first admin: created on a database nobody can sign in to yet, by `make run`
(backend.stack) and by `python -m backend.users first-admin` (docker compose)."""

from __future__ import annotations

from backend.config import Settings
from backend.db.session import session_scope
from backend.users import service as users


def bootstrap_admin(settings: Settings) -> str | None:
    """On a database nobody can sign in to yet, create `admin`; returns its password, once."""
    with session_scope() as session:
        return users.ensure_first_admin(session, password=settings.admin_password)


def announce_first_admin(settings: Settings, url: str) -> None:
    password = bootstrap_admin(settings)
    if password is None:
        return
    shown = "(from FITBOARD_ADMIN_PASSWORD)" if settings.admin_password else password
    print(
        f"First admin created. Sign in at {url}/login as username 'admin', password {shown}\n"
        "The password is shown only this once: change it on the Account page.",
        flush=True,
    )
