"""Named specs, and resolving a preset plus overrides into a validated spec."""

from __future__ import annotations

import copy
from typing import Any

from backend.spec.model import ExperimentSpec

_MLP_LAYERS: list[dict[str, Any]] = [
    {"type": "Flatten"},
    {"type": "Dense", "units": 512, "activation": "relu"},
    {"type": "Dropout", "rate": 0.5},
    {"type": "Dense", "units": 256, "activation": "relu"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]

_BN_L2_LAYERS: list[dict[str, Any]] = [
    {"type": "Flatten"},
    {"type": "Dense", "units": 512, "kernel_regularizer": {"l2": 0.01}},
    {"type": "BatchNormalization"},
    {"type": "Activation", "activation": "relu"},
    {"type": "Dropout", "rate": 0.5},
    {"type": "Dense", "units": 256, "kernel_regularizer": {"l2": 0.01}},
    {"type": "BatchNormalization"},
    {"type": "Activation", "activation": "relu"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]

_CNN_LAYERS: list[dict[str, Any]] = [
    {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3], "activation": "relu"},
    {"type": "MaxPooling2D", "pool_size": [2, 2]},
    {"type": "Conv2D", "filters": 64, "kernel_size": [3, 3], "activation": "relu"},
    {"type": "MaxPooling2D", "pool_size": [2, 2]},
    {"type": "Conv2D", "filters": 64, "kernel_size": [3, 3], "activation": "relu"},
    {"type": "GlobalAveragePooling2D"},
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]

_LSTM_LAYERS: list[dict[str, Any]] = [
    {"type": "Embedding", "input_dim": 10000, "output_dim": 128},
    {"type": "LSTM", "units": 64, "dropout": 0.2, "recurrent_dropout": 0.2},
    {"type": "Dense", "units": 1, "activation": "sigmoid"},
]

_TRANSFER_HEAD: list[dict[str, Any]] = [
    {"type": "GlobalAveragePooling2D"},
    {"type": "Dense", "units": 256, "activation": "relu"},
    {"type": "Dropout", "rate": 0.5},
    {"type": "Dense", "units": 1, "activation": "sigmoid"},
]

PRESETS: dict[str, dict[str, Any]] = {
    "digits-mlp": {
        "description": "The seed MLP on scikit-learn's bundled 8x8 digits: needs no data files.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "digits"},
            "model": {"layers": _MLP_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 20, "batch_size": 32, "validation_split": 0.1, "seed": 42},
        },
    },
    "mnist-mlp": {
        "description": "The seed MLP: Dense 512 -> Dropout 0.5 -> Dense 256 -> Dropout 0.3 "
        "-> Dense 10 softmax, Adam, on MNIST.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist"},
            "model": {"layers": _MLP_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 10, "batch_size": 128, "validation_split": 0.1, "seed": 42},
        },
    },
    "mnist-mlp-bn-l2": {
        "description": "The tutorial's regularised MLP on MNIST: Dense (L2 0.01) -> "
        "BatchNormalization -> a separate relu Activation -> Dropout, twice, then Dense 10 "
        "softmax; Adam.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist"},
            "model": {"layers": _BN_L2_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 10, "batch_size": 128, "validation_split": 0.1, "seed": 42},
        },
    },
    "imbalanced-focal": {
        "description": "The class-imbalance recipe: categorical focal loss (gamma 2) and "
        'class_weight "balanced" computed from the training labels. On MNIST: its classes '
        "are close to balanced (5,421 to 6,742 images a digit, so weights 0.89 to 1.11), so "
        "this shows the mechanics and the per-class recall, not a rescue; set fit.class_weight "
        "by hand or use imbalanced data to see a larger effect.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist"},
            "model": {"layers": _MLP_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": {"name": "focal", "gamma": 2.0},
                "metrics": ["accuracy"],
            },
            "fit": {
                "epochs": 5,
                "batch_size": 128,
                "validation_split": 0.1,
                "seed": 42,
                "class_weight": "balanced",
            },
        },
    },
    "mnist-cnn": {
        "description": "A small CNN on MNIST: Conv2D 32 -> MaxPooling2D -> Conv2D 64 -> "
        "MaxPooling2D -> Conv2D 64 -> GlobalAveragePooling2D -> Dense 64 -> Dense 10 softmax; "
        "the 28x28 images get a channel axis (dataset.channels_last).",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist", "channels_last": True},
            "model": {"layers": _CNN_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 5, "batch_size": 128, "validation_split": 0.1, "seed": 42},
        },
    },
    "imdb-lstm": {
        "description": "The tutorial's text recipe: Embedding(10000, 128) -> LSTM(64, dropout "
        "0.2, recurrent_dropout 0.2) -> Dense 1 sigmoid on IMDB reviews (10,000 most frequent "
        "words, padded to 200), validated on the 25,000 test reviews. The recurrent dropout "
        "keeps Keras off the fused LSTM kernel, so an epoch takes minutes on a CPU.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "imdb", "num_words": 10000, "maxlen": 200},
            "model": {"layers": _LSTM_LAYERS},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "binary_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {
                "epochs": 3,
                "batch_size": 32,
                "validation_split": None,
                "validation_data": "test",
                "seed": 42,
            },
        },
    },
    "transfer-vgg16": {
        "description": "Transfer learning and fine-tuning as the tutorial teaches them: VGG16 "
        "(ImageNet weights, include_top=False) frozen under GlobalAveragePooling2D -> Dense 256 "
        "-> Dropout 0.5 -> Dense 1 sigmoid, with augmentation; phase 1 trains the head, phase 2 "
        "unfreezes VGG16's last 4 layers (block 5) at a learning rate of 1e-5. A binary task any "
        "install has: MNIST 4 vs 9, 4,000 images upscaled to 32x32 RGB in the model; point "
        "dataset at an image_folder (cats vs dogs) for the original. NEEDS the ImageNet weights "
        "(vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, 58 MB) in Keras' cache "
        "(~/.keras/models) or internet on the worker, else the run fails before training and "
        "says so; offline, override model.base.weights to null (the recipe runs, but from "
        "random weights nothing is transferred).",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist", "classes": [4, 9], "train_limit": 4000},
            "model": {
                "base": {"application": "VGG16", "weights": "imagenet", "input_shape": [32, 32]},
                "augmentation": {
                    "rotation": 10,
                    "width_shift": 0.1,
                    "height_shift": 0.1,
                    "shear": 0.1,
                    "zoom": 0.1,
                },
                "layers": _TRANSFER_HEAD,
            },
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "binary_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {
                "batch_size": 32,
                "validation_split": 0.1,
                "seed": 42,
                "phases": [
                    {"epochs": 3, "learning_rate": 0.001, "unfreeze_last": 0},
                    {"epochs": 2, "learning_rate": 1e-5, "unfreeze_last": 4},
                ],
            },
        },
    },
    "custom-loop": {
        "description": "The tutorial's custom training loop, from the bundled plugin "
        "worker/plugins_example/custom_loop.py: Flatten -> Dense 64 -> Dense 10 softmax in a "
        "keras.Model subclass whose train_step computes the gradients itself.",
        "spec": {
            "spec_version": 1,
            "dataset": {"name": "mnist"},
            "model": {"template": "custom-loop", "params": {"units": 64, "activation": "relu"}},
            "compile": {
                "optimizer": {"name": "adam", "learning_rate": 0.001},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 5, "batch_size": 128, "validation_split": 0.1, "seed": 42},
        },
    },
}


class UnknownPreset(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; anything else (lists included) is replaced."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def preset_spec(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise UnknownPreset(name)
    return copy.deepcopy(PRESETS[name]["spec"])


def resolve_spec(
    *,
    spec: dict[str, Any] | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """A spec, or a preset with overrides, validated (raises pydantic.ValidationError)."""
    raw = preset_spec(preset) if preset is not None else dict(spec or {})
    if overrides:
        raw = deep_merge(raw, overrides)
    return ExperimentSpec.model_validate(raw)
