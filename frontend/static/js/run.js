// Run page: header, progress, live training curves, evaluation, model, artifacts, spec.

import { ApiError, api, describeError, findEarlyEvent, showMessage } from "./api.js";
import { TrainingCharts } from "./charts.js";
import { drawConfusionMatrix, fillReportTable } from "./evaluation.js";
import {
  ACTIVE_STATUSES,
  el,
  formatDuration,
  formatMetric,
  runDuration,
  statusBadge,
  timeElement,
} from "./format.js";
import { RateMeter } from "./progress.js";
import { renderArtifacts, renderModelSummary } from "./sections.js";

const $ = (id) => document.getElementById(id);
const runId = (/^\/runs\/(\d+)\/?$/.exec(location.pathname) || [])[1];
const FINAL_KEYS = ["loss", "accuracy", "val_loss", "val_accuracy"];

const state = {
  run: null,
  trainBegin: null,
  evaluation: null,
  cmMode: "counts",
  stream: null,
  refreshing: null,
};
const rate = new RateMeter();
const charts = window.Plotly ? new TrainingCharts({ onProgress: onLivePoints }) : null;

// ---- header -------------------------------------------------------------------------------

function setTime(id, iso) {
  $(id).replaceChildren(timeElement(iso));
}

function renderHeader() {
  const run = state.run;
  $("run-name").textContent = run.name;
  document.title = `${run.name} · Fitboard`;
  statusBadge(run.status, $("run-status"));
  setTime("run-created", run.created_at);
  setTime("run-started", run.started_at);
  setTime("run-finished", run.finished_at);
  $("run-duration").textContent = formatDuration(runDuration(run));
  $("run-worker").textContent = run.worker_host || "—";
  $("run-preset").textContent = run.preset || "custom spec";
  $("run-dataset").textContent = run.dataset || (run.spec && run.spec.dataset && run.spec.dataset.name) || "—";

  const failed = Boolean(run.failure_reason) || run.status === "failed";
  $("failure").hidden = !failed;
  $("failure").dataset.status = run.status;
  $("failure-label").textContent = run.status === "cancelled" ? "Cancelled:" : "Failure:";
  $("failure-reason").textContent = run.failure_reason || "no reason was recorded";
  $("traceback-details").hidden = !run.failure_traceback;
  $("failure-traceback").textContent = run.failure_traceback || "";

  const button = $("cancel-button");
  const active = ACTIVE_STATUSES.has(run.status);
  if (!state.evaluation) {
    // Only a run that may still be evaluated keeps room for the matrix.
    $("evaluation").classList.toggle("awaiting", active || run.status === "succeeded");
    $("evaluation-empty").textContent = active || run.status === "succeeded"
      ? "The confusion matrix and classification report appear here once the run has been evaluated on its test split."
      : `This run ${run.status === "failed" ? "failed" : "was cancelled"} before it was evaluated: there is no confusion matrix or report.`;
  }
  button.hidden = !active;
  button.disabled = Boolean(run.cancel_requested);
  button.textContent = run.cancel_requested ? "Cancelling…" : "Cancel run";

  for (const key of FINAL_KEYS) {
    const live = liveValue(key);
    const stored = run.final_metrics ? run.final_metrics[key] : undefined;
    const value = active ? (live ?? stored) : (stored ?? live);
    document.querySelector(`#final-metrics [data-key="${key}"]`).textContent = formatMetric(value);
  }
}

// ---- progress -----------------------------------------------------------------------------

function renderProgress() {
  const run = state.run;
  const epochs = (state.trainBegin && state.trainBegin.epochs) || (run.spec && run.spec.fit && run.spec.fit.epochs) || null;
  const perEpoch = (state.trainBegin && state.trainBegin.steps_per_epoch) || (charts && charts.stepsPerEpoch) || null;
  const step = charts ? charts.lastBatchStep : 0;
  const done = charts ? charts.epochsDone : 0;
  let epoch = Math.min(epochs || Infinity, done + 1);
  let batch = null;
  if (perEpoch && step > 0) {
    epoch = Math.floor((step - 1) / perEpoch) + 1;
    batch = step - (epoch - 1) * perEpoch;
  }
  const position = `epoch ${epoch}/${epochs ?? "?"} · batch ${batch ?? (step || 0)}/${perEpoch ?? "?"}`;

  let label;
  let fraction = 0;
  let eta = "";
  if (epochs && perEpoch) fraction = Math.min(1, step / (epochs * perEpoch));
  else if (epochs) fraction = Math.min(1, done / epochs);
  if (run.status === "queued") {
    label = run.cancel_requested ? "Cancelling…" : "Queued · waiting for a worker";
  } else if (run.status === "running") {
    label = step === 0 && done === 0 && !state.trainBegin ? "Preparing data and building the model…" : position;
    if (run.cancel_requested) label += " · cancelling…";
    const seconds = epochs && perEpoch ? rate.eta(epochs * perEpoch - step) : null;
    eta = seconds === null ? (step > 0 ? "ETA: estimating…" : "") : `ETA ${formatDuration(seconds)}`;
  } else if (run.status === "succeeded") {
    fraction = 1;
    label = `Finished · ${done || epochs || 0}/${epochs ?? "?"} epochs`;
    if (epochs && done && done < epochs) label += " (stopped early)";
  } else {
    label = step || done ? `${run.status} at ${position}` : run.status;
  }
  $("progress-label").textContent = label;
  $("progress-eta").textContent = eta;
  $("progress-fill").style.width = `${(fraction * 100).toFixed(1)}%`;
  $("progress-bar").setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  $("progress").dataset.status = run.status;
}

