"""Each kind of run says what it has and what it does not: a script's run (FitboardCallback
or the external API), a RemoteMonitor stream and a sweep trial, each made through the API (no
training). The managed run's page is test_pages.py's."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.browser.support import Page, expect, screenshot

pytestmark = pytest.mark.browser

# a plot's layout once Plotly has drawn it (empty plots draw a frame after the others)
LAYOUT_JS = """(id) => {
  const plot = document.getElementById(id);
  const layout = plot && plot.layout;
  if (!layout || !layout.xaxis) return null;
  return {
    xTitle: layout.xaxis.title ? layout.xaxis.title.text : null,
    notes: (layout.annotations || []).map((a) => a.text),
  };
}"""
DRAWN_JS = (
    "() => ['loss-plot', 'accuracy-plot', 'lr-plot']"
    ".every((id) => { const p = document.getElementById(id); return p && p.layout; })"
)


def _layout(page: Page, plot_id: str) -> dict[str, Any]:
    page.wait_for_function(DRAWN_JS)
    layout = page.evaluate(LAYOUT_JS, plot_id)
    assert layout is not None, plot_id
    return dict(layout)


def _callback_run(api: httpx.Client, *, finish: bool = True, **create: Any) -> int:
    """What FitboardCallback sends: train_begin, per-batch and per-epoch points, the end."""
    made = api.post("/runs/external", json={"name": f"script {uuid.uuid4().hex[:6]}", **create})
    assert made.status_code == 201, made.text
    run_id = int(made.json()["id"])
    batches = [
        {"key": key, "step": step, "value": 1.0 / step, "kind": "batch"}
        for step in range(1, 11)
        for key in ("loss", "accuracy")
    ]
    epochs = [
        {"key": key, "step": epoch, "value": 0.5 / epoch, "kind": "epoch"}
        for epoch in (1, 2)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy")
    ]
    sent = api.post(
        f"/runs/{run_id}/points",
        json={
            "uid": "b1",
            "points": batches + epochs,
            "train_begin": {"epochs": 2, "steps_per_epoch": 5, "batch_size": 32},
        },
    )
    assert sent.status_code == 200, sent.text
    if finish:
        done = api.post(f"/runs/{run_id}/finish", json={"status": "succeeded"})
        assert done.status_code == 200, done.text
    return run_id


def _remote_monitor(
    api: httpx.Client, name: str, epochs: int, *, planned: int | None, **extra: float
) -> int:
    """keras.callbacks.RemoteMonitor(send_as_json=True): one post per epoch, epoch from 0."""
    params = {"epochs": planned} if planned else {}
    run_id = 0
    for epoch in range(epochs):
        logs = {"epoch": epoch, "loss": 1.0 / (epoch + 1), "accuracy": 0.5 + epoch / 10}
        logs |= {"val_loss": 1.2 / (epoch + 1), "val_accuracy": 0.4 + epoch / 10, **extra}
        sent = api.post(f"/remote-monitor/{name}", params=params, json=logs)
        assert sent.status_code == 200, sent.text
        run_id = int(sent.json()["run_id"])
    return run_id


def test_a_callback_run_says_what_the_script_did_not_send(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    run_id = _callback_run(api)
    page.goto(f"{base_url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#run-preset")).to_have_text("none: the script sent no spec")
    expect(page.locator("#run-runtime")).to_have_text("not reported by the script")
    expect(page.locator("#run-worker")).to_have_text("none: trained by a script elsewhere")
    expect(page.locator("#run-dataset")).to_have_text("not reported by the script")

    lr = _layout(page, "lr-plot")
    assert lr["notes"] == ["This run did not report a learning rate."]
    loss = _layout(page, "loss-plot")
    assert loss["xTitle"] == "epoch"  # train_begin gave the batches per epoch
    assert loss["notes"] == []
    expect(page.locator("#granularity")).to_be_visible()
    expect(page.locator("#curves-note")).to_be_hidden()
    expect(page.locator("#progress-label")).to_have_text("Finished · 2/2 epochs")

    expect(page.locator("#evaluation-empty")).to_have_text(
        "The script sent no evaluation: there is no confusion matrix or report."
    )
    expect(page.locator("#model-empty")).to_have_text("The script sent no model summary.")
    expect(page.locator("#log-state")).to_have_text("A script's run sends no log to Fitboard.")
    expect(page.locator("#flags-empty")).to_contain_text("Not checked")
    expect(page.locator("#artifacts")).to_contain_text("keeps its model and files where it trained")
    expect(page.locator("#spec-title")).to_have_text("Spec sent by the script")
    expect(page.locator("#spec-json")).to_have_text("The script sent no spec.")
    expect(page.locator("#events")).to_contain_text("Created")
    assert "custom spec" not in page.locator("main").inner_text()
    assert "No metrics were recorded" not in page.locator("main").inner_text()
    expect(page.locator("#run-sweep-row")).to_be_hidden()
    expect(page.locator("#run-trial-row")).to_be_hidden()
    screenshot(page, "run-kind-callback")


def test_a_running_script_run_with_its_own_spec_and_batches_only(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    made = api.post(
        "/runs/external",
        json={"name": f"batches {uuid.uuid4().hex[:6]}", "params": {"lr": 0.01}, "dataset": "mine"},
    )
    assert made.status_code == 201, made.text
    run_id = int(made.json()["id"])
    points = [{"key": "loss", "step": s, "value": 1.0 / s, "kind": "batch"} for s in range(1, 8)]
    sent = api.post(f"/runs/{run_id}/points", json={"points": points})
    assert sent.status_code == 200, sent.text

    page.goto(f"{base_url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("#run-preset")).to_have_text("none: the script sent its own spec (below)")
    expect(page.locator("#run-dataset")).to_have_text("mine")
    expect(page.locator("#run-runtime")).to_have_text("not reported by the script")
    loss = _layout(page, "loss-plot")
    assert loss["xTitle"] == "batch"  # no train_begin and no epoch yet: raw batch numbers
    assert _layout(page, "lr-plot")["notes"] == ["This run has not reported a learning rate."]
    assert _layout(page, "accuracy-plot")["notes"] == ["This run has not reported accuracy."]
    expect(page.locator("#evaluation-empty")).to_contain_text("if the script sends an evaluation")
    api.post(f"/runs/{run_id}/finish", json={"status": "cancelled"})


def test_a_remote_monitor_run_draws_epochs_on_an_epoch_axis(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    run_id = _remote_monitor(api, f"rm-{uuid.uuid4().hex[:6]}", 3, planned=3)
    page.goto(f"{base_url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#run-preset")).to_have_text("none: Keras' RemoteMonitor sends no spec")
    expect(page.locator("#run-runtime")).to_have_text(
        "not reported by the script (RemoteMonitor sends only epoch logs)"
    )
    for plot_id in ("loss-plot", "accuracy-plot"):
        layout = _layout(page, plot_id)
        assert layout["xTitle"] == "epoch", plot_id
        assert layout["notes"] == [], plot_id
    assert _layout(page, "lr-plot")["notes"] == ["This run did not report a learning rate."]
    expect(page.locator("#granularity")).to_be_hidden()
    expect(page.locator("#curves-note")).to_have_text(
        "Per epoch only: this run reported no per-batch values."
    )
    expect(page.locator("#progress-label")).to_have_text("Finished · 3/3 epochs")
    expect(page.locator("#evaluation-empty")).to_have_text(
        "RemoteMonitor sends only per-epoch logs: this run has no confusion matrix or report."
    )
    expect(page.locator("#model-empty")).to_have_text("RemoteMonitor sent no model summary.")
    screenshot(page, "run-kind-remote-monitor")


def test_a_live_remote_monitor_run_counts_epochs_not_batches(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    """Keras 3 logs the rate as learning_rate (ReduceLROnPlateau): the learning-rate plot's."""
    name = f"rm-live-{uuid.uuid4().hex[:6]}"
    run_id = _remote_monitor(api, name, 2, planned=None, learning_rate=0.001)
    page.goto(f"{base_url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running")
    assert _layout(page, "loss-plot")["xTitle"] == "epoch"
    expect(page.locator("#progress-label")).to_have_text("epoch 3/?")
    lr = _layout(page, "lr-plot")
    assert lr["notes"] == [] and lr["xTitle"] == "epoch"
    drawn = page.evaluate(
        "() => document.getElementById('lr-plot').data.find((t) => t.uid === 'lr').y.length"
    )
    assert drawn == 2
    expect(page.locator("#other-metrics-card")).to_be_hidden()
    api.post(f"/runs/{run_id}/finish", json={"status": "succeeded"})


