"""A sweep's search space: spec paths, their dimensions, grid expansion, sampling, validation.

A space maps a spec path to a dimension::

    {"compile.optimizer.learning_rate": {"log_uniform": [1e-5, 1e-2]},
     "fit.batch_size": {"choice": [32, 64, 128]},
     "model.layers[1].rate": {"uniform": [0.1, 0.6]},
     "model.layers[1].units": {"int": [16, 128], "step": 16}}

Pure: imports neither the database nor optuna (the bayesian strategy maps dimensions itself).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from backend.errors import InvalidInput
from backend.spec import ExperimentSpec

KINDS = ("choice", "uniform", "log_uniform", "int", "int_log")
MAX_GRID_POINTS = 10_000
MAX_CHOICES = 1_000
_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")
_INDEX = re.compile(r"\[(\d+)\]")

Part = str | int
Params = dict[str, Any]


@dataclass(frozen=True)
class Dimension:
    path: str
    parts: tuple[Part, ...]
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: int | float | None = None

    @property
    def field(self) -> str:
        return f"space.{self.path}"

    def grid_values(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        step = int(self.step or 1)
        return list(range(int(self.low), int(self.high) + 1, step))

    def bounds(self) -> list[Any]:
        """The values whose specs must be valid for every drawn value to be."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind in ("int", "int_log"):
            return sorted({int(self.low), self._int_high()})
        return sorted({self.low, self.high})

    def _int_high(self) -> int:
        step = int(self.step or 1)
        return int(self.low) + (int(self.high) - int(self.low)) // step * step

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return self.choices[rng.randrange(len(self.choices))]
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "log_uniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        if self.kind == "int":
            step = int(self.step or 1)
            return int(self.low) + step * rng.randint(0, (self._int_high() - int(self.low)) // step)
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
        return min(int(self.high), max(int(self.low), int(value)))


def parse_path(path: str) -> tuple[Part, ...]:
    """'model.layers[1].rate' -> ('model', 'layers', 1, 'rate')."""
    parts: list[Part] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(f"{path!r} is not a spec path like model.layers[1].rate")
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(parts)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_dimension(path: str, raw: Any) -> Dimension:
    field = f"space.{path}"
    try:
        parts = parse_path(path)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=field) from None
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{field}: expected an object like {{'choice': [...]}}", field=field)
    kinds = [k for k in raw if k in KINDS]
    extra = sorted(set(raw) - set(KINDS) - {"step"})
    if len(kinds) != 1 or extra:
        raise InvalidInput(
            f"{field}: give exactly one of {', '.join(KINDS)} (and 'step' with int)", field=field
        )
    kind = kinds[0]
    value = raw[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value or len(value) > MAX_CHOICES:
            raise InvalidInput(f"{field}: choice needs 1 to {MAX_CHOICES} values", field=field)
        if "step" in raw:
            raise InvalidInput(f"{field}: step goes with int only", field=field)
        return Dimension(path, parts, kind, choices=tuple(value))
    if not (isinstance(value, list) and len(value) == 2 and all(map(_number, value))):
        raise InvalidInput(f"{field}: {kind} needs [low, high]", field=field)
    low, high = float(value[0]), float(value[1])
    if not low < high:
        raise InvalidInput(f"{field}: low must be below high", field=field)
    if kind in ("log_uniform", "int_log") and low <= 0:
        raise InvalidInput(f"{field}: {kind} needs low > 0", field=field)
    step = raw.get("step")
    if kind in ("int", "int_log"):
        if not (float(value[0]).is_integer() and float(value[1]).is_integer()):
            raise InvalidInput(f"{field}: {kind} needs whole-number bounds", field=field)
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
            raise InvalidInput(f"{field}: step must be a positive integer", field=field)
        if kind == "int_log" and step not in (None, 1):
            raise InvalidInput(f"{field}: int_log takes no step", field=field)
    elif step is not None:
        raise InvalidInput(f"{field}: step goes with int only", field=field)
    return Dimension(path, parts, kind, low=low, high=high, step=step)


def parse_space(raw: Mapping[str, Any]) -> list[Dimension]:
    if not raw:
        raise InvalidInput("space: give at least one spec path to search", field="space")
    dims = [parse_dimension(path, value) for path, value in raw.items()]
    seen: dict[tuple[Part, ...], str] = {}
    for dim in dims:
        if dim.parts in seen:
            raise InvalidInput(f"{dim.field}: the same path as {seen[dim.parts]}", field=dim.field)
        seen[dim.parts] = dim.path
    return dims


def check_paths(dims: Sequence[Dimension], base: Mapping[str, Any]) -> None:
    """Every path must name a value the (resolved) base spec has."""
    for dim in dims:
        node: Any = base
        for depth, part in enumerate(dim.parts):
            where = _render(dim.parts[: depth + 1])
            if isinstance(part, int):
                if not isinstance(node, list):
                    raise InvalidInput(
                        f"{dim.field}: {_render(dim.parts[:depth])} is not a list", field=dim.field
                    )
                if part >= len(node):
                    raise InvalidInput(
                        f"{dim.field}: index {part} is out of range ({_render(dim.parts[:depth])} "
                        f"has {len(node)} items)",
                        field=dim.field,
                    )
                node = node[part]
            else:
                if not isinstance(node, Mapping) or part not in node:
                    raise InvalidInput(f"{dim.field}: the spec has no {where}", field=dim.field)
                node = node[part]
        if isinstance(node, Mapping | list):
            raise InvalidInput(
                f"{dim.field}: {dim.path} is an object or list, not a value", field=dim.field
            )


def _render(parts: Sequence[Part]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def grid_size(dims: Sequence[Dimension]) -> int:
    return math.prod(len(d.grid_values()) for d in dims)


def check_gridable(dims: Sequence[Dimension]) -> None:
    for dim in dims:
        if dim.kind not in ("choice", "int"):
            raise InvalidInput(
                f"{dim.field}: the grid strategy needs choice or int (with step) dimensions, "
                f"not {dim.kind}",
                field=dim.field,
            )
    size = grid_size(dims)
    if size > MAX_GRID_POINTS:
        raise InvalidInput(
            f"space: the grid has {size} points; at most {MAX_GRID_POINTS}", field="space"
        )


def grid(dims: Sequence[Dimension]) -> Iterator[Params]:
    """Every combination, the last dimension varying fastest."""
    for values in itertools.product(*(d.grid_values() for d in dims)):
        yield {d.path: v for d, v in zip(dims, values, strict=True)}


def sample(dims: Sequence[Dimension], rng: random.Random) -> Params:
    return {d.path: d.sample(rng) for d in dims}


def apply(base: Mapping[str, Any], dims: Sequence[Dimension], params: Params) -> dict[str, Any]:
    """The base spec with the params set at their paths; the base is never changed.

    Only the objects and lists along each path are copied (the rest is shared with the base,
    and validation builds new objects anyway): a 1,000-point grid stays cheap.
    """
    spec: dict[str, Any] = dict(base)
    for dim in dims:
        if dim.path not in params:
            continue
        node: Any = spec
        for part in dim.parts[:-1]:
            child = node[part]
            node[part] = child = dict(child) if isinstance(child, Mapping) else list(child)
            node = child
        node[dim.parts[-1]] = params[dim.path]
    return spec


def validate_point(
    base: Mapping[str, Any], dims: Sequence[Dimension], params: Params
) -> dict[str, Any]:
    """The trial's spec, validated and normalised; InvalidInput names the space field."""
    raw = apply(base, dims, params)
    try:
        return ExperimentSpec.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        dim = _blame(dims, loc)
        where = ".".join(str(p) for p in loc)
        values = ", ".join(f"{d.path}={params[d.path]!r}" for d in dims if d.path in params)
        raise InvalidInput(
            f"{dim.field}: gives an invalid spec at {where or 'spec'} "
            f"({str(error['msg']).removeprefix('Value error, ')}) with {values}",
            field=dim.field,
        ) from None


def _blame(dims: Sequence[Dimension], loc: tuple[Any, ...]) -> Dimension:
    """The dimension whose path is closest to the error location (the first one otherwise)."""
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.endswith("Spec")))

    def shared(dim: Dimension) -> int:
        n = 0
        for a, b in zip(dim.parts, loc, strict=False):
            if a != b:
                break
            n += 1
        return n

    best = max(dims, key=shared)
    return best if shared(best) > 0 else dims[0]


def check_bounds(base: Mapping[str, Any], dims: Sequence[Dimension]) -> None:
    """For random/bayesian: each dimension's bounds (others at the base value), then all low
    and all high together."""
    for dim in dims:
        for value in dim.bounds():
            validate_point(base, [dim], {dim.path: value})
    if len(dims) > 1:
        for pick in (0, -1):
            validate_point(base, dims, {d.path: d.bounds()[pick] for d in dims})


def check_values(base: Mapping[str, Any], dims: Sequence[Dimension]) -> None:
    """Each grid value of each dimension, the others at the base value (a cheap grid check)."""
    for dim in dims:
        for value in dim.grid_values():
            validate_point(base, [dim], {dim.path: value})