/** The latest epoch value of a metric, or mid-epoch its latest per-batch value. */
function liveValue(key) {
  if (!charts) return undefined;
  return charts.latest(key) ?? charts.latest(`batch/${key}`);
}

function onLivePoints(pending) {
  const batch = pending.get("batch/loss");
  if (batch) rate.add(batch.walls.at(-1), batch.steps.at(-1));
  renderProgress();
  for (const key of FINAL_KEYS) {
    if (pending.has(key) || pending.has(`batch/${key}`)) {
      document.querySelector(`#final-metrics [data-key="${key}"]`).textContent = formatMetric(liveValue(key));
    }
  }
}

// ---- evaluation, artifacts ----------------------------------------------------------------

function drawEvaluation() {
  if (!state.evaluation || !charts) return;
  drawConfusionMatrix($("confusion-matrix"), state.evaluation, state.cmMode);
  for (const button of $("cm-mode").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === state.cmMode));
  }
}

async function loadEvaluation() {
  try {
    state.evaluation = await api(`/runs/${runId}/evaluation`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return;
    showMessage($("evaluation-error"), err, { prefix: "Could not load the evaluation: " });
    return;
  }
  showMessage($("evaluation-error"), null);
  $("evaluation-empty").hidden = true;
  $("evaluation").classList.remove("awaiting");
  $("evaluation-split").textContent = state.evaluation.split ? `on the ${state.evaluation.split} split` : "";
  $("cm-mode").hidden = false;
  $("confusion-matrix").hidden = false;
  fillReportTable($("report-table"), state.evaluation);
  $("report-table").hidden = false;
  drawEvaluation();
}

async function loadArtifacts() {
  const list = $("artifacts");
  let items;
  try {
    ({ items } = await api(`/runs/${runId}/artifacts`));
  } catch (err) {
    showMessage($("artifacts-error"), err, { prefix: "Could not load artifacts: " });
    return;
  }
  showMessage($("artifacts-error"), null);
  renderArtifacts(list, items, { finished: Boolean(state.run) && !ACTIVE_STATUSES.has(state.run.status) });
}

// ---- live updates -------------------------------------------------------------------------

function setLive(text, kind = "") {
  const node = $("live-state");
  node.textContent = text;
  node.dataset.state = kind;
}

/** Re-read the run (traceback, duration, model summary…) after a state change; coalesced. */
function refreshRun() {
  if (state.refreshing) return state.refreshing;
  state.refreshing = api(`/runs/${runId}`)
    .then((run) => {
      state.run = run;
      renderHeader();
      renderModelSummary($("model-summary"), $("model-empty"), run.model_summary);
      renderProgress();
      if (run.status === "succeeded" && !state.evaluation) loadEvaluation();
      if (!ACTIVE_STATUSES.has(run.status)) loadArtifacts();
    })
    .catch((err) => showMessage($("run-error"), err, { prefix: "Could not refresh the run: " }))
    .finally(() => {
      state.refreshing = null;
    });
  return state.refreshing;
}

function openStream(afterId) {
  const source = new EventSource(`/api/v1/runs/${runId}/stream?after=${encodeURIComponent(afterId ?? 0)}`);
  state.stream = source;
  const on = (name, handler) =>
    source.addEventListener(name, (event) => {
      let data = {};
      try {
        data = event.data ? JSON.parse(event.data) : {};
      } catch (err) {
        showMessage($("metrics-error"), `A live update could not be read: ${err.message}`);
        return;
      }
      handler(data);
    });

  source.onopen = () => setLive("● live", "live");
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setLive("");
      showMessage($("metrics-error"), "Live updates stopped: the server closed the stream. Reload the page to resume.");
    } else {
      setLive("reconnecting…", "reconnecting");
    }
  };
  on("metrics", (data) => {
    if (charts) charts.addPoints(data.points || []);
  });
  on("train_begin", (data) => {
    state.trainBegin = data;
    if (charts) charts.setStepsPerEpoch(data.steps_per_epoch, { exact: true });
    renderProgress();
    refreshRun(); // the model summary is ready once training begins
  });
  on("status", (data) => {
    state.run = { ...state.run, ...data };
    renderHeader();
    renderProgress();
    if (!ACTIVE_STATUSES.has(data.status)) refreshRun();
  });
  on("evaluation", () => loadEvaluation());
  on("artifact", () => loadArtifacts());
  on("end", () => {
    source.close();
    state.stream = null;
    setLive("");
    refreshRun();
  });
}

