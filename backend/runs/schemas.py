"""Request and response bodies of the runs API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from backend.jsonpolicy import FreeJson, strict
from backend.launch import NotifyRequest, Priority
from backend.runs import params as run_params
from backend.runs.models import MAX_TAGS, NOTES_MAX_CHARS, TAG_MAX_CHARS, Run, dataset_of
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
    spec: FreeJson | None = Field(default=None, description="A full ExperimentSpec.")
    preset: str | None = Field(default=None, description="Name from GET /api/v1/presets.")
    overrides: FreeJson | None = Field(default=None, description="Merged into the spec.")
    notify: NotifyRequest | None = Field(
        default=None,
        description="Tell you when it ends, fails or stalls (instead of your Account defaults).",
    )
    priority: Priority = Field(
        default="normal",
        description="Its place in the queue: high goes before normal, normal before low "
        "(GET /api/v1/queue).",
    )

    @model_validator(mode="after")
    def _spec_or_preset(self) -> RunCreate:
        if (self.spec is None) == (self.preset is None):
            raise ValueError("give either 'spec' or 'preset'")
        if not self.name.strip():
            raise ValueError("name must not be blank")
        return self


class RunResume(BaseModel):
    """Resume a finished run from its newest checkpoint, optionally for more epochs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"epochs": 10}]})

    epochs: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Raise fit.epochs to this (at least the run's, more than its newest "
        "checkpoint's epoch); default: the run's fit.epochs.",
    )


