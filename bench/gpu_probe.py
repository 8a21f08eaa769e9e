"""On an NVIDIA machine: probe the GPUs, train one short run on one GPU with Keras, and print
the system metrics sampled meanwhile (they must be non-zero). Skips where there is no GPU.

    KERAS_BACKEND=jax python bench/gpu_probe.py      # the device machine has JAX, not TF

Prints what it measured; docs/benchmarks.md records a run of it.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")  # one GPU, as a 1-GPU run gets

from worker.trainer.sysmetrics import GpuProbe, SystemSampler


def main() -> int:
    probe = GpuProbe()
    if not probe.handles:
        print("no NVIDIA GPU visible (NVML found none): skipped")
        return 0
    import pynvml

    for index, handle in probe.handles:
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        print(
            f"GPU {index}: {pynvml.nvmlDeviceGetName(handle)} "
            f"uuid={pynvml.nvmlDeviceGetUUID(handle)} memory={memory.total / 2**30:.1f} GiB"
        )
    import keras
    import numpy as np

    samples: list[dict[str, float]] = []
    sampler = SystemSampler(lambda step, values, wall: samples.append(values), every_s=0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200_000, 256)).astype("float32")
    y = rng.integers(0, 10, size=200_000)
    model = keras.Sequential(
        [keras.Input((256,)), keras.layers.Dense(2048, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sampler.start()
    started = time.monotonic()
    model.fit(x, y, epochs=3, batch_size=1024, verbose=0)
    sampler.stop()
    print(
        f"keras {keras.__version__} backend={keras.backend.backend()} "
        f"fit {time.monotonic() - started:.1f} s, {len(samples)} samples"
    )
    keys = sorted({key for sample in samples for key in sample})
    for key in keys:
        values = [s[key] for s in samples if key in s]
        print(f"  {key:24s} max {max(values):10.1f}  mean {sum(values) / len(values):10.1f}")
    busy = max((s.get("sys/gpu0_util", 0.0) for s in samples), default=0.0)
    print("OK" if busy > 0 else "FAIL: GPU utilisation stayed 0")
    return 0 if busy > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
