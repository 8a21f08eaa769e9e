"""What a spec may name: layers with their arguments, activations, losses, metrics, datasets."""

from __future__ import annotations

_COMMON = {"name", "trainable", "dtype"}
_DENSE_LIKE = {
    "activation",
    "use_bias",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
}
_RNN = _DENSE_LIKE | {
    "units",
    "recurrent_activation",
    "recurrent_initializer",
    "recurrent_regularizer",
    "dropout",
    "recurrent_dropout",
    "return_sequences",
    "return_state",
    "go_backwards",
    "unroll",
    "seed",
}
_CONV = _DENSE_LIKE | {"filters", "kernel_size", "strides", "padding", "dilation_rate", "groups"}
_POOL = {"pool_size", "strides", "padding", "data_format"}
_GLOBAL_POOL = {"data_format", "keepdims"}

# layer type -> (allowed arguments, required arguments)
LAYERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    name: (frozenset(allowed | _COMMON), frozenset(required))
    for name, allowed, required in [
        ("Input", {"shape"}, {"shape"}),
        ("Dense", _DENSE_LIKE | {"units"}, {"units"}),
        ("Dropout", {"rate", "seed", "noise_shape"}, {"rate"}),
        ("SpatialDropout1D", {"rate", "seed"}, {"rate"}),
        ("GaussianNoise", {"stddev", "seed"}, {"stddev"}),
        (
            "BatchNormalization",
            {"axis", "momentum", "epsilon", "center", "scale"},
            set(),
        ),
        ("LayerNormalization", {"axis", "epsilon", "center", "scale"}, set()),
        ("Activation", {"activation"}, {"activation"}),
        ("Flatten", {"data_format"}, set()),
        ("Reshape", {"target_shape"}, {"target_shape"}),
        (
            "Embedding",
            {
                "input_dim",
                "output_dim",
                "mask_zero",
                "embeddings_initializer",
                "embeddings_regularizer",
            },
            {"input_dim", "output_dim"},
        ),
        ("LSTM", _RNN, {"units"}),
        ("GRU", _RNN | {"reset_after"}, {"units"}),
        ("SimpleRNN", _RNN - {"recurrent_activation"}, {"units"}),
        ("Bidirectional", {"layer", "merge_mode"}, {"layer"}),
        ("Conv1D", _CONV, {"filters", "kernel_size"}),
        ("Conv2D", _CONV | {"data_format"}, {"filters", "kernel_size"}),
        ("MaxPooling1D", _POOL, set()),
        ("MaxPooling2D", _POOL, set()),
        ("AveragePooling1D", _POOL, set()),
        ("AveragePooling2D", _POOL, set()),
        ("GlobalMaxPooling1D", _GLOBAL_POOL, set()),
        ("GlobalMaxPooling2D", _GLOBAL_POOL, set()),
        ("GlobalAveragePooling1D", _GLOBAL_POOL, set()),
        ("GlobalAveragePooling2D", _GLOBAL_POOL, set()),
    ]
}

ACTIVATIONS = frozenset(
    {
        "relu",
        "sigmoid",
        "softmax",
        "tanh",
        "linear",
        "elu",
        "selu",
        "gelu",
        "swish",
        "silu",
        "softplus",
        "softsign",
        "leaky_relu",
        "relu6",
        "exponential",
        "hard_sigmoid",
        "mish",
        "log_softmax",
    }
)

LOSSES = frozenset(
    {
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",
        "binary_crossentropy",
        "mean_squared_error",
        "mean_absolute_error",
        "huber",
        "hinge",
        "kl_divergence",
        "binary_focal_crossentropy",
        "categorical_focal_crossentropy",
    }
)

METRICS = frozenset(
    {
        "accuracy",
        "sparse_categorical_accuracy",
        "categorical_accuracy",
        "binary_accuracy",
        "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "auc",
        "precision",
        "recall",
        "mean_squared_error",
        "mean_absolute_error",
    }
)

REGULARIZER_KEYS = frozenset({"l1", "l2"})

# name -> (number of classes, class names, kind)
DATASETS: dict[str, tuple[int, list[str], str]] = {
    "digits": (10, [str(d) for d in range(10)], "image"),
    "mnist": (10, [str(d) for d in range(10)], "image"),
    "imdb": (2, ["negative", "positive"], "text"),
    "fashion_mnist": (
        10,
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        "image",
    ),
    "cifar10": (
        10,
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        "image",
    ),
    # Keras ships no topic names for Reuters: its 46 topics are known by index
    "reuters": (46, [str(i) for i in range(46)], "text"),
}