class RunFork(BaseModel):
    """A new run from another's checkpoint, with spec changes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lower lr from epoch 3",
                    "from_epoch": 3,
                    "overrides": {"compile": {"optimizer": {"learning_rate": 0.0003}}},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    from_epoch: int | None = Field(
        default=None, ge=1, le=10000, description="The checkpoint's epoch; default: the newest."
    )
    overrides: FreeJson | None = Field(
        default=None,
        description="Merged into the source's spec (fit, callbacks, learning rate, ...; not "
        "dataset, model or the rest of compile: the checkpoint holds the model).",
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value


class ForkLink(BaseModel):
    run_id: int
    epoch: int = Field(description="The source's checkpoint epoch the fork starts from.")
    name: str | None = Field(default=None, description="The other run's name (None if deleted).")


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
    source: str = Field(
        default="worker", description="worker: trained here; external: streamed in by a script"
    )
    tags: list[str]
    final_metrics: dict[str, float | None]
    launched_by: str | None = Field(default=None, description="Username of who launched it.")
    priority: str = Field(default="normal", description="low | normal | high (the queue's order).")
    params: dict[str, bool | int | float | str | None] = Field(
        default_factory=dict,
        description="The spec's values at the paths asked for with ?with_params= (null where "
        "a run's spec has none).",
    )

    @classmethod
    def of(
        cls,
        run: Run,
        final_metrics: dict[str, float | None],
        *,
        launched_by: str | None = None,
        param_paths: Sequence[str] = (),
    ) -> RunSummary:
        duration = None
        if run.started_at is not None:
            end = run.finished_at or datetime.now(run.started_at.tzinfo)
            duration = round((end - run.started_at).total_seconds(), 3)
        return cls(
            id=run.id,
            name=run.name,
            status=run.status,
            preset=run.preset,
            dataset=run.dataset or dataset_of(run.spec),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_s=duration,
            worker_host=run.worker_host,
            source=run.source or "worker",
            tags=run.tags,
            # per-batch and system (sys/*) series are curves, not results
            final_metrics={
                k: v for k, v in final_metrics.items() if not k.startswith(("batch/", "sys/"))
            },
            launched_by=launched_by,
            priority=run.priority or "normal",
            params={path: run_params.value_at(run.spec, path) for path in param_paths},
        )


class RunOut(RunSummary):
    notes: str
    spec: ExperimentSpec | dict[str, Any] = Field(
        description="The ExperimentSpec; an external run's spec is what its script sent"
    )
    failure_reason: str | None
    failure_traceback: str | None
    cancel_requested: bool
    attempt: int = Field(
        default=1,
        description="Which try this is: a run whose worker or training process died trains "
        "again as its next attempt (spec.max_restarts).",
    )
    model_summary: dict[str, Any] | None
    last_event_id: int
    waiting: str | None = Field(
        default=None,
        description="For a queued run (GET /runs/{id}): why it has not started, when the "
        "fleet says (no live worker; none offers the GPUs it asks for).",
    )
    sweep_id: int | None = Field(default=None, description="The sweep this run is a trial of.")
    trial_number: int | None = None
    trial_params: dict[str, Any] | None = Field(
        default=None, description="A trial's values from its sweep's search space."
    )
    checkpoints: list[int] = Field(
        default_factory=list, description="Epochs of the stored checkpoints (resume, fork)."
    )
    forked_from: ForkLink | None = Field(
        default=None, description="The run and checkpoint epoch this fork started from."
    )
    forks: list[ForkLink] = Field(default_factory=list, description="Runs forked from this one.")
    resumable: bool = Field(
        default=False, description="Whether POST /runs/{id}/resume would take it now."
    )

    @classmethod
    def full(
        cls,
        run: Run,
        final_metrics: dict[str, float | None],
        last_event_id: int,
        *,
        launched_by: str | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> RunOut:
        summary = RunSummary.of(run, final_metrics, launched_by=launched_by)
        return cls(
            **summary.model_dump(),
            notes=run.notes,
            # an external run's spec is whatever its script described itself with (strict():
            # a row stored before the size and depth limits still reads as JSON)
            spec=ExperimentSpec.model_validate(run.spec)
            if run.source != "external"
            else strict(run.spec),
            failure_reason=run.failure_reason,
            failure_traceback=run.failure_traceback,
            cancel_requested=run.cancel_requested_at is not None,
            attempt=run.attempt,
            model_summary=run.model_summary,
            last_event_id=last_event_id,
            sweep_id=run.sweep_id,
            trial_number=run.trial_number,
            trial_params=strict(run.trial_params),
            **(lineage or {}),
        )


Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX_CHARS)
]


class RunPatch(BaseModel):
    """Fields to change; those left out stay as they are. Tags replace the run's tags."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tags": ["baseline", "lr-sweep"], "notes": "best yet"}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    tags: list[Tag] | None = Field(
        default=None,
        description=f"Replaces the tags. Each trimmed, 1-{TAG_MAX_CHARS} characters; duplicates "
        f"dropped; at most {MAX_TAGS}; read back sorted.",
    )
    notes: str | None = Field(default=None, max_length=NOTES_MAX_CHARS)

    @field_validator("name", "tags", "notes", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # validators skip defaults, so only an explicit null gets here
        if value is None:
            raise ValueError("must not be null (leave the field out to keep it)")
        return value

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, tags: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(tags))  # already trimmed by Tag; stored sorted
        if len(cleaned) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags, got {len(cleaned)}")
        return cleaned


class RunPage(BaseModel):
    items: list[RunSummary]
    total: int = Field(description="Runs matching the filters, on every page.")
    next_cursor: int | None = Field(
        description="Pass as before_id for the next page (default sort only; else use offset)."
    )
    offset: int
    limit: int


class RunColumns(BaseModel):
    """What the runs table can show besides its own columns, from the most recent runs."""

    metrics: list[str] = Field(description="Final metric keys (sort key metric:<key>).")
    params: list[str] = Field(description="Spec paths with a value (sort key param:<path>).")


class FacetValue(BaseModel):
    value: str
    count: int


class RunFacets(BaseModel):
    """Values the runs page offers in its filters, most used first."""

    statuses: list[FacetValue]
    datasets: list[FacetValue]
    presets: list[FacetValue]
    tags: list[FacetValue]
    launchers: list[FacetValue] = []
