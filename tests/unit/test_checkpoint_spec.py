"""spec.checkpoint: on by default, bounded, with 422 messages that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.api.errors import validation_body
from backend.spec import ExperimentSpec
from backend.spec.presets import PRESETS, deep_merge, resolve_spec

BASE: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "model": {"layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]},
}


def _errors(**overrides: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        ExperimentSpec.model_validate(deep_merge(BASE, overrides))
    body = validation_body(info.value.errors(), prefix=("spec",))
    return {e["field"]: e["message"] for e in body["errors"]}


def test_checkpoints_are_on_by_default_and_a_stored_spec_without_them_still_validates() -> None:
    spec = ExperimentSpec.model_validate(BASE)
    assert spec.checkpoint.every_epochs == 1 and spec.checkpoint.keep == 2
    dumped = spec.model_dump(mode="json")
    assert dumped["checkpoint"] == {"every_epochs": 1, "keep": 2}
    old = {k: v for k, v in dumped.items() if k != "checkpoint"}
    assert ExperimentSpec.model_validate(old) == spec


def test_every_epochs_zero_turns_checkpoints_off_and_values_round_trip() -> None:
    spec = ExperimentSpec.model_validate(deep_merge(BASE, {"checkpoint": {"every_epochs": 0}}))
    assert spec.checkpoint.every_epochs == 0
    spec = ExperimentSpec.model_validate(
        deep_merge(BASE, {"checkpoint": {"every_epochs": 5, "keep": 3}})
    )
    again = ExperimentSpec.model_validate(spec.model_dump(mode="json"))
    assert again.checkpoint.every_epochs == 5 and again.checkpoint.keep == 3


@pytest.mark.parametrize(
    ("checkpoint", "field", "message"),
    [
        ({"every_epochs": -1}, "spec.checkpoint.every_epochs", "greater than or equal to 0"),
        ({"every_epochs": 10001}, "spec.checkpoint.every_epochs", "less than or equal to 10000"),
        ({"keep": 0}, "spec.checkpoint.keep", "greater than or equal to 1"),
        ({"keep": 101}, "spec.checkpoint.keep", "less than or equal to 100"),
        ({"every": 1}, "spec.checkpoint.every", ""),
    ],
)
def test_bad_values_name_the_field(checkpoint: dict[str, Any], field: str, message: str) -> None:
    errors = _errors(checkpoint=checkpoint)
    assert field in errors, errors
    assert message in errors[field]


def test_the_schema_describes_the_section_for_the_form() -> None:
    schema = ExperimentSpec.model_json_schema()
    assert "checkpoint" in schema["properties"]
    section = schema["$defs"]["CheckpointSpec"]["properties"]
    assert section["every_epochs"]["default"] == 1 and section["every_epochs"]["minimum"] == 0
    assert section["keep"]["default"] == 2 and section["keep"]["minimum"] == 1
    assert all(field.get("description") for field in section.values())


def test_every_preset_resolves_with_checkpoints_on() -> None:
    for name in PRESETS:
        assert resolve_spec(preset=name).checkpoint.every_epochs == 1, name
