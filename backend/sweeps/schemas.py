"""Request and response bodies of the sweeps API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from backend.bounds import MAX_INT32
from backend.jsonpolicy import FreeJson, check_free_json
from backend.launch import NotifyRequest, Priority

MAX_TRIALS = 10_000


class MedianPruner(BaseModel):
    """Median stopping: after warmup_epochs, stop a trial worse than the median of the others."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["median"]
    warmup_epochs: int = Field(
        default=1, ge=0, le=MAX_INT32, description="Never prune at or before this epoch."
    )
    min_trials: int = Field(
        default=3, ge=1, le=MAX_INT32, description="Other trials that must have reported the epoch."
    )


class AshaPruner(BaseModel):
    """Successive halving at rungs min_epochs * reduction_factor^k: keep the best 1/factor."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["asha"]
    min_epochs: int = Field(default=1, ge=1, le=MAX_INT32, description="The first rung.")
    reduction_factor: int = Field(default=3, ge=2, le=MAX_INT32)
    min_trials: int = Field(
        default=1,
        ge=1,
        le=MAX_INT32,
        description="Trials (this one included) needed at a rung to prune.",
    )


Pruner = Annotated[MedianPruner | AshaPruner, Field(discriminator="kind")]


class SweepCreate(BaseModel):
    """A base spec (or preset + overrides), a search space over spec paths, and how to search."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "digits lr x batch",
                    "preset": "digits-mlp",
                    "overrides": {"fit": {"epochs": 2}},
                    "space": {
                        "compile.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-2]},
                        "fit.batch_size": {"choice": [32, 64, 128]},
                        "model.layers[2].rate": {"uniform": [0.1, 0.6]},
                    },
                    "strategy": "random",
                    "objective": "val_accuracy",
                    "direction": "maximize",
                    "max_trials": 12,
                    "max_concurrent": 2,
                    "pruner": {"kind": "median", "warmup_epochs": 1, "min_trials": 3},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=180)
    spec: FreeJson | None = Field(default=None, description="A full ExperimentSpec.")
    preset: str | None = Field(default=None, description="Name from GET /api/v1/presets.")
    overrides: FreeJson | None = Field(default=None, description="Merged into the spec.")
    space: Annotated[dict[str, dict[str, Any]], AfterValidator(check_free_json)] = Field(
        description="Spec path -> {choice: [...]}, {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, "
        "{int: [lo, hi], step: s} or {int_log: [lo, hi]}; paths like model.layers[1].rate."
    )
    strategy: Literal["grid", "random", "bayesian"] = "grid"
    objective: str = Field(
        default="val_accuracy",
        min_length=1,
        max_length=100,
        description="An epoch metric whose final value ranks the trials (val_accuracy, val_loss).",
    )
    direction: Literal["minimize", "maximize"] | None = Field(
        default=None, description="Default: minimize for a loss or error, maximize otherwise."
    )
    max_trials: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TRIALS,
        description="Trials to run; grid: default (and at most) every grid point.",
    )
    max_concurrent: int = Field(default=1, ge=1, le=64, description="Trials running at once.")
    pruner: Pruner | None = None
    seed: int | None = Field(
        default=None, ge=0, le=MAX_INT32, description="Seeds random and bayesian draws."
    )
    notify: NotifyRequest | None = Field(
        default=None,
        description="Tell you when the sweep ends or fails (instead of your Account defaults).",
    )
    priority: Priority = Field(
        default="normal", description="Each trial's place in the queue (GET /api/v1/queue)."
    )

    @model_validator(mode="after")
    def _spec_or_preset(self) -> SweepCreate:
        if (self.spec is None) == (self.preset is None):
            raise ValueError("give either 'spec' or 'preset'")
        if not self.name.strip():
            raise ValueError("name must not be blank")
        return self

    @property
    def resolved_direction(self) -> str:
        if self.direction is not None:
            return self.direction
        lowered = self.objective.lower()
        return "minimize" if "loss" in lowered or "error" in lowered else "maximize"


class Progress(BaseModel):
    total: int = Field(description="Trials planned (max_trials).")
    created: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    pruned: int
    done: int = Field(description="Trials finished in any way.")


class BestTrial(BaseModel):
    run_id: int
    trial_number: int
    params: dict[str, Any]
    objective: float


class SweepOut(BaseModel):
    id: int
    name: str
    status: str
    strategy: str
    objective: str
    direction: str
    max_trials: int
    max_concurrent: int
    pruner: dict[str, Any] | None
    seed: int | None
    priority: str = "normal"
    preset: str | None
    space: dict[str, Any]
    base_spec: dict[str, Any] | None = None
    created_at: datetime
    finished_at: datetime | None
    launched_by_id: int | None
    progress: Progress
    best: BestTrial | None


class SweepPage(BaseModel):
    items: list[SweepOut]
    total: int
    limit: int
    offset: int


class TrialOut(BaseModel):
    run_id: int
    trial_number: int
    name: str
    status: str
    params: dict[str, Any]
    objective: float | None
    started_at: datetime | None
    finished_at: datetime | None
    failure_reason: str | None


class TrialList(BaseModel):
    sweep_id: int
    objective: str
    direction: str
    items: list[TrialOut]


class SweepPreview(BaseModel):
    """What POST /sweeps would create, checked the same way; nothing is stored."""

    strategy: str
    direction: str
    trials: int = Field(description="Trials the sweep would run (a grid: its points, capped).")
    grid_points: int | None = Field(description="Every point of a grid; null otherwise.")


class ParamImportance(BaseModel):
    param: str = Field(description="A spec path of the space.")
    importance: float = Field(description="Share of the objective's variance (all sum to 1).")


class ImportanceOut(BaseModel):
    sweep_id: int
    objective: str
    evaluator: str = Field(description="How it was computed: Optuna's fANOVA evaluator.")
    finished: int = Field(description="Succeeded trials with an objective value.")
    needed: int = Field(description="Finished trials needed before importance is computed.")
    items: list[ParamImportance] = Field(description="Most important first; empty until needed.")
