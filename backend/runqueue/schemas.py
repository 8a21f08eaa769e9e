"""Request and response bodies of the queue API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.launch import Priority as Priority


class PriorityIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"priority": "high"}]}
    )

    priority: Priority


class QueuedRun(BaseModel):
    run_id: int
    name: str
    position: int = Field(description="1 starts next.")
    priority: str = Field(description="low | normal | high")
    launched_by_id: int | None
    launched_by: str | None = Field(description="Username of who launched it.")
    gpus: int = Field(description="GPUs it asks for (0: its base queue, CPU or one GPU).")
    gpu_type: str | None = Field(default=None, description="The GPU type it asks for.")
    pool: str | None = Field(default=None, description="The worker pool it asks for.")
    queued_since: datetime
    moved_to_top: bool = Field(description="An admin moved it before every other run.")
    sent: bool = Field(description="Already handed to the workers' broker queue.")
    sweep_id: int | None
    waiting: str = Field(description="Why it has not started yet.")


class QueueOut(BaseModel):
    """Queued runs in the order they will start (sent ones first, then the held ones in
    order: moved to top, priority, fair share between launchers, age; then sweep trials that
    wait for their sweep's slots)."""

    items: list[QueuedRun]
    total: int = Field(description="All queued runs (items stops at ?limit=).")
    workers_reporting: bool = Field(description="A live worker reports its host and slots.")
