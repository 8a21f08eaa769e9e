"""Search spaces: path parsing, dimension parsing, grid expansion, sampling, validation errors."""

from __future__ import annotations

import random

import pytest

from backend.errors import InvalidInput
from backend.spec import resolve_spec
from backend.sweeps import pruning, space, strategies


@pytest.fixture(scope="module")
def base() -> dict:
    return resolve_spec(preset="digits-mlp").model_dump(mode="json")


def _field(exc: pytest.ExceptionInfo[InvalidInput]) -> str | None:
    return exc.value.field


def test_parse_path_with_indices() -> None:
    assert space.parse_path("model.layers[1].rate") == ("model", "layers", 1, "rate")
    assert space.parse_path("fit.batch_size") == ("fit", "batch_size")
    with pytest.raises(ValueError):
        space.parse_path("model..layers")
    with pytest.raises(ValueError):
        space.parse_path("model.layers[x]")


def test_dimensions_parse_and_reject_bad_shapes() -> None:
    dims = space.parse_space(
        {
            "compile.optimizer.learning_rate": {"log_uniform": [1e-5, 1e-2]},
            "fit.batch_size": {"choice": [32, 64, 128]},
            "model.layers[1].units": {"int": [16, 128], "step": 16},
        }
    )
    assert [d.kind for d in dims] == ["log_uniform", "choice", "int"]
    assert dims[2].grid_values() == [16, 32, 48, 64, 80, 96, 112, 128]
    bad = {
        "fit.epochs": {"uniform": [3, 1]},
        "fit.batch_size": {"choice": []},
        "compile.optimizer.learning_rate": {"log_uniform": [0, 1]},
        "model.layers[1].units": {"int": [1.5, 4]},
        "fit.seed": {"uniform": [0, 1], "choice": [1]},
    }
    for path, raw in bad.items():
        with pytest.raises(InvalidInput) as exc:
            space.parse_space({path: raw})
        assert _field(exc) == f"space.{path}"


def test_paths_must_exist_in_the_spec(base: dict) -> None:
    for path, message in [
        ("model.layers[7].rate", "out of range"),
        ("fit.batch_sizes", "no fit.batch_sizes"),
        ("model.layers[1].rate", r"no model\.layers\[1\]\.rate"),  # layer 1 is a Dense
        ("compile.optimizer", "not a value"),
    ]:
        dims = space.parse_space({path: {"choice": [0.1]}})
        with pytest.raises(InvalidInput, match=message) as exc:
            space.check_paths(dims, base)
        assert _field(exc) == f"space.{path}"
    space.check_paths(space.parse_space({"model.layers[2].rate": {"choice": [0.1]}}), base)


def test_grid_expands_every_combination_in_order() -> None:
    dims = space.parse_space(
        {
            "fit.batch_size": {"choice": [32, 64]},
            "model.layers[1].units": {"int": [8, 24], "step": 8},
        }
    )
    points = list(space.grid(dims))
    assert space.grid_size(dims) == 6 == len(points)
    assert points[0] == {"fit.batch_size": 32, "model.layers[1].units": 8}
    assert points[-1] == {"fit.batch_size": 64, "model.layers[1].units": 24}
    with pytest.raises(InvalidInput) as exc:
        space.check_gridable(space.parse_space({"fit.seed": {"uniform": [0, 1]}}))
    assert _field(exc) == "space.fit.seed"


def test_a_space_yielding_an_invalid_spec_names_its_field(base: dict) -> None:
    dims = space.parse_space({"model.layers[2].rate": {"choice": [0.2, 1.5]}})
    space.validate_point(base, dims, {"model.layers[2].rate": 0.2})
    with pytest.raises(InvalidInput) as exc:
        space.validate_point(base, dims, {"model.layers[2].rate": 1.5})
    assert _field(exc) == "space.model.layers[2].rate"
    dims = space.parse_space({"fit.batch_size": {"int": [0, 64]}})
    with pytest.raises(InvalidInput) as exc:
        space.check_bounds(base, dims)
    assert _field(exc) == "space.fit.batch_size"


