"""One JSON policy, end to end: what the API accepts, stores and sends.

- Numbers: a metric value NaN is stored as null and +-inf as +-1e300 (backend.metrics.service);
  any other number (a wall time, an epoch) must be finite, or the request is a 422.
- Free-form objects (an external run's spec and params, an evaluation report, spec overrides,
  a sweep's space) hold at most FREE_JSON_MAX_BYTES of JSON, nest at most FREE_JSON_MAX_DEPTH
  levels and hold only finite numbers; otherwise a 422 naming the field.
- Everything sent (JSON responses, SSE data, exports) is strict JSON: `dumps` never writes
  NaN or Infinity, whatever an older row holds.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator

FREE_JSON_MAX_BYTES = 64 * 1024
FREE_JSON_MAX_DEPTH = 32
# what is read back is cut below this depth (pydantic refuses to serialize much deeper)
READ_MAX_DEPTH = 4 * FREE_JSON_MAX_DEPTH
# the stand-in for +-infinity, as metric values store it
INF_STANDIN = 1e300
# a wall time (Unix seconds) past this (year 5138) is not a time
MAX_WALL_TIME = 1e11


def strict(value: Any, *, depth: int = 0) -> Any:
    """value with NaN as None and +-inf as +-1e300, at any depth (lists, tuples, dicts)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return INF_STANDIN if value > 0 else -INF_STANDIN
        return value
    if depth >= READ_MAX_DEPTH:
        return None  # a row stored before the depth limit: cut, never a serialization error
    if isinstance(value, dict):
        return {str(k): strict(v, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v, depth=depth + 1) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact strict JSON (never NaN or Infinity)."""
    return json.dumps(strict(value), separators=(",", ":"), allow_nan=False)


def _depth_and_finite(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(node, dict | list):
            if depth > FREE_JSON_MAX_DEPTH:
                raise ValueError(f"too deep: nests more than {FREE_JSON_MAX_DEPTH} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def check_free_json(value: Any) -> Any:
    """A free-form JSON value within the limits above (a ValueError says which one)."""
    if value is None:
        return value
    _depth_and_finite(value)
    size = len(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    if size > FREE_JSON_MAX_BYTES:
        raise ValueError(
            f"too large: {size} bytes of JSON, at most {FREE_JSON_MAX_BYTES // 1024} KiB"
        )
    return value


# a free-form JSON object field of a request body
FreeJson = Annotated[dict[str, Any], AfterValidator(check_free_json)]


def check_bounded_json(value: Any) -> Any:
    """Depth and finiteness only: a trusted writer's larger objects (a worker's events,
    summaries, reports), whose size the request body limit bounds."""
    if value is not None:
        _depth_and_finite(value)
    return value


# a JSON object a worker writes (backend.workers): no 64 KiB cap, the same depth and numbers
BoundedJson = Annotated[dict[str, Any], AfterValidator(check_bounded_json)]