def test_a_sweep_trial_links_its_sweep_and_shows_its_params(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    body = {
        "name": f"kinds sweep {uuid.uuid4().hex[:6]}",
        "preset": "digits-mlp",
        "overrides": {"fit": {"epochs": 1}},
        "strategy": "grid",
        "space": {"compile.optimizer.learning_rate": {"choice": [0.01, 0.001]}},
        "objective": "val_accuracy",
    }
    made = api.post("/sweeps", json=body)
    assert made.status_code == 201, made.text
    sweep_id = int(made.json()["id"])
    api.post(f"/sweeps/{sweep_id}/cancel")  # no training needed: the trials exist already
    trials = api.get(f"/sweeps/{sweep_id}/trials").json()["items"]
    assert trials, "the grid made no trials"
    trial = trials[0]

    page.goto(f"{base_url}/runs/{trial['run_id']}")
    link = page.locator("#run-sweep")
    expect(link).to_have_attribute("href", f"/sweeps/{sweep_id}")
    expect(link).to_have_text(f"sweep {sweep_id}, trial #{trial['trial_number']}")
    rate = trial["params"]["compile.optimizer.learning_rate"]
    expect(page.locator("#run-trial-params")).to_have_text(
        f"compile.optimizer.learning_rate = {rate:g}"
    )
    expect(page.locator("#run-preset")).to_have_text("digits-mlp")
    expect(page.locator("#run-runtime")).not_to_contain_text("not reported by the script")
