"""Points as the columnar body of POST /api/v1/runs/{id}/points (what FitboardCallback and a
worker's training process send): one array per field instead of one object per point."""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_INF_STANDIN = 1e300  # what the API stores for +-infinity (backend.jsonpolicy.INF_STANDIN)


def _storable(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value  # not a number: the API names it (columns.values.<i>)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if math.isnan(number):
        return None
    if math.isinf(number):
        return _INF_STANDIN if number > 0 else -_INF_STANDIN
    return number


def point_columns(points: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """{key, step, value, kind?, wall_time?} points as {keys, key_index, steps, values,
    wall_times}: NaN as null, +-inf as +-1e300, a ``kind: batch`` key under ``batch/``."""
    index: dict[str, int] = {}
    key_index: list[int] = []
    steps: list[Any] = []
    values: list[Any] = []
    wall_times: list[Any] = []
    now = time.time()
    for point in points:
        key = str(point["key"])
        if point.get("kind") == "batch" and not key.startswith("batch/"):
            key = "batch/" + key
        key_index.append(index.setdefault(key, len(index)))
        step = point["step"]
        try:
            steps.append(operator.index(step))  # numpy integers as plain ints
        except TypeError:
            steps.append(step)  # not an integer: the API names it (columns.steps.<i>)
        values.append(_storable(point.get("value")))
        wall = point.get("wall_time")
        wall_times.append(_storable(wall) if wall else now)
    return {
        "keys": list(index),
        "key_index": key_index,
        "steps": steps,
        "values": values,
        "wall_times": wall_times,
    }


def columns_unknown(errors: Sequence[tuple[str | None, str]]) -> bool:
    """Whether a 422's (field, type) errors say the server predates columns (it forbids the
    field): the sender then posts points one object each."""
    return any(field == "columns" and kind == "extra_forbidden" for field, kind in errors)