def test_apply_sets_values_without_touching_the_base(base: dict) -> None:
    dims = space.parse_space({"model.layers[2].rate": {"uniform": [0.1, 0.6]}})
    spec = space.validate_point(base, dims, {"model.layers[2].rate": 0.33})
    assert spec["model"]["layers"][2]["rate"] == 0.33
    assert base["model"]["layers"][2]["rate"] == 0.5


def test_samples_stay_in_bounds_and_are_seeded() -> None:
    dims = space.parse_space(
        {
            "a.b": {"log_uniform": [1e-5, 1e-2]},
            "a.c": {"int": [16, 128], "step": 16},
            "a.d": {"int_log": [2, 64]},
            "a.e": {"uniform": [0.1, 0.6]},
        }
    )
    draws = [space.sample(dims, random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = random.Random(1)
    for _ in range(300):
        p = space.sample(dims, rng)
        assert 1e-5 <= p["a.b"] <= 1e-2
        assert p["a.c"] in range(16, 129, 16)
        assert 2 <= p["a.d"] <= 64 and isinstance(p["a.d"], int)
        assert 0.1 <= p["a.e"] <= 0.6


def test_bayesian_asks_within_the_space_after_history() -> None:
    dims = space.parse_space(
        {"x.lr": {"log_uniform": [1e-4, 1e-1]}, "x.bs": {"choice": [[3, 3], [5, 5]]}}
    )
    history = [
        strategies.PastTrial({"x.lr": 1e-3, "x.bs": [3, 3]}, "succeeded", 0.9),
        strategies.PastTrial({"x.lr": 1e-2, "x.bs": [5, 5]}, "pruned", None),
        strategies.PastTrial({"x.lr": 5e-2, "x.bs": [5, 5]}, "running", None),
    ]
    asked = strategies.ask(dims, history, direction="maximize", seed=3, count=2)
    assert len(asked) == 2
    for p in asked:
        assert 1e-4 <= p["x.lr"] <= 1e-1
        assert p["x.bs"] in ([3, 3], [5, 5])


def test_median_rule() -> None:
    rule = {"kind": "median", "warmup_epochs": 1, "min_trials": 2}
    kw = {"maximize": False}
    assert pruning.median_rule(rule, epoch=1, value=9.0, others=[0.1, 0.2], **kw) is None
    assert pruning.median_rule(rule, epoch=2, value=9.0, others=[0.1], **kw) is None
    why = pruning.median_rule(rule, epoch=2, value=0.9, others=[0.3, 0.4, 0.5], **kw)
    assert why == "worse than median 0.4 of 3 trials"
    assert pruning.median_rule(rule, epoch=2, value=0.35, others=[0.3, 0.4, 0.5], **kw) is None
    assert pruning.median_rule(rule, epoch=2, value=float("nan"), others=[1, 2], **kw)
    assert pruning.median_rule(rule, epoch=2, value=0.5, others=[0.8, 0.9], maximize=True)


def test_asha_rule_keeps_the_best_third_at_rungs() -> None:
    rule = {"kind": "asha", "min_epochs": 1, "reduction_factor": 3}
    assert pruning.asha_rungs(rule, 10) == [1, 3, 9]
    others = [0.1, 0.2, 0.3, 0.4, 0.5]  # losses; with this one six: the best two go on
    assert pruning.asha_rule(rule, epoch=2, value=9.0, others=others, maximize=False) is None
    assert pruning.asha_rule(rule, epoch=3, value=0.15, others=others, maximize=False) is None
    assert pruning.asha_rule(rule, epoch=3, value=0.25, others=others, maximize=False)
    assert pruning.asha_rule(rule, epoch=1, value=0.9, others=[], maximize=False) is None
