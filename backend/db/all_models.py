"""Import every table so Base.metadata is complete (Alembic and tests use this)."""

from backend.artifacts.models import Artifact
from backend.datasets.models import UploadedDataset
from backend.db.base import Base
from backend.evaluation.models import EpochEvaluation, Evaluation
from backend.events.models import RunEvent
from backend.metrics.models import LatestMetric, MetricPoint
from backend.metrics.rollups import MetricRollup
from backend.runs.models import Run, RunParam
from backend.sweeps.models import Sweep
from backend.users.models import ApiToken, User, UserSession

__all__ = [
    "ApiToken",
    "Artifact",
    "Base",
    "EpochEvaluation",
    "Evaluation",
    "LatestMetric",
    "MetricPoint",
    "MetricRollup",
    "Run",
    "RunEvent",
    "RunParam",
    "Sweep",
    "UploadedDataset",
    "User",
    "UserSession",
]
