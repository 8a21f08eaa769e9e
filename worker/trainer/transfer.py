"""Transfer learning in the model: augmentation, then a base network under the spec's layers.

The base is a keras.applications network (include_top=False) or the model an earlier run
saved, cut before its output layer. It sits in the run's model as one nested model named
``base_...`` and is called with ``training=False``, so its BatchNormalization layers stay in
inference mode when it is unfrozen (Keras' transfer-learning guide). Images reach an
application base resized to its input size, repeated into 3 channels and scaled the way the
application's ``preprocess_input`` expects, all as plain Keras layers saved with the model.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import keras
import numpy as np

from backend.client.streaming import MetricFlusher
from backend.spec import ExperimentSpec
from backend.spec.plugins import discover
from backend.spec.transfer import MIN_IMAGE_SIDE, AugmentationSpec, BaseSpec
from worker import port

log = logging.getLogger(__name__)

BASE_PREFIX = "base_"
RUN_MODEL_ARTIFACT = "model.keras"  # what train.py saves for every run
PROBE_TIMEOUT_S = 5.0

# (download folder, file) of each application's include_top=False ImageNet weights, as
# keras.applications names them; MobileNetV2's depends on the input size
_WEIGHTS = {
    "VGG16": (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "ResNet50": (
        "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "MobileNetV2": (
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
    ),
    "EfficientNetB0": (
        "https://storage.googleapis.com/keras-applications/",
        "efficientnetb0_notop.h5",
    ),
}
# BGR means of ImageNet, subtracted by the "caffe" preprocessing of VGG16 and ResNet50
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class BaseWeightsUnavailable(RuntimeError):
    """ImageNet weights are neither in Keras' cache nor downloadable."""


class BaseRunUnavailable(RuntimeError):
    """from_run names a run without a usable model.keras."""


def stem(spec: ExperimentSpec, inputs: Any) -> Any:
    """The tensor the spec's layers start from: inputs, augmented, through the base if any."""
    base, augmentation = spec.model.base, spec.model.augmentation
    if base is None and augmentation is None:
        return inputs
    shape = tuple(int(d) for d in inputs.shape[1:])
    if len(shape) not in (2, 3):
        raise ValueError(f"base and augmentation need images; the inputs have shape {shape}")
    x = inputs
    if len(shape) == 2:
        x = keras.layers.Reshape((*shape, 1), name="add_channel")(x)
    if augmentation is not None:
        x = augmentation_layers(augmentation)(x)
    if base is None or base.from_run is not None:
        if len(shape) == 2:
            x = keras.layers.Reshape(shape, name="drop_channel")(x)
        if base is None:
            return x
        base_model = run_base(base.from_run or 0, input_shape=shape)
    else:
        x, base_model = _application(base, x, pixel_max=_pixel_max(spec))
    set_base_trainable(base_model, unfreeze_last=len(base_model.layers) if base.trainable else 0)
    return base_model(x, training=False)


def augmentation_layers(spec: AugmentationSpec) -> keras.Sequential:
    """Rescaling first (always applied), then the random layers (active in fit() only)."""
    fill = spec.fill_mode
    layers: list[keras.layers.Layer] = []
    if spec.rescale is not None:
        layers.append(keras.layers.Rescaling(spec.rescale))
    if spec.rotation:
        layers.append(keras.layers.RandomRotation(spec.rotation / 360.0, fill_mode=fill))
    if spec.width_shift or spec.height_shift:
        layers.append(
            keras.layers.RandomTranslation(spec.height_shift, spec.width_shift, fill_mode=fill)
        )
    if spec.shear:
        layers.append(keras.layers.RandomShear(x_factor=spec.shear, fill_mode=fill))
    if spec.zoom:
        layers.append(keras.layers.RandomZoom(spec.zoom, fill_mode=fill))
    flips = [
        name
        for name, on in (("horizontal", spec.horizontal_flip), ("vertical", spec.vertical_flip))
        if on
    ]
    if flips:
        layers.append(keras.layers.RandomFlip("_and_".join(flips)))
    return keras.Sequential(layers, name="augmentation")


