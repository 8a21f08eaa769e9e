"""The spec's JSON Schema and the presets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from backend.spec import PRESETS, ExperimentSpec, plugins
from backend.spec.presets import preset_spec
from backend.users.deps import ReaderUser

router = APIRouter(tags=["spec"])


class Preset(BaseModel):
    name: str
    description: str
    spec: ExperimentSpec


@router.get("/spec/schema")
def spec_schema(_: ReaderUser) -> dict[str, Any]:
    """JSON Schema of ExperimentSpec (spec_version 1)."""
    return ExperimentSpec.model_json_schema()


class Template(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any] | None
    source: str


@router.get("/spec/templates", response_model=list[Template])
def list_templates(_: ReaderUser) -> list[Template]:
    """model.template names: the built-in mlp and the plugins in FITBOARD_PLUGINS' directories."""
    return [Template(**item) for item in plugins.catalog()]


@router.get("/presets", response_model=list[Preset])
def list_presets(_: ReaderUser) -> list[Preset]:
    """Ready-made experiments to start a run from (POST /api/v1/runs with preset=...)."""
    return [
        Preset(
            name=name,
            description=p["description"],
            spec=ExperimentSpec.model_validate(preset_spec(name)),
        )
        for name, p in PRESETS.items()
    ]
