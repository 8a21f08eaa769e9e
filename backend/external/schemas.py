"""Request and response bodies of runs streamed from elsewhere (FitboardCallback, RemoteMonitor)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_POINTS_PER_POST = 20_000


class ExternalRunCreate(BaseModel):
    """A run trained outside Fitboard; its spec is whatever the script describes itself with."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "laptop cnn", "params": {"lr": 0.001, "epochs": 5}}]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, Any] | None = Field(
        default=None, description="Stored as the run's spec (any JSON object)."
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Hyperparameters; stored as the spec when no spec is given."
    )
    dataset: str | None = Field(default=None, max_length=100, description="Dataset name.")
    tags: list[str] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _checks(self) -> ExternalRunCreate:
        if not self.name.strip():
            raise ValueError("name must not be blank")
        return self


class PointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=190, pattern=r"^[A-Za-z0-9_./@:+-]+$")
    step: int = Field(ge=0, description="Epoch points: the epoch number from 1; batch: global.")
    value: float | None = Field(description="null for NaN; +-1e300 stands for +-infinity.")
    kind: Literal["epoch", "batch"] | None = Field(
        default=None, description="'batch' stores the key under 'batch/' (as the worker does)."
    )
    wall_time: float | None = Field(default=None, description="Unix time; now when omitted.")


class TrainBegin(BaseModel):
    """What a progress bar needs: the same fields as a worker's train_begin event."""

    epochs: int | None = Field(default=None, ge=0)
    steps_per_epoch: int | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, ge=0)
    train_samples: int | None = Field(default=None, ge=0)


class PointsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "uid": "laptop-1",
                    "points": [
                        {"key": "loss", "step": 1, "value": 0.42},
                        {"key": "loss", "step": 10, "value": 0.5, "kind": "batch"},
                    ],
                }
            ]
        },
    )

    uid: str | None = Field(
        default=None,
        max_length=48,
        description="The sender's id for this batch: resending the same uid is a no-op.",
    )
    points: list[PointIn] = Field(default_factory=list, max_length=MAX_POINTS_PER_POST)
    train_begin: TrainBegin | None = None


class PointsAccepted(BaseModel):
    run_id: int
    points: int = Field(description="Points in this post (a repeated point is stored once).")
    cancel_requested: bool = Field(description="Someone asked this run to stop.")


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str = Field(default="test", min_length=1, max_length=32)
    class_names: list[str] = Field(min_length=1, max_length=1000)
    confusion_matrix: list[list[int]] = Field(
        description="Rows are true classes, columns predicted, in class_names order."
    )
    report: dict[str, Any] | None = Field(
        default=None,
        description="scikit-learn's classification_report(output_dict=True); computed from the "
        "matrix when omitted.",
    )

    @model_validator(mode="after")
    def _square(self) -> EvaluationIn:
        n = len(self.class_names)
        if len(self.confusion_matrix) != n or any(len(row) != n for row in self.confusion_matrix):
            raise ValueError(f"confusion_matrix must be {n} x {n} (one row and column per class)")
        if any(v < 0 for row in self.confusion_matrix for v in row):
            raise ValueError("confusion_matrix counts must not be negative")
        return self


class FinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed", "cancelled"]
    reason: str | None = Field(default=None, max_length=2000)
    traceback: str | None = Field(default=None, max_length=100_000)


class RemoteMonitorAccepted(BaseModel):
    run_id: int
    epoch: int
    points: int
    status: str
