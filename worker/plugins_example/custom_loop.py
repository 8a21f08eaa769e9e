"""The tutorial's custom training loop: two Dense layers in a keras.Model that overrides train_step.

fit() calls ``train_step`` once per batch: forward pass, loss, gradients, optimizer update and
metrics are written out by hand instead of Keras' built-in step, which is what the tutorial
teaches with ``tf.GradientTape``. The step is written per backend, as Keras 3's guides do
("Customizing what happens in fit()" for TensorFlow and for JAX):

- TensorFlow: ``tf.GradientTape`` records the forward pass, ``tape.gradient`` differentiates;
- JAX: the step is a pure function of the model's state, ``self.stateless_call`` inside
  ``jax.value_and_grad``, and returns the new state instead of assigning variables.

PyTorch is not supported by this plugin (it says so when built).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = "custom-loop"
DESCRIPTION = (
    "The tutorial's custom training loop: Flatten -> Dense(units) -> Dense(classes, softmax) "
    "in a keras.Model subclass whose train_step computes the gradients itself "
    "(tf.GradientTape under TensorFlow, jax.value_and_grad under JAX)."
)


class CustomLoopParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: int = Field(default=64, ge=1, le=4096, description="Units of the hidden Dense layer.")
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] = Field(
        default="relu", description="Activation of the hidden layer."
    )


PARAMS = CustomLoopParams


def build_model(params: CustomLoopParams, *, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """Uncompiled: Fitboard compiles it with the spec's optimizer, loss and metrics."""
    import keras

    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(params.units, activation=params.activation, name="hidden")(x)
    # float32 output, so the probabilities stay float32 under a mixed precision policy
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="output", dtype="float32")(
        x
    )
    return model_class()(inputs, outputs, name="custom_loop")


def custom_objects() -> dict[str, Any]:
    """What keras.saving.load_model needs to reload a model.keras this plugin trained."""
    return {"CustomLoopModel": model_class()}


@functools.cache
def model_class() -> type:
    """The keras.Model subclass for the active Keras backend (Keras imported only here)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        cls = _tensorflow_model(keras)
    elif backend == "jax":
        cls = _jax_model(keras)
    else:
        raise NotImplementedError(
            f"the custom-loop plugin has train_step for TensorFlow and JAX, not {backend}"
        )
    registered: type = keras.saving.register_keras_serializable(package="fitboard.custom_loop")(cls)
    return registered


def _tensorflow_model(keras: Any) -> type:
    import tensorflow as tf

    class CustomLoopModel(keras.Model):
        """A functional model whose training step is written by hand, with tf.GradientTape."""

        def train_step(self, data: Any) -> dict[str, Any]:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
                )
                # a no-op unless mixed_float16 wrapped the optimizer in a loss scaler
                scaled_loss = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled_loss, self.trainable_variables)
            self.optimizer.apply(gradients, self.trainable_variables)
            logs: dict[str, Any] = {}
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
                logs.update(_named(metric.name, metric.result()))
            return logs

    return CustomLoopModel


def _jax_model(keras: Any) -> type:
    import jax

    class CustomLoopModel(keras.Model):
        """A functional model whose training step is written by hand, as a pure JAX function.

        fit() passes the model's state in and takes the new state back: variables are never
        assigned inside the step (Keras' "Customizing what happens in fit() with JAX").
        """

        def _loss_and_state(
            self,
            trainable_variables: Any,
            non_trainable_variables: Any,
            x: Any,
            y: Any,
            sample_weight: Any,
        ) -> Any:
            y_pred, non_trainable_variables = self.stateless_call(
                trainable_variables, non_trainable_variables, x, training=True
            )
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            return loss, (y_pred, non_trainable_variables)

        def train_step(self, state: Any, data: Any) -> Any:
            trainable, non_trainable, optimizer_vars, metrics_vars = state
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            grad_fn = jax.value_and_grad(self._loss_and_state, has_aux=True)
            (loss, (y_pred, non_trainable)), gradients = grad_fn(
                trainable, non_trainable, x, y, sample_weight
            )
            trainable, optimizer_vars = self.optimizer.stateless_apply(
                optimizer_vars, gradients, trainable
            )
            logs: dict[str, Any] = {}
            new_metrics_vars: list[Any] = []
            for metric in self.metrics:
                start = len(new_metrics_vars)
                mine = metrics_vars[start : start + len(metric.variables)]
                if metric.name == "loss":
                    mine = metric.stateless_update_state(mine, loss)
                else:
                    mine = metric.stateless_update_state(
                        mine, y, y_pred, sample_weight=sample_weight
                    )
                logs.update(_named(metric.name, metric.stateless_result(mine)))
                new_metrics_vars += mine
            return logs, (trainable, non_trainable, optimizer_vars, new_metrics_vars)

    return CustomLoopModel


def _named(name: str, result: Any) -> dict[str, Any]:
    # the compiled metrics come as one metric whose result is a dict {"accuracy": ...}
    return dict(result) if isinstance(result, dict) else {name: result}
