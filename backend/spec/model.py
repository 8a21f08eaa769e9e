"""ExperimentSpec: everything a run is, versioned (``spec_version: 1``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.spec import dataset_options, plugins
from backend.spec.catalog import ACTIVATIONS, LAYERS, LOSSES, METRICS, REGULARIZER_KEYS
from backend.spec.field_errors import field_error
from backend.spec.recipes import (
    ArtifactFormat,
    ClassWeight,
    FocalLossSpec,
    Precision,
    ScheduleSpec,
    check_recipes,
    default_artifacts,
)
from backend.spec.transfer import AugmentationSpec, BaseSpec, PhaseSpec, check_transfer


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """Which data, which slice of it and how it is prepared."""

    # each field that applies to some datasets only says which (x-applies-when), for the form
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=dataset_options.annotate_dataset_schema
    )

    name: Literal[
        "digits", "mnist", "imdb", "fashion_mnist", "cifar10", "reuters", "image_folder", "upload"
    ] = Field(
        description="Registered dataset: digits (bundled with scikit-learn), mnist, imdb, "
        "fashion_mnist, cifar10, reuters; image_folder (a directory on the worker); or upload "
        "(a dataset uploaded with POST /api/v1/datasets, named by upload_id)."
    )
    upload_id: int | None = Field(
        default=None,
        ge=1,
        description="upload: the id of an uploaded dataset (GET /api/v1/datasets lists them). "
        "A CSV's target and text columns were chosen when it was uploaded; test_split holds "
        "out part of a CSV, or of an NPZ without x_test.",
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
    classes: list[int] | list[str] | None = Field(
        default=None,
        min_length=2,
        description="Keep only these classes, by label or by class name, relabelled 0..k-1 in "
        "this order; the class names stay the original ones ([5, 6, 7, 8, 9] on mnist: labels "
        "0..4 named 5..9). Applied before train_limit and test_limit.",
    )
    channels_last: bool = Field(
        default=False,
        description="Images: add a trailing channel axis (28x28 -> 28x28x1), as Conv2D expects.",
    )
    path: str | None = Field(
        default=None,
        description="image_folder: a directory on the worker with one sub-folder of images "
        "per class (class names = folder names, in alphabetical order), or with train/ and "
        "test/ (or validation/) sub-folders laid out that way. Without them, test_split of "
        "each class is held out as the test split.",
    )
    image_size: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="image_folder: [height, width] images are resized to; default [150, 150].",
    )
    color_mode: Literal["rgb", "grayscale", "rgba"] | None = Field(
        default=None,
        description="image_folder: channels images are read with; default rgb. An uploaded "
        "zip defaults to its images' own size, and grayscale when all of them are.",
    )

    @model_validator(mode="after")
    def _options_fit(self) -> DatasetSpec:
        dataset_options.check_dataset(self)
        return self

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        return dataset_options.selected_class_names(self)


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
    template: str | None = Field(
        default=None,
        description="Named template instead of layers: the built-in mlp, or a plugin's name "
        "(GET /api/v1/spec/templates lists them with their parameters).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Template parameters, checked against its schema."
    )
    base: BaseSpec | None = Field(
        default=None,
        description="Transfer learning: a pretrained network (or an earlier run's model) the "
        "layers sit on as the head.",
        json_schema_extra=dataset_options.applies_when(
            **{"dataset.name": dataset_options.image_datasets()}
        ),
    )
    augmentation: AugmentationSpec | None = Field(
        default=None,
        description="Images: random augmentation layers at the model's input.",
        json_schema_extra=dataset_options.applies_when(
            **{"dataset.name": dataset_options.image_datasets()}
        ),
    )

    @model_validator(mode="after")
    def _one_of(self) -> ModelSpec:
        if (self.layers is None) == (self.template is None):
            raise ValueError("give either 'layers' or 'template'")
        if self.layers is not None and not self.layers:
            raise ValueError("'layers' needs at least one layer")
        return self

    @model_validator(mode="after")
    def _template_known(self) -> ModelSpec:
        if self.template is None:
            return self
        for part in ("base", "augmentation"):
            if getattr(self, part) is not None:
                raise ValueError(f"{part} goes with 'layers' (the head), not with a template")
        plugins.check_template(self.template, self.params)
        return self


# optimizer arguments that some optimizers only take -> those optimizers
OPTIMIZER_ONLY: dict[str, list[str]] = {
    "momentum": ["sgd", "rmsprop"],
    "nesterov": ["sgd"],
    "rho": ["rmsprop"],
}


def _only_for(arg: str) -> dict[str, Any]:
    return dataset_options.applies_when(**{"compile.optimizer.name": OPTIMIZER_ONLY[arg]})


class OptimizerSpec(_Strict):
    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    momentum: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="sgd, rmsprop",
        json_schema_extra=_only_for("momentum"),
    )
    nesterov: bool | None = Field(
        default=None, description="sgd", json_schema_extra=_only_for("nesterov")
    )
    beta_1: float | None = Field(default=None, gt=0, lt=1)
    beta_2: float | None = Field(default=None, gt=0, lt=1)
    epsilon: float | None = Field(default=None, gt=0)
    rho: float | None = Field(
        default=None, gt=0, lt=1, description="rmsprop", json_schema_extra=_only_for("rho")
    )
    weight_decay: float | None = Field(default=None, ge=0)
    clipvalue: float | None = Field(default=None, gt=0, description="Clip each gradient value.")
    clipnorm: float | None = Field(default=None, gt=0, description="Clip each gradient's norm.")
    schedule: ScheduleSpec | None = Field(
        default=None,
        description="Learning-rate schedule starting from learning_rate, evaluated every batch.",
    )

    @model_validator(mode="after")
    def _arguments_fit(self) -> OptimizerSpec:
        for arg, names in OPTIMIZER_ONLY.items():
            if getattr(self, arg) is not None and self.name not in names:
                raise ValueError(f"{arg} applies to {' and '.join(sorted(names))} only")
        if self.clipvalue is not None and self.clipnorm is not None:
            raise ValueError("give clipvalue or clipnorm, not both")
        return self


class CompileSpec(_Strict):
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    loss: str | FocalLossSpec = Field(
        default="sparse_categorical_crossentropy",
        description='Keras loss name, or {"name": "focal", "gamma": 2, "alpha": 0.25}.',
    )
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"])

    @model_validator(mode="after")
    def _known(self) -> CompileSpec:
        if isinstance(self.loss, str) and self.loss not in LOSSES:
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
    class_weight: ClassWeight | None = Field(
        default=None,
        description='Loss weight per class index ({"0": 1.0, "1": 5.0}), or "balanced": '
        "n_samples / (n_classes * count) from the training labels, like scikit-learn.",
    )
    phases: list[PhaseSpec] | None = Field(
        default=None,
        min_length=1,
        description="Train in phases, back to back as one curve (epochs and batch steps keep "
        "counting): e.g. the head with the base frozen, then the last layers of the base at a "
        "lower rate. fit.epochs becomes their total.",
    )

    @model_validator(mode="after")
    def _one_validation(self) -> FitSpec:
        if self.validation_data is not None and self.validation_split:
            raise ValueError("give validation_split or validation_data, not both")
        return self

    @model_validator(mode="after")
    def _phases_total(self) -> FitSpec:
        if not self.phases:
            return self
        total = sum(phase.epochs for phase in self.phases)
        if "epochs" in self.model_fields_set and self.epochs != total:
            raise field_error(
                "FitSpec",
                ("epochs",),
                f"fit.epochs ({self.epochs}) differs from the phases' total ({total}): leave "
                "epochs out, or make it the total",
            )
        self.epochs = total
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


class EvaluationSpec(_Strict):
    every_epoch: bool = Field(
        default=False,
        description="Also compute the confusion matrix and classification report on the test "
        "split at the end of every epoch (one prediction pass over it per epoch), to watch "
        "them change on the run page.",
    )


class ResourcesSpec(_Strict):
    gpus: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="GPUs the run trains on, all on one worker. Not given: one when its worker "
        "has any, else the CPU (or `devices` GPUs when that is set); 0: the CPU only.",
    )
    gpu_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"\S",
        description="Only GPUs whose name (as the worker reports it) contains this, ignoring "
        "case: `A100` matches `NVIDIA A100-SXM4-80GB`. Given without `gpus`: one such GPU.",
    )
    pool: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Only workers that declare this pool (their FITBOARD_POOL); not given: any "
        "worker.",
    )

    @model_validator(mode="after")
    def _type_needs_a_gpu(self) -> ResourcesSpec:
        if self.gpu_type is not None and self.gpus == 0:
            raise ValueError("gpu_type asks for a GPU: give gpus >= 1 (or leave gpus out)")
        return self


class CheckpointSpec(_Strict):
    """Crash safety: save the model now and then, so a lost attempt resumes where it was."""

    every_epochs: int = Field(
        default=1,
        ge=0,
        le=10000,
        description="Save a checkpoint (the model with its optimizer state, as the artifact "
        "checkpoint-epoch-<k>.keras) at the end of every N epochs; a run queued again after "
        "its worker or training process died resumes from the newest one. 0 turns it off.",
    )
    keep: int = Field(
        default=2,
        ge=1,
        le=100,
        description="How many of the newest checkpoints to keep; older ones are deleted.",
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
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    precision: Precision = Field(
        default="float32",
        description="Keras dtype policy; the mixed ones compute in 16 bits, keeping variables "
        "and the output layer in float32.",
    )
    devices: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Train data-parallel on N devices: GPUs, or N logical CPU devices where "
        "there is no GPU (MirroredStrategy with TensorFlow, DataParallel with JAX).",
    )
    scale_batch_size: bool = Field(
        default=False,
        description="With devices: fit.batch_size is per device (global = batch_size x N); "
        "otherwise it is the global batch, split across the devices.",
    )
    artifacts: list[ArtifactFormat] = Field(
        default_factory=default_artifacts,
        description="Formats to save: keras (model.keras, always saved), h5 (legacy), weights "
        "(.weights.h5), savedmodel (zipped), tflite, tflite_quant (dynamic-range quantised).",
    )
    tensorboard: bool = Field(
        default=False, description="Write TensorBoard logs, kept as the artifact tensorboard.zip."
    )
    checkpoint: CheckpointSpec = Field(
        default_factory=CheckpointSpec,
        description='Checkpoints to resume a lost attempt from: {"every_epochs": 1, "keep": 2}.',
    )
    max_restarts: int = Field(
        default=3,
        ge=0,
        le=20,
        description="How many times a run whose worker or training process died (killed, "
        "machine lost) goes back to the queue and trains again; errors a retry cannot fix "
        "(spec, data, NaN loss, a cancel) are never retried.",
    )

    @model_validator(mode="after")
    def _recipes_fit_together(self) -> ExperimentSpec:
        check_recipes(self)
        return self

    @model_validator(mode="after")
    def _transfer_fits_together(self) -> ExperimentSpec:
        check_transfer(self)
        return self
