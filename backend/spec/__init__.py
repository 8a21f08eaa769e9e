"""The experiment spec: one versioned pydantic model shared by the API and the worker.

Pure: imports neither the database nor Keras.
"""

from backend.spec.model import (
    CallbackSpec,
    CheckpointSpec,
    CompileSpec,
    DatasetSpec,
    EvaluationSpec,
    ExperimentSpec,
    FitSpec,
    LayerSpec,
    ModelSpec,
    OptimizerSpec,
    StreamSpec,
)
from backend.spec.presets import PRESETS, resolve_spec

__all__ = [
    "PRESETS",
    "CallbackSpec",
    "CheckpointSpec",
    "CompileSpec",
    "DatasetSpec",
    "EvaluationSpec",
    "ExperimentSpec",
    "FitSpec",
    "LayerSpec",
    "ModelSpec",
    "OptimizerSpec",
    "StreamSpec",
    "resolve_spec",
]
