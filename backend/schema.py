"""Every table, imported so Base.metadata is complete (Alembic, tests, and db.session load it)."""

from backend.artifacts.models import Artifact
from backend.audit.models import AuditEvent
from backend.datasets.models import UploadedDataset
from backend.db.base import Base
from backend.evaluation.models import EpochEvaluation, Evaluation
from backend.events.models import RunEvent
from backend.metrics.models import LatestMetric, MetricPoint
from backend.metrics.rollups import MetricRollup
from backend.notify.models import DeliveryAttempt, Notification, NotifySettings, NotifyWatch
from backend.runs.models import Run, RunParam
from backend.sweeps.models import Sweep
from backend.users.models import ApiToken, User, UserSession
from backend.workers.models import WorkerHost, WorkerToken

__all__ = [
    "ApiToken",
    "Artifact",
    "AuditEvent",
    "Base",
    "DeliveryAttempt",
    "EpochEvaluation",
    "Evaluation",
    "LatestMetric",
    "MetricPoint",
    "MetricRollup",
    "Notification",
    "NotifySettings",
    "NotifyWatch",
    "Run",
    "RunEvent",
    "RunParam",
    "Sweep",
    "UploadedDataset",
    "User",
    "UserSession",
    "WorkerHost",
    "WorkerToken",
]
