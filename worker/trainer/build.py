"""Spec -> compiled Keras model and callbacks, with keras.* APIs only (any Keras backend)."""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np

from backend.spec import CallbackSpec, ExperimentSpec, LayerSpec, OptimizerSpec
from worker.trainer import losses, plugins, runtime, schedules, transfer
from worker.trainer.datasets import Dataset

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
    "adamax": keras.optimizers.Adamax,
    "nadam": keras.optimizers.Nadam,
}

MLP_DEFAULTS: dict[str, Any] = {
    "units": [512, 256],
    "dropout": [0.5, 0.3],
    "activation": "relu",
    "batch_norm": False,
}
# arguments a spec gives as JSON lists that Keras wants as tuples
_TUPLE_ARGS = {
    "target_shape",
    "kernel_size",
    "strides",
    "pool_size",
    "dilation_rate",
    "noise_shape",
    "shape",
}


class ModelSpecError(ValueError):
    """The spec names something Keras cannot build as given."""


def build_model(spec: ExperimentSpec, dataset: Dataset) -> keras.Model:
    """The spec's layers (or template) on an Input of the dataset's shape, compiled."""
    if spec.model.template == "mlp":
        layer_specs = mlp_layers(spec.model.params, spec=spec, dataset=dataset)
    else:
        layer_specs = list(spec.model.layers or [])
    input_shape = dataset.input_shape
    if layer_specs and layer_specs[0].type == "Input":
        input_shape = tuple(layer_specs[0].arguments["shape"])
        layer_specs = layer_specs[1:]
    inputs = keras.Input(shape=input_shape, name="input")
    outputs = transfer.stem(spec, inputs)  # augmentation and base, when the spec has them
    for layer_spec in runtime.float32_output(layer_specs):
        outputs = make_layer(layer_spec)(outputs)
    if plugins.is_plugin_template(spec.model.template):
        model = plugins.build_plugin_model(spec, dataset)
    else:
        model = keras.Model(inputs, outputs, name=spec.model.template or "model")
    model.compile(
        optimizer=make_optimizer(spec.compile.optimizer, schedule=schedules.for_run(spec, dataset)),
        loss=losses.make_loss(spec, model),
        metrics=list(spec.compile.metrics),
    )
    return model


def make_layer(layer_spec: LayerSpec) -> keras.layers.Layer:
    """One keras.layers.<type>(**arguments), regularizers and nested layers resolved."""
    if layer_spec.type == "Input":
        raise ModelSpecError("an Input layer may only come first")
    kwargs: dict[str, Any] = {}
    for key, value in layer_spec.arguments.items():
        if key.endswith("_regularizer") and value is not None:
            kwargs[key] = make_regularizer(value)
        elif key == "layer" and layer_spec.type == "Bidirectional":
            kwargs[key] = make_layer(LayerSpec.model_validate(value))
        elif key in _TUPLE_ARGS and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return getattr(keras.layers, layer_spec.type)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(f"{layer_spec.type}: {exc}") from exc


def make_regularizer(value: dict[str, float]) -> keras.regularizers.Regularizer:
    l1, l2 = value.get("l1"), value.get("l2")
    if l1 is not None and l2 is not None:
        return keras.regularizers.L1L2(l1=l1, l2=l2)
    if l1 is not None:
        return keras.regularizers.L1(l1)
    return keras.regularizers.L2(l2 if l2 is not None else 0.0)