def set_base_trainable(base: keras.Model, *, unfreeze_last: int) -> None:
    """Freeze the base, then unfreeze its last N layers, BatchNormalization excepted."""
    if unfreeze_last <= 0:
        base.trainable = False
        return
    base.trainable = True
    chosen = {id(layer) for layer in base.layers[-unfreeze_last:]}
    for layer in base.layers:
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = id(layer) in chosen and not is_bn


def find_base(model: keras.Model) -> keras.Model | None:
    """The nested base model stem() put in, if any."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and layer.name.startswith(BASE_PREFIX):
            return layer
    return None


def describe(spec: ExperimentSpec) -> dict[str, Any] | None:
    """The base as the run page shows it (the model summary's ``base``, the ``base`` event)."""
    base = spec.model.base
    if base is None:
        return None
    if base.from_run is not None:
        return {"from_run": base.from_run, "trainable": base.trainable}
    return {
        "application": base.application,
        "weights": base.weights,
        "input_shape": base.input_shape,
        "trainable": base.trainable,
    }


def announce(spec: ExperimentSpec, flusher: MetricFlusher, summary: dict[str, Any]) -> None:
    """Record the base in the model summary and send the ``base`` event."""
    described = describe(spec)
    if described is not None:
        summary["base"] = described
        flusher.event("base", described, uid="base")


# --- keras.applications -----------------------------------------------------------------------


def _application(base: BaseSpec, x: Any, *, pixel_max: float) -> tuple[Any, keras.Model]:
    """Resize, 3 channels and the application's preprocessing; then the application itself."""
    application = base.application or ""
    minimum = MIN_IMAGE_SIDE[application]
    height, width, channels = (int(d) for d in x.shape[1:])
    if base.input_shape is not None:
        size = (base.input_shape[0], base.input_shape[1])
    else:
        size = (max(height, minimum), max(width, minimum))
    if size != (height, width):
        x = keras.layers.Resizing(*size, name="resize")(x)
    if channels == 1:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    elif channels != 3:
        raise ValueError(f"{application} takes RGB images; these have {channels} channels")
    x = _preprocess(application, x, pixel_max=pixel_max)
    image_shape = (size[0], size[1], 3)
    if base.weights == "imagenet":
        ensure_imagenet_weights(application, image_shape)
    cls = getattr(keras.applications, application)
    name = f"{BASE_PREFIX}{application.lower()}"
    try:
        model = cls(include_top=False, weights=base.weights, input_shape=image_shape, name=name)
    except Exception as exc:
        if base.weights != "imagenet":
            raise
        folder, file = imagenet_weights_file(application, image_shape)
        raise BaseWeightsUnavailable(
            f"{application} ImageNet weights could not be loaded from {keras_models_cache()} "
            f"or {folder}{file} ({type(exc).__name__}: {exc})"
        ) from exc
    return x, model


def _preprocess(application: str, x: Any, *, pixel_max: float) -> Any:
    """What keras.applications.<app>.preprocess_input does, for pixels in [0, pixel_max]."""
    to_255 = 255.0 / pixel_max
    if application == "MobileNetV2":  # "tf" mode: [-1, 1]
        return keras.layers.Rescaling(2.0 / pixel_max, offset=-1.0, name="preprocess")(x)
    if application == "EfficientNetB0":  # rescales inside the model; wants [0, 255]
        if to_255 == 1.0:
            return x
        return keras.layers.Rescaling(to_255, name="preprocess")(x)
    # "caffe" mode (VGG16, ResNet50): RGB -> BGR on [0, 255], minus the ImageNet mean; a fixed
    # 1x1 convolution does both and saves with the model like any layer
    conv = keras.layers.Conv2D(3, 1, name="preprocess", trainable=False)
    out = conv(x)
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for rgb in range(3):
        kernel[0, 0, rgb, 2 - rgb] = to_255
    conv.set_weights([kernel, -np.asarray(_CAFFE_MEAN_BGR, dtype=np.float32)])
    return out


def _pixel_max(spec: ExperimentSpec) -> float:
    """The largest pixel value the base's preparation receives."""
    top = 1.0 if spec.dataset.normalize else 255.0
    augmentation = spec.model.augmentation
    if augmentation is not None and augmentation.rescale is not None:
        top *= augmentation.rescale
    return top


def imagenet_weights_file(application: str, image_shape: tuple[int, int, int]) -> tuple[str, str]:
    """(download folder, file name) keras.applications uses for include_top=False weights."""
    folder, file = _WEIGHTS[application]
    if application == "MobileNetV2":
        rows = image_shape[0]
        square = image_shape[0] == image_shape[1] and rows in (96, 128, 160, 192, 224)
        file = file.format(rows=rows if square else 224)
    return folder, file


def keras_models_cache() -> Path:
    """Where keras.utils.get_file keeps application weights: $KERAS_HOME or ~/.keras, /models."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    if not os.access(home, os.W_OK):  # keras.utils.get_file falls back the same way
        home = Path(tempfile.gettempdir()) / ".keras"
    return home / "models"


def ensure_imagenet_weights(
    application: str, image_shape: tuple[int, int, int], *, timeout_s: float = PROBE_TIMEOUT_S
) -> None:
    """Return when the weights are cached or downloadable; else a clear error, quickly."""
    folder, file = imagenet_weights_file(application, image_shape)
    cache = keras_models_cache()
    if (cache / file).is_file():
        return
    reason = probe_download(folder + file, timeout_s=timeout_s)
    if reason is None:
        log.info("%s: downloading %s into %s", application, file, cache)
        return
    raise BaseWeightsUnavailable(
        f"{application} ImageNet weights are not available: {file} is not in Keras' cache "
        f"({cache}) and cannot be downloaded from {folder}{file} ({reason}). Copy the file "
        f"to {cache / file}, allow the download, or set model.base.weights to null."
    )


def probe_download(url: str, *, timeout_s: float) -> str | None:
    """None when url answers a HEAD request (through the same proxies Keras uses), else why."""
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(getattr(response, "status", 200))
            return None if status < 400 else f"HTTP {status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc)) or type(exc).__name__


# --- an earlier run's model -------------------------------------------------------------------


def run_base(run_id: int, *, input_shape: tuple[int, ...]) -> keras.Model:
    """Run run_id's saved model, up to its penultimate layer, as a nested model."""
    source = load_run_model(run_id)
    given = tuple(int(d) for d in source.input_shape[1:])
    if given != tuple(input_shape):
        raise BaseRunUnavailable(
            f"run {run_id}'s model takes inputs of shape {list(given)}, this dataset gives "
            f"{list(input_shape)}"
        )
    if len(source.layers) < 3:
        raise BaseRunUnavailable(f"run {run_id}'s model has no layer before its output to keep")
    return keras.Model(source.inputs, source.layers[-2].output, name=f"{BASE_PREFIX}run_{run_id}")


def custom_objects() -> dict[str, Any]:
    """What keras.saving.load_model needs for the models Fitboard trains: the plugins' classes."""
    custom: dict[str, Any] = {}
    for plugin in discover().plugins.values():
        custom.update(plugin.custom_objects())
    return custom


def load_run_model(run_id: int) -> keras.Model:
    """keras.saving.load_model of the run's model.keras, with the plugins' custom objects."""
    custom = custom_objects()
    with tempfile.TemporaryDirectory(prefix=f"fitboard-base-run-{run_id}-") as tmp:
        try:
            path = port.current().fetch_artifact(run_id, RUN_MODEL_ARTIFACT, Path(tmp))
        except port.Missing as exc:
            raise BaseRunUnavailable(
                f"from_run: {exc}; use a run that finished training and saved {RUN_MODEL_ARTIFACT}"
            ) from None
        try:
            model = keras.saving.load_model(path, custom_objects=custom, compile=False)
        except Exception as exc:
            raise BaseRunUnavailable(
                f"from_run: cannot load run {run_id}'s {RUN_MODEL_ARTIFACT} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if not isinstance(model, keras.Model) or not hasattr(model, "input_shape"):
        raise BaseRunUnavailable(f"from_run: run {run_id}'s model is not a functional model")
    log.info("from_run=%s loaded %s (%d layers)", run_id, model.name, len(model.layers))
    return model
