"""A one-line terminal progress bar for a run, fed by its live events."""

from __future__ import annotations

import math
import sys
from typing import IO, Any

WIDTH = 24
SHOWN_METRICS = 4


def _format(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 1e300:
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


class Progress:
    """Epoch e/E, a bar over the batches of the epoch (or the epochs), and the latest metrics.

    On a terminal it redraws one line; elsewhere (a log file, a pipe) it prints a line per epoch.
    """

    def __init__(self, out: IO[str] | None = None, *, enabled: bool = True) -> None:
        self.out = out or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None
        self.epoch = 0
        self.batch = 0
        self.status = ""
        self.latest: dict[str, Any] = {}
        self._last_line = ""

    def start(self, run: dict[str, Any]) -> None:
        spec = run.get("spec") or {}
        fit = spec.get("fit") if isinstance(spec, dict) else None
        if isinstance(fit, dict) and isinstance(fit.get("epochs"), int):
            self.epochs = fit["epochs"]
        self.status = str(run.get("status", ""))
        self._say(f"run {run.get('id')} {run.get('name', '')!s}: {self.status}", line=True)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "train_begin":
            self.epochs = data.get("epochs") or self.epochs
            self.steps_per_epoch = data.get("steps_per_epoch") or self.steps_per_epoch
        elif kind == "status":
            status = str(data.get("status", ""))
            if status != self.status:
                self.status = status
                self._say(f"status: {status}", line=True)
        elif kind == "metrics":
            epoch_done = False
            for key, step, value, *_ in data.get("points", []):
                if key.startswith("batch/"):
                    if self.steps_per_epoch:
                        self.epoch = max(self.epoch, (step - 1) // self.steps_per_epoch)
                        self.batch = step - self.epoch * self.steps_per_epoch
                    else:
                        self.batch = step
                    self.latest[key.removeprefix("batch/")] = value
                elif "/" in key:
                    continue  # another series (sys/*: its step is seconds, not an epoch)
                else:
                    if step >= self.epoch:
                        epoch_done = epoch_done or step > self.epoch
                        self.epoch = step
                        self.batch = self.steps_per_epoch or self.batch
                    self.latest[key] = value
            self._draw(epoch_done)

    def finish(self, run: dict[str, Any]) -> None:
        if self.tty and self._last_line:
            self.out.write("\n")
        final = run.get("final_metrics") or {}
        shown = ", ".join(f"{k}={_format(v)}" for k, v in sorted(final.items())[:8])
        reason = f" ({run['failure_reason']})" if run.get("failure_reason") else ""
        self._say(f"run {run.get('id')} {run.get('status')}{reason}  {shown}".rstrip(), line=True)

    def line(self) -> str:
        epochs = f"/{self.epochs}" if self.epochs else ""
        if self.steps_per_epoch:
            done = min(self.batch, self.steps_per_epoch) / self.steps_per_epoch
            counter = f"batch {self.batch}/{self.steps_per_epoch}"
        elif self.epochs:
            done = min(self.epoch, self.epochs) / self.epochs
            counter = f"step {self.batch}" if self.batch else ""
        else:
            done, counter = 0.0, f"step {self.batch}" if self.batch else ""
        filled = round(done * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        metrics = "  ".join(
            f"{k}={_format(v)}" for k, v in list(self.latest.items())[-SHOWN_METRICS:]
        )
        return f"epoch {self.epoch}{epochs} [{bar}] {counter}  {metrics}".rstrip()

    def _draw(self, epoch_done: bool) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self.tty:
            pad = max(0, len(self._last_line) - len(text))
            self.out.write("\r" + text + " " * pad)
            self.out.flush()
            self._last_line = text
        elif epoch_done:
            self._say(text, line=True)

    def _say(self, text: str, *, line: bool) -> None:
        if not self.enabled:
            return
        if self.tty and self._last_line:
            self.out.write("\n")
            self._last_line = ""
        self.out.write(text + ("\n" if line else ""))
        self.out.flush()
