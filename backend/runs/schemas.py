"""Request and response bodies of the runs API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.runs.models import Run
from backend.spec import ExperimentSpec


class RunCreate(BaseModel):
    """A spec, or a preset with optional overrides (deep-merged; lists are replaced)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "quick digits",
                    "preset": "digits-mlp",
                    "overrides": {"fit": {"epochs": 3}},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, Any] | None = Field(default=None, description="A full ExperimentSpec.")
    preset: str | None = Field(default=None, description="Name from GET /api/v1/presets.")
    overrides: dict[str, Any] | None = Field(default=None, description="Merged into the spec.")

    @model_validator(mode="after")
    def _spec_or_preset(self) -> RunCreate:
        if (self.spec is None) == (self.preset is None):
            raise ValueError("give either 'spec' or 'preset'")
        if not self.name.strip():
            raise ValueError("name must not be blank")
        return self


class RunSummary(BaseModel):
    id: int
    name: str
    status: str
    preset: str | None
    dataset: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    worker_host: str | None
    final_metrics: dict[str, float | None]

    @classmethod
    def of(cls, run: Run, final_metrics: dict[str, float | None]) -> RunSummary:
        duration = None
        if run.started_at is not None:
            end = run.finished_at or datetime.now(run.started_at.tzinfo)
            duration = round((end - run.started_at).total_seconds(), 3)
        return cls(
            id=run.id,
            name=run.name,
            status=run.status,
            preset=run.preset,
            dataset=(run.spec.get("dataset") or {}).get("name"),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_s=duration,
            worker_host=run.worker_host,
            final_metrics={k: v for k, v in final_metrics.items() if not k.startswith("batch/")},
        )


class RunOut(RunSummary):
    spec: ExperimentSpec
    failure_reason: str | None
    failure_traceback: str | None
    cancel_requested: bool
    model_summary: dict[str, Any] | None
    last_event_id: int

    @classmethod
    def full(cls, run: Run, final_metrics: dict[str, float | None], last_event_id: int) -> RunOut:
        summary = RunSummary.of(run, final_metrics)
        return cls(
            **summary.model_dump(),
            spec=ExperimentSpec.model_validate(run.spec),
            failure_reason=run.failure_reason,
            failure_traceback=run.failure_traceback,
            cancel_requested=run.cancel_requested_at is not None,
            model_summary=run.model_summary,
            last_event_id=last_event_id,
        )


class RunPage(BaseModel):
    items: list[RunSummary]
    total: int
    next_cursor: int | None = Field(description="Pass as before_id for the next page.")