// ---- start --------------------------------------------------------------------------------

async function loadHistory(run) {
  if (run.status !== "queued") {
    // train_begin went by before this page opened; read it from the start of the event log.
    findEarlyEvent(runId, "train_begin", { stopAt: ["metrics", "evaluation", "end"] }).then((data) => {
      if (!data || state.trainBegin) return;
      state.trainBegin = data;
      charts.setStepsPerEpoch(data.steps_per_epoch, { exact: true });
      renderProgress();
    });
  }
  const metrics = await api(`/runs/${runId}/metrics?max_points=2000`);
  charts.setEmptyText(
    ACTIVE_STATUSES.has(run.status) ? "Waiting for the first batch…" : "No metrics were recorded for this run.",
  );
  charts.setHistory(metrics.series);
  if (!charts.stepsPerEpoch && charts.epochsDone > 0 && charts.lastBatchStep > 0) {
    // No train_begin to read: guess from history; exact once the run has finished.
    const guess = Math.round(charts.lastBatchStep / charts.epochsDone);
    charts.setStepsPerEpoch(guess, { exact: !ACTIVE_STATUSES.has(run.status) });
  }
}

async function main() {
  if (!runId) {
    showMessage($("run-error"), "This address does not name a run; run pages live at /runs/<id>.");
    $("run-content").hidden = true;
    return;
  }
  let run;
  try {
    run = await api(`/runs/${runId}`);
  } catch (err) {
    const notFound = err instanceof ApiError && err.status === 404;
    showMessage($("run-error"), notFound ? `Run ${runId} does not exist. ` : err, {
      prefix: notFound ? "" : "Could not load this run: ",
    });
    $("run-error").append(" ", el("a", { href: "/", text: "Back to the runs list" }));
    $("run-content").hidden = true;
    return;
  }
  state.run = run;
  renderHeader();
  renderModelSummary($("model-summary"), $("model-empty"), run.model_summary);
  $("spec-json").textContent = JSON.stringify(run.spec, null, 2);
  renderProgress();
  loadArtifacts();
  if (run.status === "succeeded") loadEvaluation();

  if (!charts) {
    showMessage($("metrics-error"), "Charts are unavailable: /static/vendor/plotly.min.js did not load.");
  } else {
    try {
      await loadHistory(run);
    } catch (err) {
      showMessage($("metrics-error"), err, { prefix: "Could not load the metrics: " });
    }
  }
  renderHeader();
  renderProgress();
  // Events after the run was read; metric steps already drawn are skipped on arrival.
  if (ACTIVE_STATUSES.has(run.status)) openStream(run.last_event_id);
}

$("cancel-button").addEventListener("click", async () => {
  const button = $("cancel-button");
  button.disabled = true;
  button.textContent = "Cancelling…";
  showMessage($("cancel-error"), null);
  try {
    const run = await api(`/runs/${runId}/cancel`, { method: "POST" });
    state.run = { ...state.run, ...run };
    renderHeader();
    renderProgress();
  } catch (err) {
    showMessage($("cancel-error"), err, { prefix: "Could not cancel: " });
    button.disabled = false;
    button.textContent = "Cancel run";
  }
});

$("cm-mode").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-mode]");
  if (!button) return;
  state.cmMode = button.dataset.mode;
  drawEvaluation();
});

// Keep the duration of a running run ticking.
setInterval(() => {
  if (state.run && state.run.status === "running") {
    $("run-duration").textContent = formatDuration(runDuration(state.run));
  }
}, 1000);

main().catch((err) => showMessage($("run-error"), describeError(err)));
