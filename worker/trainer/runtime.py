"""Where and in which precision a run computes: the dtype policy and the devices.

``configure`` must run before TensorFlow executes its first op: logical CPU devices (the
stand-in for GPUs on a machine without one) can only be declared before that.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import keras

from backend.spec import ExperimentSpec, LayerSpec

log = logging.getLogger(__name__)

FLOAT32 = "float32"


class RuntimeUnavailable(RuntimeError):
    """The spec asks for devices (or a backend feature) this worker does not have."""


@dataclass
class Runtime:
    backend: str
    precision_policy: str
    devices: list[str]
    num_replicas: int
    global_batch_size: int
    strategy: Any = field(default=None, repr=False)  # tf.distribute.Strategy, TensorFlow only

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and compile the model in here, so its variables are mirrored per device."""
        if self.strategy is None:
            yield
        else:
            with self.strategy.scope():
                yield

    def event(self) -> dict[str, Any]:
        """Payload of the ``runtime`` event."""
        return {
            "backend": self.backend,
            "precision_policy": self.precision_policy,
            "devices": list(self.devices),
            "num_replicas": self.num_replicas,
            "global_batch_size": self.global_batch_size,
        }


def global_batch_size(spec: ExperimentSpec) -> int:
    """The batch fit() is given: per device times devices when scale_batch_size, else as is."""
    if spec.scale_batch_size and spec.devices:
        return spec.fit.batch_size * spec.devices
    return spec.fit.batch_size


def configure(spec: ExperimentSpec) -> Runtime:
    """Declare the devices, then set the global dtype policy; undo with ``reset``."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        devices, strategy = _tensorflow_devices(spec.devices)
    elif backend == "jax":
        devices, strategy = _jax_devices(spec.devices), None
    else:
        if spec.devices and spec.devices > 1:
            raise RuntimeUnavailable(
                f"devices: {spec.devices} needs the TensorFlow or JAX backend, not {backend}"
            )
        devices, strategy = [str(d) for d in keras.distribution.list_devices()[:1]], None
    keras.mixed_precision.set_global_policy(spec.precision)
    runtime = Runtime(
        backend=backend,
        precision_policy=keras.mixed_precision.global_policy().name,
        devices=devices,
        num_replicas=len(devices) if strategy is not None or backend == "jax" else 1,
        global_batch_size=global_batch_size(spec),
        strategy=strategy,
    )
    log.info("event=runtime %s", runtime.event())
    return runtime


def reset() -> None:
    """Back to float32 and no distribution (runs trained in-process, as in tests, share both)."""
    keras.mixed_precision.set_global_policy(FLOAT32)
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)


def is_mixed() -> bool:
    policy = keras.mixed_precision.global_policy()
    return bool(policy.compute_dtype != policy.variable_dtype)


def float32_output(layer_specs: list[LayerSpec]) -> list[LayerSpec]:
    """Under a mixed policy the last layer computes in float32 (stable softmax, float32 output).

    A last layer that names its own dtype keeps it.
    """
    if not layer_specs or not is_mixed() or "dtype" in layer_specs[-1].arguments:
        return layer_specs
    last = layer_specs[-1].model_dump()
    return [*layer_specs[:-1], LayerSpec.model_validate({**last, "dtype": FLOAT32})]


def _tensorflow_devices(count: int | None) -> tuple[list[str], Any]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not count or count == 1:
        kind = "GPU" if gpus else "CPU"
        return [d.name for d in tf.config.list_logical_devices(kind)[:1]], None
    if gpus:
        if len(gpus) < count:
            raise RuntimeUnavailable(
                f"devices: {count} asked for, but this worker has {len(gpus)} GPU(s)"
            )
        names = [f"/gpu:{i}" for i in range(count)]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
        except RuntimeError as exc:  # TensorFlow already ran an op in this process
            have = len(tf.config.list_logical_devices("CPU"))
            if have < count:
                raise RuntimeUnavailable(
                    f"devices: {count} needs {count} logical CPU devices, but TensorFlow was "
                    f"already initialised in this process with {have}"
                ) from exc
        names = [f"/cpu:{i}" for i in range(count)]
    strategy = tf.distribute.MirroredStrategy(names)
    return [str(d) for d in strategy.extended.worker_devices], strategy


def _jax_devices(count: int | None) -> list[str]:
    available = [str(d) for d in keras.distribution.list_devices()]
    if not count or count == 1:
        return available[:1]
    if len(available) < count:
        raise RuntimeUnavailable(
            f"devices: {count} asked for, but JAX sees {len(available)} device(s); for CPU "
            f"devices start the worker with XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{count}"
        )
    chosen = available[:count]
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
    return chosen
