"""A trained model in the artifact formats a spec lists (model.keras is the trainer's own)."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from backend.spec.recipes import TENSORFLOW_ARTIFACTS

log = logging.getLogger(__name__)

# format -> (artifact file name, artifact kind)
ARTIFACT_FILES: dict[str, tuple[str, str]] = {
    "keras": ("model.keras", "model"),
    "h5": ("model.h5", "model"),
    "weights": ("model.weights.h5", "weights"),
    "savedmodel": ("savedmodel.zip", "savedmodel"),
    "tflite": ("model.tflite", "tflite"),
    "tflite_quant": ("model_quant.tflite", "tflite"),
}
SAVEDMODEL_DIR = "savedmodel"
FLOAT32 = "float32"


class ExportError(RuntimeError):
    """A format cannot be written with this backend or for this model."""


@dataclass(frozen=True)
class Exported:
    name: str
    kind: str
    path: Path


def check_backend(formats: Iterable[str], backend: str | None = None) -> None:
    """Refuse, before any training, formats that only TensorFlow can write."""
    backend = backend or keras.backend.backend()
    needs_tf = sorted(set(formats) & TENSORFLOW_ARTIFACTS)
    if needs_tf and backend != "tensorflow":
        raise ExportError(
            f"artifacts {', '.join(needs_tf)} need the TensorFlow backend (SavedModel and the "
            f"TFLite converter); this worker runs Keras on {backend}"
        )


@dataclass
class ExportResult:
    done: list[Exported] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # format -> short reason


def export(model: keras.Model, formats: Iterable[str], out_dir: Path) -> ExportResult:
    """Write each listed format but ``keras`` into out_dir; a failure is recorded, not raised."""
    wanted = set(formats) - {"keras"}
    check_backend(wanted)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    saved_models: dict[str, Path] = {}

    def saved_model(kind: str) -> Path:
        """The SavedModel as trained, or ("tflite") in float32: TFLite has no bfloat16 kernels
        and no use for a mixed policy's casts."""
        if kind not in saved_models:
            source = float32_copy(model) if kind == "tflite" else model
            if kind == "tflite" and source is model and "model" in saved_models:
                saved_models[kind] = saved_models["model"]
            else:
                path = out_dir / f"{SAVEDMODEL_DIR}-{kind}"
                source.export(str(path), format="tf_saved_model", verbose=False)
                saved_models[kind] = path
        return saved_models[kind]

    for fmt, (name, kind) in ARTIFACT_FILES.items():
        if fmt not in wanted:
            continue
        path = out_dir / name
        try:
            if fmt == "h5":
                model.save(path)  # Keras warns that .h5 is legacy, which is the point here
            elif fmt == "weights":
                model.save_weights(path)
            elif fmt == "savedmodel":
                zip_dir(saved_model("model"), path, root=SAVEDMODEL_DIR)
            else:
                quantize = fmt == "tflite_quant"
                path.write_bytes(to_tflite(saved_model("tflite"), quantize=quantize))
        except Exception as exc:
            log.exception("event=export_failed format=%s", fmt)
            result.failed[fmt] = f"{type(exc).__name__}: {_short(exc)}"
            continue
        log.info("event=exported format=%s bytes=%d", fmt, path.stat().st_size)
        result.done.append(Exported(name=name, kind=kind, path=path))
    return result


def float32_copy(model: keras.Model) -> keras.Model:
    """The model itself when it computes in float32, else a float32 twin with its weights."""
    if all(layer.dtype_policy.name == FLOAT32 for layer in _all_layers(model)):
        return model
    twin = model.__class__.from_config(_float32_config(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    layers: list[keras.layers.Layer] = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_all_layers(layer))
    return layers


def _float32_config(value: Any) -> Any:
    """A model config with every dtype policy (mixed_float16, mixed_bfloat16) made float32."""
    if isinstance(value, dict):
        if str(value.get("class_name", "")).endswith("DTypePolicy"):
            return {**value, "config": {**value.get("config", {}), "name": FLOAT32}}
        return {k: _float32_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    return value


def _short(exc: BaseException, limit: int = 300) -> str:
    """The gist of an error: TFLite's converter errors run to pages of MLIR."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    gist = next((line for line in lines if line.startswith("TF Select ops:")), None)
    text = lines[0] if lines else ""
    if gist:
        text = f"{text} ({gist}; the ops TFLite has no built-in kernel for)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_tflite(saved_model: Path, *, quantize: bool) -> bytes:
    """TFLite flatbuffer of a SavedModel; ``quantize``: dynamic-range (int8 weights)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return bytes(converter.convert())


def zip_dir(source: Path, dest: Path, *, root: str | None = None) -> Path:
    """Zip a directory tree (entries under ``root/`` when given), files in sorted order."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                rel = path.relative_to(source).as_posix()
                zf.write(path, f"{root}/{rel}" if root else rel)
    return dest
