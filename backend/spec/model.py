"""ExperimentSpec: everything a run is, versioned (``spec_version: 1``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.spec.catalog import ACTIVATIONS, DATASETS, LAYERS, LOSSES, METRICS, REGULARIZER_KEYS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """Which data, which slice of it and how it is prepared."""

    name: Literal["digits", "mnist", "imdb"] = Field(
        description="Registered dataset: digits (bundled with scikit-learn), mnist, imdb."
    )
    train_limit: int | None = Field(
        default=None, ge=1, description="Use only the first N training examples."
    )
    test_limit: int | None = Field(
        default=None, ge=1, description="Use only the first N test examples."
    )
    test_split: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Fraction held out as the test split for datasets that have none (digits).",
    )
    normalize: bool = Field(default=True, description="Scale pixel values to [0, 1].")
    num_words: int | None = Field(
        default=10000, ge=2, description="Text: keep the N most frequent words."
    )
    maxlen: int | None = Field(
        default=200, ge=1, description="Text: pad or truncate every sequence to this length."
    )
    padding: Literal["pre", "post"] = Field(default="pre", description="Text: pad at this side.")
    truncating: Literal["pre", "post"] = Field(
        default="pre", description="Text: cut long sequences at this side."
    )

    @property
    def num_classes(self) -> int:
        return DATASETS[self.name][0]

    @property
    def class_names(self) -> list[str]:
        return list(DATASETS[self.name][1])


class LayerSpec(BaseModel):
    """One Keras layer: ``{"type": "Dense", "units": 512, "activation": "relu"}``."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(description="Keras layer class, e.g. Dense, Dropout, LSTM, Conv2D.")

    @model_validator(mode="after")
    def _known_layer(self) -> LayerSpec:
        if self.type not in LAYERS:
            known = ", ".join(sorted(LAYERS))
            raise ValueError(f"unknown layer type '{self.type}'; known: {known}")
        allowed, required = LAYERS[self.type]
        args = self.arguments
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise ValueError(
                f"{self.type} does not take {', '.join(map(repr, unknown))}; "
                f"it takes {', '.join(sorted(allowed))}"
            )
        missing = sorted(required - set(args))
        if missing:
            raise ValueError(f"{self.type} needs {', '.join(map(repr, missing))}")
        for key, value in args.items():
            _check_argument(self.type, key, value)
        if self.type == "Bidirectional":
            inner = LayerSpec.model_validate(args["layer"])
            if inner.type not in {"LSTM", "GRU", "SimpleRNN"}:
                raise ValueError("Bidirectional wraps LSTM, GRU or SimpleRNN")
        return self

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _check_argument(layer: str, key: str, value: Any) -> None:
    if key in {"activation", "recurrent_activation"} and value is not None:
        if value not in ACTIVATIONS:
            raise ValueError(f"{layer}.{key}: unknown activation {value!r}")
    elif key.endswith("_regularizer") and value is not None:
        if not isinstance(value, dict) or not value or set(value) - REGULARIZER_KEYS:
            raise ValueError(f'{layer}.{key}: expected an object like {{"l2": 0.01}}')
        for k, v in value.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{layer}.{key}.{k}: expected a number >= 0")
    elif key in {"units", "filters", "input_dim", "output_dim"}:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{layer}.{key}: expected a positive integer")
    elif key in {"rate", "dropout", "recurrent_dropout"}:
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
            raise ValueError(f"{layer}.{key}: expected a number in [0, 1)")


class ModelSpec(_Strict):
    """A list of Keras layers, or a named template with parameters."""

    layers: list[LayerSpec] | None = Field(
        default=None, description="Layers in order; the input shape comes from the dataset."
    )
    template: Literal["mlp"] | None = Field(
        default=None, description="Named template instead of layers."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Template parameters.")

    @model_validator(mode="after")
    def _one_of(self) -> ModelSpec:
        if (self.layers is None) == (self.template is None):
            raise ValueError("give either 'layers' or 'template'")
        if self.layers is not None and not self.layers:
            raise ValueError("'layers' needs at least one layer")
        return self


class OptimizerSpec(_Strict):
    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    momentum: float | None = Field(default=None, ge=0, lt=1, description="sgd, rmsprop")
    nesterov: bool | None = Field(default=None, description="sgd")
    beta_1: float | None = Field(default=None, gt=0, lt=1)
    beta_2: float | None = Field(default=None, gt=0, lt=1)
    epsilon: float | None = Field(default=None, gt=0)
    rho: float | None = Field(default=None, gt=0, lt=1, description="rmsprop")
    weight_decay: float | None = Field(default=None, ge=0)
    clipvalue: float | None = Field(default=None, gt=0, description="Clip each gradient value.")
    clipnorm: float | None = Field(default=None, gt=0, description="Clip each gradient's norm.")

    @model_validator(mode="after")
    def _arguments_fit(self) -> OptimizerSpec:
        only = {"momentum": {"sgd", "rmsprop"}, "nesterov": {"sgd"}, "rho": {"rmsprop"}}
        for arg, names in only.items():
            if getattr(self, arg) is not None and self.name not in names:
                raise ValueError(f"{arg} applies to {' and '.join(sorted(names))} only")
        if self.clipvalue is not None and self.clipnorm is not None:
            raise ValueError("give clipvalue or clipnorm, not both")
        return self


class CompileSpec(_Strict):
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    loss: str = Field(default="sparse_categorical_crossentropy", description="Keras loss name.")
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"])

    @model_validator(mode="after")
    def _known(self) -> CompileSpec:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(sorted(LOSSES))}")
        for metric in self.metrics:
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
        return self


class FitSpec(_Strict):
    epochs: int = Field(default=5, ge=1, le=10000)
    batch_size: int = Field(default=32, ge=1, le=65536)
    validation_split: float | None = Field(
        default=0.1, ge=0, lt=1, description="Fraction of training data held out for validation."
    )
    validation_data: Literal["test"] | None = Field(
        default=None, description="Validate on the test split instead of a split."
    )
    shuffle: bool = True
    seed: int | None = Field(default=42, description="Seeds Python, NumPy and the backend.")

    @model_validator(mode="after")
    def _one_validation(self) -> FitSpec:
        if self.validation_data is not None and self.validation_split:
            raise ValueError("give validation_split or validation_data, not both")
        return self


class EarlyStoppingSpec(_Strict):
    type: Literal["EarlyStopping"]
    monitor: str = "val_loss"
    patience: int = Field(default=3, ge=0)
    min_delta: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class ReduceLROnPlateauSpec(_Strict):
    type: Literal["ReduceLROnPlateau"]
    monitor: str = "val_loss"
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: int = Field(default=2, ge=0)
    min_delta: float = Field(default=1e-4, ge=0)
    min_lr: float = Field(default=0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"


CallbackSpec = Annotated[EarlyStoppingSpec | ReduceLROnPlateauSpec, Field(discriminator="type")]


class StreamSpec(_Strict):
    every_n_batches: int = Field(
        default=1, ge=1, description="Send batch metrics every N batches (epoch metrics always)."
    )


class ExperimentSpec(_Strict):
    """A run: dataset, model, compile, fit, callbacks and streaming."""

    spec_version: Literal[1] = 1
    dataset: DatasetSpec
    model: ModelSpec
    compile: CompileSpec = Field(default_factory=CompileSpec)
    fit: FitSpec = Field(default_factory=FitSpec)
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    stream: StreamSpec = Field(default_factory=StreamSpec)