def make_optimizer(
    spec: OptimizerSpec, *, schedule: schedules.Schedule | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer class by name, given only the arguments the spec sets (and a schedule)."""
    cls = OPTIMIZERS[spec.name]
    exclude = {"name", "schedule"}
    kwargs = {k: v for k, v in spec.model_dump(exclude=exclude).items() if v is not None}
    if schedule is not None:
        kwargs["learning_rate"] = schedule
    accepted = set(inspect.signature(cls).parameters)
    wrong = sorted(set(kwargs) - accepted)
    if wrong:
        raise ModelSpecError(f"optimizer {spec.name} does not take {', '.join(wrong)}")
    return cls(**kwargs)


def make_callbacks(specs: list[CallbackSpec]) -> list[keras.callbacks.Callback]:
    made: list[keras.callbacks.Callback] = []
    for cb in specs:
        kwargs = cb.model_dump(exclude={"type"})
        if cb.type == "EarlyStopping":
            made.append(keras.callbacks.EarlyStopping(**kwargs))
        else:
            made.append(keras.callbacks.ReduceLROnPlateau(**kwargs))
    return made


def mlp_layers(
    params: dict[str, Any], *, spec: ExperimentSpec, dataset: Dataset
) -> list[LayerSpec]:
    """The mlp template: Flatten, then Dense (+BatchNorm) (+Dropout) per entry of units, output.

    params: units (list of ints, default [512, 256]), dropout (one rate for all or one per
    hidden layer; default [0.5, 0.3] with the default units, else none), activation (relu),
    batch_norm (false). The output layer follows the dataset: one sigmoid unit for two classes
    with binary_crossentropy, otherwise num_classes softmax units.
    """
    unknown = sorted(set(params) - set(MLP_DEFAULTS))
    if unknown:
        raise ModelSpecError(
            f"mlp template does not take {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(MLP_DEFAULTS))}"
        )
    p = {**MLP_DEFAULTS, **params}
    if "units" in params and "dropout" not in params:
        p["dropout"] = 0.0  # the default rates belong to the default layers
    units = list(p["units"]) if isinstance(p["units"], list | tuple) else [p["units"]]
    dropout = p["dropout"]
    rates = list(dropout) if isinstance(dropout, list | tuple) else [dropout] * len(units)
    if len(rates) != len(units):
        raise ModelSpecError(
            f"mlp template: {len(units)} hidden layers but {len(rates)} dropout rates"
        )
    layers: list[dict[str, Any]] = [{"type": "Flatten"}]
    for n, rate in zip(units, rates, strict=True):
        if p["batch_norm"]:
            layers += [
                {"type": "Dense", "units": n},
                {"type": "BatchNormalization"},
                {"type": "Activation", "activation": p["activation"]},
            ]
        else:
            layers.append({"type": "Dense", "units": n, "activation": p["activation"]})
        if rate:
            layers.append({"type": "Dropout", "rate": rate})
    if dataset.num_classes == 2 and spec.compile.loss == "binary_crossentropy":
        layers.append({"type": "Dense", "units": 1, "activation": "sigmoid", "name": "output"})
    else:
        layers.append(
            {
                "type": "Dense",
                "units": dataset.num_classes,
                "activation": "softmax",
                "name": "output",
            }
        )
    try:
        return [LayerSpec.model_validate(layer) for layer in layers]
    except ValueError as exc:
        raise ModelSpecError(f"mlp template: {exc}") from exc


def prepare_targets(spec: ExperimentSpec, model: keras.Model, y: np.ndarray) -> np.ndarray:
    """Integer labels, one-hot when the loss is not sparse and the model has a unit per class."""
    outputs = int(model.output_shape[-1] or 1)
    if spec.compile.loss != "sparse_categorical_crossentropy" and outputs > 1:
        return np.asarray(keras.utils.to_categorical(y, num_classes=outputs), dtype=np.float32)
    return y


def model_summary(model: keras.Model) -> dict[str, Any]:
    """Layers (name, class, output shape, parameters) and parameter totals, as JSON."""
    layers = []
    for layer in model.layers:
        try:
            shape: Any = _shape(layer.output.shape)
        except (AttributeError, ValueError):
            shape = None
        layers.append(
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "output_shape": shape,
                "params": int(layer.count_params()),
                "trainable": bool(layer.trainable),
            }
        )
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(model.count_params())
    return {
        "name": model.name,
        "layers": layers,
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
    }


def _shape(shape: Any) -> list[Any]:
    return [None if d is None else int(d) for d in shape]
