"""Named specs, and resolving a preset plus overrides into a validated spec."""

from __future__ import annotations

import copy
from typing import Any

from backend.spec.model import ExperimentSpec

_MLP_LAYERS: list[dict[str, Any]] = [
    {"type": "Flatten"},
    {"type": "Dense", "units": 512, "activation": "relu"},
    {"type": "Dropout", "rate": 0.5},
    {"type": "Dense", "units": 256, "activation": "relu"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]

PRESETS: dict[str, dict[str, Any]] = {
    "digits-mlp": {
        "description": "The seed MLP on scikit-learn's bundled 8x8 digits: needs no data files.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "digits"},
            "model": {"layers": _MLP_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 20, "batch_size": 32, "validation_split": 0.1, "seed": 42},
        },
    },
    "mnist-mlp": {
        "description": "The seed MLP: Dense 512 -> Dropout 0.5 -> Dense 256 -> Dropout 0.3 "
        "-> Dense 10 softmax, Adam, on MNIST.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist"},
            "model": {"layers": _MLP_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 10, "batch_size": 128, "validation_split": 0.1, "seed": 42},
        },
    },
}


class UnknownPreset(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; anything else (lists included) is replaced."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def preset_spec(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise UnknownPreset(name)
    return copy.deepcopy(PRESETS[name]["spec"])


def resolve_spec(
    *,
    spec: dict[str, Any] | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """A spec, or a preset with overrides, validated (raises pydantic.ValidationError)."""
    raw = preset_spec(preset) if preset is not None else dict(spec or {})
    if overrides:
        raw = deep_merge(raw, overrides)
    return ExperimentSpec.model_validate(raw)
