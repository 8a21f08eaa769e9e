"""The spec's JSON Schema and the presets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from backend.spec import PRESETS, ExperimentSpec
from backend.spec.presets import preset_spec

router = APIRouter(tags=["spec"])


class Preset(BaseModel):
    name: str
    description: str
    spec: ExperimentSpec


@router.get("/spec/schema")
def spec_schema() -> dict[str, Any]:
    """JSON Schema of ExperimentSpec (spec_version 1)."""
    return ExperimentSpec.model_json_schema()


@router.get("/presets", response_model=list[Preset])
def list_presets() -> list[Preset]:
    return [
        Preset(
            name=name,
            description=p["description"],
            spec=ExperimentSpec.model_validate(preset_spec(name)),
        )
        for name, p in PRESETS.items()
    ]
