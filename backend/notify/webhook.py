"""A webhook delivery on the wire: the Slack-compatible body, its signature, one POST.

No database here: backend.notify.service hands over a :class:`Delivery` and records the
:class:`Outcome`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from backend.notify import targets

SIGNATURE_HEADER = "X-Fitboard-Signature"
TIMESTAMP_HEADER = "X-Fitboard-Timestamp"
ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class Delivery:
    """What one attempt posts: the notification's fields, where, and the key to sign with."""

    notification_id: int
    attempt: int
    url: str
    secret: str | None
    text: str
    fitboard: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def sign(secret: str, body: bytes) -> str:
    """The X-Fitboard-Signature value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(delivery: Delivery, *, timestamp: int) -> bytes:
    """Slack's ``text`` and ``blocks``, and the ``fitboard`` object; the timestamp is in the
    signed body too, so a receiver can refuse an old one replayed."""
    payload = {
        "text": delivery.text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": delivery.text}}],
        "fitboard": {
            **delivery.fitboard,
            "notification_id": delivery.notification_id,
            "attempt": delivery.attempt,
            "timestamp": timestamp,
        },
    }
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def post(
    delivery: Delivery,
    *,
    timeout_s: float,
    allowed: Sequence[targets.Network] = (),
    client: httpx.Client | None = None,
) -> Outcome:
    """One signed POST; any 2xx is delivered, anything else (or no answer) is a failure, and
    so is a URL whose host is now a private address not ``allowed`` (never posted to)."""
    started = time.monotonic()
    try:
        targets.check_url(delivery.url, allowed, must_resolve=True)
    except targets.Refused as exc:
        return Outcome(False, None, f"not posted: {exc}"[:ERROR_MAX_CHARS], _ms_since(started))
    timestamp = int(time.time())
    body = body_of(delivery, timestamp=timestamp)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Fitboard-Webhook/1",
        TIMESTAMP_HEADER: str(timestamp),
    }
    if delivery.secret:
        headers[SIGNATURE_HEADER] = sign(delivery.secret, body)
    try:
        if client is None:
            # no redirects: a webhook answers itself, and a redirect could lead anywhere
            with httpx.Client(timeout=timeout_s, follow_redirects=False) as own:
                response = own.post(delivery.url, content=body, headers=headers)
        else:
            response = client.post(delivery.url, content=body, headers=headers)
    except Exception as exc:  # any failure to post (a bad URL too) is a failed attempt, logged
        failure = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
        return Outcome(False, None, failure, _ms_since(started))
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
    return Outcome(ok, response.status_code, error, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
