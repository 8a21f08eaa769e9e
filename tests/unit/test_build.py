"""Model builder: layers from the catalog, regularizers, templates, optimizers, callbacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from backend.spec import DatasetSpec, ExperimentSpec, OptimizerSpec
from worker.trainer.build import (
    ModelSpecError,
    build_model,
    make_callbacks,
    make_optimizer,
    model_summary,
    prepare_targets,
)
from worker.trainer.datasets import Dataset, load


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load(DatasetSpec(name="digits", train_limit=256, test_limit=64), data_dir=None)


def _spec(layers: list[dict[str, Any]] | None = None, **parts: Any) -> ExperimentSpec:
    raw: dict[str, Any] = {"dataset": parts.pop("dataset", {"name": "digits"})}
    raw["model"] = parts.pop("model", {"layers": layers})
    raw.update(parts)
    return ExperimentSpec.model_validate(raw)


def _trains(model: keras.Model, data: Dataset, spec: ExperimentSpec) -> float:
    history = model.fit(
        data.x_train,
        prepare_targets(spec, model, data.y_train),
        epochs=1,
        batch_size=64,
        verbose=0,
    )
    loss = history.history["loss"][-1]
    assert np.isfinite(loss)
    return float(loss)


def test_dense_dropout_batchnorm_activation_and_regularizers(digits: Dataset) -> None:
    spec = _spec(
        [
            {"type": "Flatten"},
            {"type": "Dense", "units": 16, "kernel_regularizer": {"l2": 0.01}},
            {"type": "BatchNormalization", "momentum": 0.9},
            {"type": "Activation", "activation": "relu"},
            {"type": "Dropout", "rate": 0.25},
            {
                "type": "Dense",
                "units": 8,
                "activation": "tanh",
                "kernel_regularizer": {"l1": 0.001, "l2": 0.002},
                "bias_regularizer": {"l1": 0.1},
            },
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]
    )
    model = build_model(spec, digits)
    assert model.input_shape == (None, 8, 8)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "Flatten", "Dense", "BatchNormalization", "Activation", "Dropout",
        "Dense", "Dense",
    ]  # fmt: skip
    dense1, dense2 = model.layers[2], model.layers[6]
    assert isinstance(dense1.kernel_regularizer, keras.regularizers.L2)
    assert dense1.kernel_regularizer.l2 == pytest.approx(0.01)
    assert isinstance(dense2.kernel_regularizer, keras.regularizers.L1L2)
    assert dense2.kernel_regularizer.get_config() == pytest.approx({"l1": 0.001, "l2": 0.002})
    assert isinstance(dense2.bias_regularizer, keras.regularizers.L1)
    assert model.layers[3].momentum == pytest.approx(0.9)
    assert model.layers[5].rate == pytest.approx(0.25)
    assert model.layers[4].activation is keras.activations.relu
    _trains(model, digits, spec)
    assert len(model.losses) == 3  # one penalty per regularizer


def test_embedding_lstm_and_bidirectional(imdb_dir: Path, dataset_cache: Path) -> None:
    data = load(
        DatasetSpec(name="imdb", train_limit=96, test_limit=32, num_words=1000, maxlen=40),
        data_dir=imdb_dir,
        cache_dir=dataset_cache,
    )
    spec = _spec(
        [
            {"type": "Embedding", "input_dim": 1000, "output_dim": 8, "mask_zero": True},
            {"type": "Bidirectional", "layer": {"type": "GRU", "units": 4,
                                                "return_sequences": True}},
            {"type": "LSTM", "units": 6, "dropout": 0.1},
            {"type": "Dense", "units": 1, "activation": "sigmoid"},
        ],
        dataset={"name": "imdb", "num_words": 1000, "maxlen": 40},
        compile={"loss": "binary_crossentropy", "metrics": ["accuracy"]},
    )  # fmt: skip
    model = build_model(spec, data)
    assert model.input_shape == (None, 40)
    bidi = model.layers[2]
    assert isinstance(bidi, keras.layers.Bidirectional)
    assert isinstance(bidi.forward_layer, keras.layers.GRU) and bidi.forward_layer.units == 4
    assert isinstance(model.layers[3], keras.layers.LSTM) and model.output_shape == (None, 1)
    _trains(model, data, spec)


def test_conv2d_after_reshape(digits: Dataset) -> None:
    spec = _spec(
        [
            {"type": "Reshape", "target_shape": [8, 8, 1]},
            {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "padding": "same",
             "activation": "relu", "kernel_regularizer": {"l2": 0.001}},
            {"type": "MaxPooling2D", "pool_size": [2, 2]},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]
    )  # fmt: skip
    model = build_model(spec, digits)
    conv = model.layers[2]
    assert isinstance(conv, keras.layers.Conv2D) and conv.kernel_size == (3, 3)
    assert model.layers[1].output.shape[1:] == (8, 8, 1)
    assert model.layers[3].output.shape[1:] == (4, 4, 4)
    _trains(model, digits, spec)


OPTIMIZER_CASES = [
    ({"name": "sgd", "momentum": 0.9, "nesterov": True, "clipnorm": 1.0}, keras.optimizers.SGD),
    ({"name": "adam", "beta_1": 0.8, "epsilon": 1e-6, "clipvalue": 0.5}, keras.optimizers.Adam),
    ({"name": "adamw", "weight_decay": 0.01, "clipnorm": 2.0}, keras.optimizers.AdamW),
    ({"name": "rmsprop", "rho": 0.8, "momentum": 0.1}, keras.optimizers.RMSprop),
    ({"name": "adagrad", "epsilon": 1e-5}, keras.optimizers.Adagrad),
    ({"name": "adamax", "beta_2": 0.99}, keras.optimizers.Adamax),
    ({"name": "nadam", "learning_rate": 0.002, "clipnorm": 0.1}, keras.optimizers.Nadam),
]


@pytest.mark.parametrize(
    ("args", "cls"), OPTIMIZER_CASES, ids=[c[0]["name"] for c in OPTIMIZER_CASES]
)
def test_each_optimizer_gets_only_the_arguments_given(
    args: dict[str, Any], cls: type, digits: Dataset
) -> None:
    optimizer = make_optimizer(OptimizerSpec.model_validate(args))
    assert type(optimizer) is cls
    config = optimizer.get_config()
    for key, value in args.items():
        if key != "name":
            assert config[key] == pytest.approx(value), key
    for clip in ("clipnorm", "clipvalue"):
        if clip not in args:
            assert config[clip] is None

    spec = _spec(
        [{"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}],
        compile={"optimizer": args},
    )
    model = build_model(spec, digits)
    assert type(model.optimizer) is cls
    _trains(model, digits, spec)


def test_optimizer_argument_it_does_not_take_is_refused() -> None:
    with pytest.raises(ModelSpecError, match="sgd does not take beta_1"):
        make_optimizer(OptimizerSpec(name="sgd", beta_1=0.9))


def test_mlp_template_defaults_and_output_layer(digits: Dataset) -> None:
    model = build_model(_spec(model={"template": "mlp"}), digits)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [512, 256, 10]
    drops = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert drops == pytest.approx([0.5, 0.3])
    assert model.layers[-1].activation is keras.activations.softmax

    custom = _spec(
        model={
            "template": "mlp",
            "params": {"units": [16, 8], "dropout": 0.1, "activation": "tanh",
                       "batch_norm": True},
        }
    )  # fmt: skip
    model = build_model(custom, digits)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == [
        "Flatten", "Dense", "BatchNormalization", "Activation", "Dropout",
        "Dense", "BatchNormalization", "Activation", "Dropout", "Dense",
    ]  # fmt: skip
    _trains(model, digits, custom)

    binary = Dataset("imdb", digits.x_train, digits.y_train % 2, digits.x_test,
                     digits.y_test % 2, ["negative", "positive"], 2, (8, 8))  # fmt: skip
    spec = _spec(
        model={"template": "mlp", "params": {"units": [4]}},
        compile={"loss": "binary_crossentropy"},
    )
    model = build_model(spec, binary)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].activation is keras.activations.sigmoid

    with pytest.raises(ModelSpecError, match="does not take depth"):
        build_model(_spec(model={"template": "mlp", "params": {"depth": 3}}), digits)
    with pytest.raises(ModelSpecError, match="2 hidden layers but 1 dropout"):
        build_model(
            _spec(model={"template": "mlp", "params": {"units": [4, 4], "dropout": [0.1]}}),
            digits,
        )


def test_categorical_loss_gets_one_hot_targets(digits: Dataset) -> None:
    spec = _spec(
        [{"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}],
        compile={"loss": "categorical_crossentropy", "metrics": ["accuracy"]},
    )
    model = build_model(spec, digits)
    targets = prepare_targets(spec, model, digits.y_train)
    assert targets.shape == (len(digits.y_train), 10)
    np.testing.assert_array_equal(targets.argmax(axis=1), digits.y_train)
    history = model.fit(digits.x_train, targets, epochs=1, verbose=0)
    assert "accuracy" in history.history


def test_callbacks_from_spec() -> None:
    spec = _spec(
        [{"type": "Flatten"}, {"type": "Dense", "units": 10}],
        callbacks=[
            {"type": "EarlyStopping", "patience": 4, "monitor": "val_accuracy", "mode": "max"},
            {"type": "ReduceLROnPlateau", "factor": 0.5, "min_lr": 1e-5},
        ],
    )
    early, plateau = make_callbacks(spec.callbacks)
    assert isinstance(early, keras.callbacks.EarlyStopping)
    assert early.patience == 4 and early.monitor == "val_accuracy" and early.restore_best_weights
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert plateau.factor == 0.5 and plateau.min_lr == 1e-5


def test_model_summary_is_json_and_adds_up(digits: Dataset) -> None:
    spec = _spec(
        [
            {"type": "Flatten"},
            {"type": "Dense", "units": 12, "activation": "relu", "name": "hidden"},
            {"type": "BatchNormalization"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]
    )
    model = build_model(spec, digits)
    summary = model_summary(model)
    json.dumps(summary)
    assert summary["total_params"] == model.count_params()
    hidden = next(layer for layer in summary["layers"] if layer["name"] == "hidden")
    assert hidden == {
        "name": "hidden",
        "class": "Dense",
        "output_shape": [None, 12],
        "params": 64 * 12 + 12,
        "trainable": True,
    }
    assert sum(layer["params"] for layer in summary["layers"]) == summary["total_params"]
    assert summary["non_trainable_params"] == 24  # BatchNorm moving mean and variance
    assert summary["trainable_params"] + 24 == summary["total_params"]
