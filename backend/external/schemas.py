"""Request and response bodies of runs streamed from elsewhere (FitboardCallback, RemoteMonitor)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.bounds import Count64, Id
from backend.jsonpolicy import MAX_WALL_TIME, BoundedJson, FreeJson

MAX_POINTS_PER_POST = 20_000
MAX_KEYS_PER_POST = 20_000
KEY_PATTERN = r"^[A-Za-z0-9_./@:+-]+$"
MAX_EVENTS_PER_POST = 1000
# kinds the API writes itself (a run's status, its evaluation, ...): a script may not post them
RESERVED_EVENT_KINDS = frozenset(
    {
        "status",
        "metrics",
        "evaluation",
        "epoch_evaluation",
        "artifact",
        "checkpoint",
        "resumed",
        "train_begin",
    }
)


class ExternalRunCreate(BaseModel):
    """A run trained outside Fitboard; its spec is whatever the script describes itself with."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "laptop cnn", "params": {"lr": 0.001, "epochs": 5}}]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    spec: FreeJson | None = Field(
        default=None, description="Stored as the run's spec (any JSON object)."
    )
    params: FreeJson | None = Field(
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

    key: str = Field(min_length=1, max_length=190, pattern=KEY_PATTERN)
    step: Count64 = Field(description="Epoch points: the epoch number from 1; batch: global.")
    value: float | None = Field(description="null for NaN; +-1e300 stands for +-infinity.")
    kind: Literal["epoch", "batch"] | None = Field(
        default=None, description="'batch' stores the key under 'batch/' (as the worker does)."
    )
    wall_time: float | None = Field(
        default=None,
        ge=0,
        le=MAX_WALL_TIME,
        allow_inf_nan=False,
        description="Unix time in seconds (finite); now when omitted.",
    )


MetricKey = Annotated[str, Field(min_length=1, max_length=190, pattern=KEY_PATTERN)]
FiniteValue = Annotated[float, Field(allow_inf_nan=False)]
WallTime = Annotated[float, Field(ge=0, le=MAX_WALL_TIME, allow_inf_nan=False)]
KeyIndex = Annotated[int, Field(ge=0, le=MAX_KEYS_PER_POST - 1)]


class PointColumnsIn(BaseModel):
    """A batch of points as parallel arrays: point i is (keys[key_index[i]], steps[i],
    values[i], wall_times[i]). Every per-point array has one entry per point."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "keys": ["batch/loss", "batch/accuracy"],
                    "key_index": [0, 1, 0, 1],
                    "steps": [1, 1, 2, 2],
                    "values": [0.69, 0.5, None, 0.55],
                    "wall_times": [1764800000.0, 1764800000.0, 1764800000.1, 1764800000.1],
                }
            ]
        },
    )

    keys: list[MetricKey] = Field(
        max_length=MAX_KEYS_PER_POST,
        description="The key names the points use, each once; stored as named (a batch series "
        "is sent as 'batch/<name>').",
    )
    key_index: list[KeyIndex] = Field(
        max_length=MAX_POINTS_PER_POST, description="Per point: its key's index in keys."
    )
    steps: list[Count64] = Field(
        max_length=MAX_POINTS_PER_POST,
        description="Per point: its step (epoch points: the epoch from 1; batch: global).",
    )
    values: list[FiniteValue | None] = Field(
        max_length=MAX_POINTS_PER_POST,
        description="Per point: a finite number, or null for NaN; +-1e300 stands for +-infinity.",
    )
    wall_times: list[WallTime] | None = Field(
        default=None,
        max_length=MAX_POINTS_PER_POST,
        description="Per point: Unix time in seconds; now for every point when omitted.",
    )

    def arrays(self) -> dict[str, Any]:
        """The arrays by field name, not copied."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class TrainBegin(BaseModel):
    """What a progress bar needs: the same fields as a worker's train_begin event."""

    epochs: Count64 | None = None
    steps_per_epoch: Count64 | None = None
    batch_size: Count64 | None = None
    train_samples: Count64 | None = None


class EventIn(BaseModel):
    """A note on the run's timeline (what the worker's flusher sends beside its points)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="A script may not send the kinds the API or a worker writes (status, "
        "metrics, evaluation, epoch_evaluation, artifact, checkpoint, resumed, train_begin).",
    )
    data: BoundedJson
    uid: str = Field(
        min_length=1, max_length=60, description="The sender's id: resending it is a no-op."
    )


def reserved_kind_error(kind: str) -> str | None:
    """Why a script may not send an event of ``kind`` (None when it may)."""
    if kind not in RESERVED_EVENT_KINDS:
        return None
    hint = " (send it as train_begin)" if kind == "train_begin" else ""
    return f"event kind {kind!r} is written by the API itself{hint}"


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
                },
                {
                    "uid": "laptop-2",
                    "columns": {
                        "keys": ["batch/loss", "batch/accuracy"],
                        "key_index": [0, 1, 0, 1],
                        "steps": [11, 11, 12, 12],
                        "values": [0.41, 0.86, None, 0.87],
                    },
                },
            ]
        },
    )

    uid: str | None = Field(
        default=None,
        max_length=48,
        description="The sender's id for this batch: resending the same uid is a no-op.",
    )
    attempt: Id | None = Field(
        default=None,
        description="A worker (worker token) sends the attempt it trains: a stale one gets "
        "409 superseded. Scripts leave it out.",
    )
    points: list[PointIn] = Field(
        default_factory=list,
        max_length=MAX_POINTS_PER_POST,
        description="Points one object each. Large batches are cheaper as columns.",
    )
    columns: PointColumnsIn | None = Field(
        default=None,
        description="The same points as parallel arrays (what FitboardCallback and the worker "
        "send): parsed and stored in bulk. May come beside points; at most "
        f"{MAX_POINTS_PER_POST:,} points in all.",
    )
    train_begin: TrainBegin | None = None
    events: list[EventIn] = Field(
        default_factory=list,
        max_length=MAX_EVENTS_PER_POST,
        description="Timeline events stored with the points (idempotent by their own uid).",
    )


class PointsAccepted(BaseModel):
    run_id: int
    points: int = Field(description="Points in this post (a repeated point is stored once).")
    cancel_requested: bool = Field(description="Someone asked this run to stop.")
    watched: bool = Field(
        default=False,
        description="Someone watches this run live: a sender may post more often (the "
        "training process then writes every few tens of milliseconds instead of every "
        "FITBOARD_FLUSH_INTERVAL_S).",
    )


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str = Field(default="test", min_length=1, max_length=32)
    class_names: list[str] = Field(min_length=1, max_length=1000)
    confusion_matrix: list[list[Count64]] = Field(
        description="Rows are true classes, columns predicted, in class_names order."
    )
    report: FreeJson | None = Field(
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
