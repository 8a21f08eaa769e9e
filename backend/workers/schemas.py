"""Bodies of the worker protocol (version 1, under /api/v1/worker)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.bounds import Count64, Id
from backend.jsonpolicy import BoundedJson

Attempt = Id
ARTIFACT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimIn(_Body):
    host: str = Field(min_length=1, max_length=255, description="The worker's host name.")


class ClaimOut(BaseModel):
    run_id: int
    attempt: int = Field(description="Send it with every write: a stale attempt gets 409.")
    spec: dict[str, Any] = Field(description="The run's resolved experiment spec.")
    log_offset: int = Field(description="Byte offset where this attempt's log lines go.")


class AttemptIn(_Body):
    attempt: Attempt | None = Field(description="null for a run trained by hand")


class HeartbeatOut(BaseModel):
    cancel_requested: bool


class SpecOut(BaseModel):
    spec: dict[str, Any]


class ModelSummaryIn(_Body):
    attempt: Attempt | None = None
    summary: BoundedJson


class EvaluationIn(_Body):
    attempt: Attempt | None = None
    split: str = Field(min_length=1, max_length=32)
    class_names: list[str] = Field(max_length=10_000)
    confusion_matrix: list[list[Count64]] = Field(max_length=10_000)
    report: BoundedJson


class FinishIn(_Body):
    attempt: Attempt | None = None
    status: Literal["succeeded", "failed", "cancelled", "pruned"]
    reason: str | None = Field(default=None, max_length=10_000)
    traceback: str | None = Field(default=None, max_length=1_000_000)


class FinishOut(BaseModel):
    recorded: bool = Field(description="False when the run had already ended.")


class ExitIn(_Body):
    """A training process ended without recording its outcome (crashed, killed)."""

    attempt: Attempt
    reason: str = Field(min_length=1, max_length=10_000)
    cancelled: bool = Field(default=False, description="killed after a cancel's grace period")
    traceback: str | None = Field(default=None, max_length=1_000_000)


class ExitOut(BaseModel):
    status: str = Field(description="What became of the run: queued again, failed, ...")


class ArtifactOut(BaseModel):
    name: str
    size_bytes: int


class ArtifactDeletedOut(BaseModel):
    deleted: bool = Field(description="False when the run had no artifact of that name.")


class ResumeOut(BaseModel):
    """The checkpoint an attempt resumes from; all null when it starts from epoch 0."""

    epoch: int | None = Field(default=None, description="Train on after this epoch (1-based).")
    step: int | None = Field(default=None, description="The last batch step before it.")
    artifact: str | None = Field(default=None, description="The checkpoint artifact's name.")
    run_id: int | None = Field(
        default=None,
        description="Whose artifact it is: null for the run's own; a fork's first attempt "
        "starts from its source run's (fetch it from GET /runs/{run_id}/artifacts/{name}).",
    )


class LogOut(BaseModel):
    size: int = Field(description="The log's size after this chunk: where the next one goes.")


class PruneIn(_Body):
    epoch: Id
    value: float | None = Field(description="The objective at that epoch; null for NaN.")


class PruneOut(BaseModel):
    objective: str | None = Field(default=None, description="The epoch metric watched.")
    prune: str | None = Field(default=None, description="Why to stop now; null to go on.")


class ManifestFile(BaseModel):
    size: int
    sha256: str


class ManifestOut(BaseModel):
    dataset_id: int
    files: dict[str, ManifestFile] = Field(description="Relative path -> size and SHA-256.")


class WorkerTokenCreate(_Body):
    name: str = Field(min_length=1, max_length=100)


class WorkerTokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    last_host: str | None
    revoked_at: datetime | None


class WorkerTokenCreated(WorkerTokenOut):
    token: str = Field(description="Shown once: give it to the worker as FITBOARD_WORKER_TOKEN.")


class WorkerTokenList(BaseModel):
    items: list[WorkerTokenOut]


class GpuIn(_Body):
    index: Count64
    uuid: str = Field(default="", max_length=100)
    name: str = Field(default="", max_length=200)
    memory_mb: Count64 | None = None
    util_pct: float | None = Field(default=None, ge=0, le=100, description="Utilisation now.")
    memory_used_mb: Count64 | None = None


class ResourcesIn(_Body):
    cpus: Count64 | None = None
    ram_mb: Count64 | None = None
    concurrency: Count64 | None = Field(default=None, description="Runs it trains at once.")
    queue: str | None = Field(
        default=None,
        max_length=200,
        description="The base queue it consumes (FITBOARD_QUEUE): the API sends that queue's "
        "runs as its slots free up.",
    )
    pool: str | None = Field(
        default=None,
        max_length=100,
        description="The pool it declares (FITBOARD_POOL): runs that ask for a pool go only "
        "to its workers.",
    )
    own_queue: bool = Field(
        default=False,
        description="It also consumes `<queue>.on-<name>`, where the API sends the runs it "
        "books on this worker for their GPU type or pool.",
    )
    gpus: list[GpuIn] = Field(default_factory=list, max_length=64)


class RunningIn(_Body):
    run_id: Id
    attempt: Id | None = None
    gpus: list[Count64] = Field(default_factory=list, max_length=64)


class HostIn(_Body):
    """What a worker reports at start and with every beat."""

    host: str = Field(min_length=1, max_length=255)
    version: str = Field(default="", max_length=64)
    resources: ResourcesIn
    running: list[RunningIn] = Field(default_factory=list, max_length=256)


class GpuOut(BaseModel):
    index: int
    uuid: str
    name: str
    memory_mb: int | None
    util_pct: float | None = None
    memory_used_mb: int | None = None
    run_id: int | None = Field(description="The run this GPU trains now; null when free.")


class RunningOut(BaseModel):
    run_id: int
    run_name: str | None
    attempt: int | None
    gpus: list[int]


class WorkerOut(BaseModel):
    name: str
    host: str
    online: bool = Field(description="Reported within FITBOARD_WORKER_LOST_AFTER_S.")
    version: str
    started_at: datetime
    last_seen_at: datetime
    cpus: int | None
    ram_mb: int | None
    concurrency: int | None
    queue: str | None = None
    pool: str | None = Field(default=None, description="The pool it declares (FITBOARD_POOL).")
    gpus: list[GpuOut]
    running: list[RunningOut]


class WorkerList(BaseModel):
    items: list[WorkerOut]
