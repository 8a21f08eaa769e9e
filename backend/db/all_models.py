"""Import every table so Base.metadata is complete (Alembic and tests use this)."""

from backend.artifacts.models import Artifact
from backend.datasets.models import UploadedDataset
from backend.db.base import Base
from backend.evaluation.models import Evaluation
from backend.events.models import RunEvent
from backend.metrics.models import LatestMetric, MetricPoint
from backend.runs.models import Run

__all__ = [
    "Artifact",
    "Base",
    "Evaluation",
    "LatestMetric",
    "MetricPoint",
    "Run",
    "RunEvent",
    "UploadedDataset",
]
