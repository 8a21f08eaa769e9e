"""The recipe fields of the spec: defaults, schema, and cross-field rules with clear messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.spec import ExperimentSpec
from backend.spec.presets import PRESETS, deep_merge, resolve_spec

BASE: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "model": {
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]
    },
}


def _spec(**overrides: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate(deep_merge(BASE, overrides))


def _error(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as info:
        _spec(**overrides)
    return str(info.value)


def test_defaults_leave_existing_specs_as_they_were() -> None:
    spec = _spec()
    assert spec.precision == "float32"
    assert spec.devices is None and spec.scale_batch_size is False
    assert spec.artifacts == ["keras"] and spec.tensorboard is False
    assert spec.fit.class_weight is None
    assert spec.compile.optimizer.schedule is None
    assert spec.compile.loss == "sparse_categorical_crossentropy"
    # a stored spec (dumped before these fields existed) still validates to the same thing
    dumped = spec.model_dump(mode="json")
    old = {k: v for k, v in dumped.items() if k not in {"precision", "devices", "artifacts"}}
    assert ExperimentSpec.model_validate(old) == spec


def test_every_recipe_field_round_trips() -> None:
    spec = _spec(
        compile={
            "optimizer": {
                "name": "adamw",
                "weight_decay": 0.01,
                "clipnorm": 1.0,
                "schedule": {"type": "warmup", "warmup_steps": 10, "then": "cosine"},
            },
            "loss": {"name": "focal", "gamma": 2.0, "alpha": 0.25},
        },
        fit={"class_weight": {"0": 1.0, "3": 2.5}},
        precision="mixed_bfloat16",
        devices=2,
        scale_batch_size=True,
        artifacts=["keras", "h5", "weights", "savedmodel", "tflite", "tflite_quant"],
        tensorboard=True,
    )
    assert spec.fit.class_weight == {0: 1.0, 3: 2.5}
    again = ExperimentSpec.model_validate(spec.model_dump(mode="json"))
    assert again == spec


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "exponential", "factor": 0.95},
        {"type": "exponential", "factor": 0.9, "staircase": False},
        {"type": "step", "every_epochs": 2, "factor": 0.5},
        {"type": "cosine"},
        {"type": "cosine", "decay_steps": 100, "alpha": 0.1},
        {"type": "warmup", "warmup_steps": 5},
        {"type": "warmup", "warmup_steps": 5, "then": "cosine", "alpha": 0.05},
    ],
)
def test_schedules_validate(schedule: dict[str, Any]) -> None:
    spec = _spec(compile={"optimizer": {"schedule": schedule}})
    assert spec.compile.optimizer.schedule is not None
    assert spec.compile.optimizer.schedule.type == schedule["type"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"compile": {"optimizer": {"schedule": {"type": "linear"}}}},
            "does not match any of the expected tags",
        ),
        ({"compile": {"optimizer": {"schedule": {"type": "step", "factor": 2}}}}, "less than 1"),
        (
            {
                "compile": {"optimizer": {"schedule": {"type": "cosine"}}},
                "callbacks": [{"type": "ReduceLROnPlateau"}],
            },
            "both set the learning rate",
        ),
        (
            {"compile": {"optimizer": {"schedule": {"type": "warmup", "warmup_steps": 3,
                                                    "alpha": 0.1}}}},
            "alpha apply to then: cosine only",
        ),
        ({"fit": {"class_weight": "inverse"}}, "balanced"),
        ({"fit": {"class_weight": {"10": 1.0}}}, "class indices [10] are out of range"),
        ({"fit": {"class_weight": {"0": 0.0}}}, "at least one weight must be above 0"),
        ({"fit": {"class_weight": {"0": -1}}}, "greater than or equal to 0"),
        ({"precision": "float16"}, "mixed_float16"),
        ({"devices": 0}, "greater than or equal to 1"),
        ({"artifacts": ["onnx"]}, "tflite_quant"),
        ({"artifacts": ["keras", "h5", "h5"]}, "h5 listed more than once"),
        ({"compile": {"loss": {"name": "focal", "gamma": -1}}}, "greater than or equal to 0"),
        ({"compile": {"loss": {"name": "focal", "beta": 1}}}, "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_recipe_fields_are_refused_with_a_reason(
    overrides: dict[str, Any], message: str
) -> None:
    assert message in _error(**overrides)


def _head(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"layers": [{"type": "Flatten"}, *layers]}


@pytest.mark.parametrize(
    ("model", "loss", "message"),
    [
        (
            _head({"type": "Dense", "units": 1, "activation": "sigmoid"}),
            {"name": "focal"},
            "single output unit is binary, but dataset 'digits' has 10 classes",
        ),
        (
            _head({"type": "Dense", "units": 10}),
            {"name": "focal"},
            "activation must be softmax, not linear",
        ),
        (
            _head({"type": "Dense", "units": 10, "activation": "softmax"}),
            {"name": "focal", "from_logits": True},
            "activation must be linear, not softmax",
        ),
        (
            _head({"type": "Dense", "units": 7, "activation": "softmax"}),
            {"name": "focal"},
            "the output layer has 7 units but dataset 'digits' has 10 classes",
        ),
        (
            _head({"type": "Dense", "units": 10, "activation": "softmax"}),
            "binary_focal_crossentropy",
            "needs a single sigmoid output unit",
        ),
    ],
)
def test_focal_loss_must_match_the_output_layer(model: Any, loss: Any, message: str) -> None:
    assert message in _error(model=model, compile={"loss": loss})


def test_focal_loss_accepts_matching_heads() -> None:
    _spec(compile={"loss": {"name": "focal", "gamma": 1.5}})
    _spec(
        model=_head(
            {"type": "Dense", "units": 10}, {"type": "Activation", "activation": "softmax"}
        ),
        compile={"loss": {"name": "focal"}},
    )
    _spec(
        model=_head({"type": "Dense", "units": 10}),
        compile={"loss": {"name": "focal", "from_logits": True}},
    )
    binary = {
        "dataset": {"name": "imdb"},
        "model": {"layers": [
            {"type": "Embedding", "input_dim": 100, "output_dim": 4},
            {"type": "GlobalAveragePooling1D"},
            {"type": "Dense", "units": 1, "activation": "sigmoid"},
        ]},
        "compile": {"loss": {"name": "focal", "alpha": 0.25}, "metrics": ["accuracy"]},
    }  # fmt: skip
    ExperimentSpec.model_validate(binary)
    # a template builds its own output layer: nothing to check statically
    ExperimentSpec.model_validate(
        {**BASE, "model": {"template": "mlp"}, "compile": {"loss": {"name": "focal"}}}
    )


def test_schema_describes_the_new_fields() -> None:
    schema = ExperimentSpec.model_json_schema()
    props = schema["properties"]
    for field in ("precision", "devices", "scale_batch_size", "artifacts", "tensorboard"):
        assert props[field].get("description"), field
    assert props["precision"]["enum"] == ["float32", "mixed_float16", "mixed_bfloat16"]
    defs = schema["$defs"]
    assert "class_weight" in defs["FitSpec"]["properties"]
    assert "schedule" in defs["OptimizerSpec"]["properties"]
    for name in ("ExponentialScheduleSpec", "StepScheduleSpec", "CosineScheduleSpec",
                 "WarmupScheduleSpec", "FocalLossSpec"):  # fmt: skip
        assert defs[name]["additionalProperties"] is False, name
    datasets = defs["DatasetSpec"]["properties"]["name"]["enum"]
    assert {"fashion_mnist", "cifar10", "reuters"} <= set(datasets)


def test_recipe_presets_validate() -> None:
    assert {"mnist-mlp-bn-l2", "imbalanced-focal"} <= set(PRESETS)
    bn = resolve_spec(preset="mnist-mlp-bn-l2")
    assert bn.model.layers is not None
    kinds = [layer.type for layer in bn.model.layers]
    assert kinds.count("BatchNormalization") == 2 and kinds.count("Activation") == 2
    assert bn.model.layers[1].arguments["kernel_regularizer"] == {"l2": 0.01}
    focal = resolve_spec(preset="imbalanced-focal")
    assert focal.compile.loss.name == "focal"  # type: ignore[union-attr]
    assert focal.fit.class_weight == "balanced"
