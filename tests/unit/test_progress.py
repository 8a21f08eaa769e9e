"""The CLI's progress bar reads epochs from epoch points only: a sys/* series (step = seconds)
never moves it."""

from __future__ import annotations

import io

from backend.client.progress import Progress


def test_sys_series_do_not_count_as_epochs() -> None:
    bar = Progress(out=io.StringIO(), enabled=False)
    bar.on_event("train_begin", {"epochs": 3, "steps_per_epoch": 10})
    bar.on_event("metrics", {"points": [["sys/cpu_percent", 7, 50.0, 0.0]]})
    bar.on_event("metrics", {"points": [["batch/loss", 15, 0.5, 0.0]]})
    assert (bar.epoch, bar.batch) == (1, 5)
    bar.on_event("metrics", {"points": [["batch/loss", 30, 0.4, 0.0], ["loss", 3, 0.4, 0.0]]})
    assert bar.line().startswith("epoch 3/3 [########################] batch 10/10")
    assert "cpu_percent" not in bar.line()
