"""The ``samples`` event: a few training images of each class as small PNGs for the run page."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import numpy as np

from backend.client.streaming import MetricFlusher
from worker.trainer.datasets import Dataset

PER_CLASS = 2
MAX_SIDE = 32


def emit_samples(flusher: MetricFlusher, dataset: Dataset) -> None:
    """Queue the samples event for an image dataset (nothing for text or tabular data)."""
    data = sample_images(dataset)
    if data is not None:
        flusher.event("samples", data, uid="samples")


def sample_images(
    dataset: Dataset, *, per_class: int = PER_CLASS, max_side: int = MAX_SIDE
) -> dict[str, Any] | None:
    """``{"format": "png", "image_shape", "per_class", "classes": [{index, name, images}]}``.

    images are base64 PNGs (no ``data:`` prefix) at most max_side pixels on a side; None when
    the training inputs are not images (N, H, W) or (N, H, W, 1|3|4).
    """
    x, y = dataset.x_train, np.asarray(dataset.y_train).reshape(-1)
    if not _is_images(x):
        return None
    picked = [np.flatnonzero(y == label)[:per_class] for label in range(dataset.num_classes)]
    chosen = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    if len(chosen) == 0:
        return None
    images = np.asarray(x[chosen], dtype=np.float32)
    top = float(np.max(images))
    scale = 255.0 / top if top > 0 else 1.0  # [0, 1], [0, 16] (digits) and [0, 255] alike
    encoded = iter(png_base64(_shrink(image * scale, max_side)) for image in images)
    classes = [
        {
            "index": label,
            "name": dataset.class_names[label],
            "images": [next(encoded) for _ in range(len(indices))],
        }
        for label, indices in enumerate(picked)
    ]
    return {
        "format": "png",
        "image_shape": [int(d) for d in x.shape[1:]],
        "per_class": per_class,
        "classes": classes,
    }


def png_base64(image: np.ndarray) -> str:
    """A (H, W) or (H, W, 1|3|4) array in [0, 255] as a base64 8-bit PNG."""
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    height, width = pixels.shape[:2]
    color_type = {2: 0, 3: {3: 2, 4: 6}.get(pixels.shape[-1], 0)}[pixels.ndim]
    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    png += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    return base64.b64encode(png).decode("ascii")


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _is_images(x: np.ndarray) -> bool:
    if not np.issubdtype(x.dtype, np.number) or len(x) == 0:
        return False
    return x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3, 4))


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Block-average down so the longer side is at most max_side."""
    factor = int(np.ceil(max(image.shape[0], image.shape[1]) / max_side))
    if factor <= 1:
        return image
    height, width = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    cropped = image[:height, :width]
    shape = (height // factor, factor, width // factor, factor, *image.shape[2:])
    return np.asarray(cropped.reshape(shape).mean(axis=(1, 3)))
