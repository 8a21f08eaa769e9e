// Run page: header (tags, notes, runtime), progress, live training curves (per batch / per
// epoch, zoom for detail, early stop and phase markers), evaluation, model, artifacts, the live
// log, flags, the events timeline and the spec.

import { Annotations } from "./annotations.js";
import { ApiError, api, describeError, showMessage } from "./api.js";
import { TrainingCharts } from "./charts.js";
import { EpochEvaluations, drawConfusionMatrix, fillReportTable } from "./evaluation.js";
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
import { readEventLog } from "./eventlog.js";
import { LogPanel } from "./runlog.js";
import { OtherMetrics, isSystemMetric } from "./othermetrics.js";
import { plotlyReady } from "./plotly-ready.js";
import { historyRequest, runRequest } from "./run-requests.js";
import "./run-lineage.js"; // Resume, Fork, lineage: listens for "fitboard:run" before the first render
import { renderArtifacts, renderBase, renderModelSummary, renderSamples } from "./sections.js";
import { renderFlags, renderTimeline, runtimeText, timelineEntries } from "./timeline.js";
import { isEmptyObject, isExternal, presetText, runKind, trialParamsText, workerText } from "./runkind.js";

const $ = (id) => document.getElementById(id);
const runId = (/^\/runs\/(\d+)\/?$/.exec(location.pathname) || [])[1];
const FINAL_KEYS = ["loss", "accuracy", "val_loss", "val_accuracy"];

const state = {
  run: null,
  trainBegin: null,
  evaluation: null,
  shownEvaluation: null, // what the heatmap shows: the final evaluation or an epoch's
  cmMode: "counts",
  stream: null,
  refreshing: null,
  events: [], // non-metric events in log order: {kind, data, wall?, received?}
  runtime: null,
  phases: [],
  diagnoses: [],
  historyRead: false,
  timelineFrame: null,
};
const rate = new RateMeter();
// plotly.js loads beside this module (see plotly-ready.js): both draw only once it has run
const otherMetrics = new OtherMetrics({ card: $("other-metrics-card"), div: $("other-metrics-plot") });
const systemMetrics = new OtherMetrics({
  card: $("system-metrics-card"),
  div: $("system-metrics-plot"),
  accept: isSystemMetric,
  xTitle: "seconds",
});
const charts = new TrainingCharts({ onProgress: onLivePoints });
if (charts) {
  charts.fetchDetail = async (key, minStep, maxStep) => {
    const query = new URLSearchParams({ keys: key, min_step: String(minStep), max_step: String(maxStep), max_points: "2000" });
    const answer = await api(`/runs/${runId}/metrics?${query}`);
    return answer.series[key] || { steps: [], values: [] };
  };
}
const annotations = new Annotations(
  {
    tags: $("run-tags"),
    notes: $("run-notes"),
    edit: $("edit-annotations"),
    form: $("annotations-form"),
    tagsInput: $("tags-input"),
    notesInput: $("notes-input"),
    cancel: $("cancel-annotations"),
    status: $("annotations-status"),
    error: $("annotations-error"),
  },
  {
    runId,
    onSaved: (run) => {
      state.run = { ...state.run, ...run };
      renderHeader();
    },
  },
);
const logPanel = new LogPanel({ output: $("log-output"), status: $("log-state"), jump: $("log-jump"), error: $("log-error") });

// ---- header -------------------------------------------------------------------------------

function setTime(id, iso) {
  $(id).replaceChildren(timeElement(iso));
}

// what a starting run is doing, from its latest stage event
const STARTING = {
  process_started: "Loading the data…",
  data_loaded: "Building the model…",
  model_built: "Compiling and starting the first batch…",
};

function startingLabel() {
  const stage = state.stage && STARTING[state.stage];
  return stage || "Starting the training process (importing Keras)…";
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
  $("run-launcher").textContent = run.launched_by || "—";
  $("run-worker").textContent = workerText(run);
  $("run-preset").textContent = presetText(run);
  $("run-dataset").textContent =
    run.dataset || (run.spec && run.spec.dataset && run.spec.dataset.name) || (isExternal(run) ? "not reported by the script" : "—");
  document.body.dataset.runKind = runKind(run);
  $("clone-button").href = `/new?clone=${encodeURIComponent(run.id)}`;
  $("sweep-from-run").href = `/sweeps/new?run=${encodeURIComponent(run.id)}`;
  $("compare-link").href = `/compare?runs=${encodeURIComponent(run.id)}`;
  if (run.sweep_id) {
    // a sweep's trial links back to its sweep
    const link = $("run-sweep");
    link.href = `/sweeps/${encodeURIComponent(run.sweep_id)}`;
    link.textContent = `sweep ${run.sweep_id}, trial #${run.trial_number}`;
    $("run-sweep-row").hidden = false;
    const params = trialParamsText(run.trial_params);
    $("run-trial-params").textContent = params || "none recorded";
    $("run-trial-row").hidden = false;
  }
  annotations.render(run);
  renderRuntime();

  const failed = Boolean(run.failure_reason) || run.status === "failed";
  $("failure").hidden = !failed;
  $("failure").dataset.status = run.status;
  $("failure-label").textContent = run.status === "cancelled" ? "Cancelled:" : "Failure:";
  $("failure-reason").textContent = run.failure_reason || "no reason was recorded";
  $("traceback-details").hidden = !run.failure_traceback;
  $("failure-traceback").textContent = run.failure_traceback || "";

  const button = $("cancel-button");
  const active = ACTIVE_STATUSES.has(run.status);
  if (!state.evaluation && !state.shownEvaluation) renderEvaluationEmpty();
  button.hidden = !active;
  button.disabled = Boolean(run.cancel_requested);
  button.textContent = run.cancel_requested ? "Cancelling…" : "Cancel run";

  $("final-metrics-note").hidden = run.status !== "cancelled";
  document.dispatchEvent(new CustomEvent("fitboard:run", { detail: run })); // run-lineage.js
  for (const key of FINAL_KEYS) {
    const live = liveValue(key);
    const stored = run.final_metrics ? run.final_metrics[key] : undefined;
    const value = active ? (live ?? stored) : (stored ?? live);
    document.querySelector(`#final-metrics [data-key="${key}"]`).textContent = formatMetric(value);
  }
}

/** What the evaluation card says while it has no matrix: whether one may still come. */
function renderEvaluationEmpty() {
  const run = state.run;
  const active = ACTIVE_STATUSES.has(run.status);
  const kind = runKind(run);
  let awaiting = active || run.status === "succeeded";
  let text = awaiting
    ? "The confusion matrix and classification report appear here once the run has been evaluated on its test split."
    : `This run ${run.status === "failed" ? "failed" : "was cancelled"} before it was evaluated: there is no confusion matrix or report.`;
  if (kind === "remote-monitor") {
    awaiting = false;
    text = "RemoteMonitor sends only per-epoch logs: this run has no confusion matrix or report.";
  } else if (kind === "script" && active) {
    text = "The confusion matrix and classification report appear here if the script sends an evaluation (FitboardCallback's evaluate=…).";
  } else if (kind === "script") {
    awaiting = awaiting && !state.evaluationMissing; // room until the answer says there is none
    text = "The script sent no evaluation: there is no confusion matrix or report.";
  }
  $("evaluation").classList.toggle("awaiting", awaiting);
  $("evaluation-empty").textContent = text;
}

/** The parts a script's run never has (no worker ran it) say so instead of waiting. */
function renderExternalSections(run) {
  if (!isExternal(run)) return;
  const what = runKind(run) === "remote-monitor" ? "RemoteMonitor" : "The script";
  $("model-empty").textContent = `${what} sent no model summary.`;
  $("flags-empty").textContent = "Not checked: Fitboard looks for over- and underfitting only in runs its workers train.";
  $("spec-title").textContent = "Spec sent by the script";
  if (isEmptyObject(run.spec)) $("spec-json").textContent = `${what} sent no spec.`;
}

function renderRuntime() {
  const node = $("run-runtime");
  const run = state.run;
  if (state.runtime) {
    node.textContent = runtimeText(state.runtime);
    node.classList.remove("muted");
    return;
  }
  node.classList.add("muted");
  if (isExternal(run)) {
    node.textContent = runKind(run) === "remote-monitor"
      ? "not reported by the script (RemoteMonitor sends only epoch logs)"
      : "not reported by the script";
    return;
  }
  const precision = (run.spec && run.spec.precision) || "float32";
  if (ACTIVE_STATUSES.has(run.status)) node.textContent = `${precision}; devices are reported when training starts`;
  else node.textContent = state.historyRead ? `${precision} (the devices were not recorded)` : precision;
}

// ---- events: timeline, flags, markers -----------------------------------------------------

/** Take one non-metric event (from history or live) into the timeline, flags and plots. */
function ingestEvent(kind, data, { received = null, wall = null } = {}) {
  if (kind === "metrics" || kind === "end") return;
  state.events.push({ kind, data, received, wall });
  if (kind === "samples") {
    renderSamples($("samples"), $("samples-grid"), $("samples-sub"), data);
  } else if (kind === "base") {
    renderBase($("run-base-row"), $("run-base"), data);
  } else if (kind === "runtime") {
    state.runtime = data;
    renderRuntime();
  } else if (kind === "stage") {
    state.stage = data.stage;
    renderProgress();
  } else if (kind === "early_stop" && charts) {
    charts.setMarkers({ earlyStop: data });
  } else if (kind === "phase") {
    state.phases = [...state.phases.filter((p) => p.index !== data.index), data].sort((a, b) => a.index - b.index);
    if (charts) charts.setMarkers({ phases: state.phases });
  } else if (kind === "diagnosis") {
    state.diagnoses.push(data);
    renderFlagList();
  }
  scheduleTimeline();
}

function renderFlagList() {
  if (state.run && isExternal(state.run) && !state.diagnoses.length) return; // renderExternalSections
  renderFlags($("flags"), $("flags-empty"), state.diagnoses, { finished: Boolean(state.run) && !ACTIVE_STATUSES.has(state.run.status) });
}

function scheduleTimeline() {
  if (state.timelineFrame !== null) return;
  state.timelineFrame = requestAnimationFrame(() => {
    state.timelineFrame = null;
    if (state.run) renderTimeline($("events"), timelineEntries(state.run, state.events));
  });
}

async function loadEventHistory(run) {
  let result;
  try {
    result = await readEventLog(runId, { untilId: run.last_event_id });
  } catch (err) {
    showMessage($("events-error"), err, { prefix: "Could not read the run's events: " });
    result = { events: [], complete: false };
  }
  // live events that arrived meanwhile come after these
  const live = state.events;
  state.events = [];
  for (const event of result.events) {
    if (event.kind === "train_begin" && !state.trainBegin) {
      state.trainBegin = event.data;
      if (charts) charts.setStepsPerEpoch(event.data.steps_per_epoch, { exact: true });
      renderProgress();
    }
    ingestEvent(event.kind, event.data, { wall: event.wall });
  }
  state.events.push(...live);
  state.historyRead = true;
  if (!result.complete && !$("events-error").textContent) {
    showMessage($("events-error"), "Only part of the event log could be read; reload the page to try again.");
  }
  renderRuntime();
  renderFlagList();
  scheduleTimeline();
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
  // a run that reports per-epoch values only (RemoteMonitor) has no batch to name
  const epochOnly = charts ? state.historyDrawn && !charts.hasBatches && !perEpoch : false;
  const position = epochOnly
    ? `epoch ${epoch}/${epochs ?? "?"}`
    : `epoch ${epoch}/${epochs ?? "?"} · batch ${batch ?? (step || 0)}/${perEpoch ?? "?"}`;

  let label;
  let fraction = 0;
  let eta = "";
  if (epochs && perEpoch) fraction = Math.min(1, step / (epochs * perEpoch));
  else if (epochs) fraction = Math.min(1, done / epochs);
  if (run.status === "queued") {
    // the fleet says why, when no live worker could take it (GET /runs/{id}: waiting)
    const queued = run.priority && run.priority !== "normal" ? `Queued · ${run.priority} priority` : "Queued";
    label = run.cancel_requested ? "Cancelling…" : `${queued} · ${run.waiting || "waiting for a worker"}`;
  } else if (run.status === "running") {
    label = step === 0 && done === 0 && !state.trainBegin ? startingLabel() : position;
    if (run.cancel_requested) label += " · cancelling…";
    const seconds = epochs && perEpoch ? rate.eta(epochs * perEpoch - step) : null;
    eta = seconds === null ? (step > 0 ? "ETA: estimating…" : "") : `ETA ${formatDuration(seconds)}`;
  } else if (run.status === "succeeded") {
    fraction = 1;
    label = epochs ? `Finished · ${done || epochs}/${epochs} epochs` : `Finished · ${done} epoch${done === 1 ? "" : "s"}`;
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
  const shown = state.shownEvaluation;
  if (!shown) return;
  if (!window.Plotly) {
    plotlyReady.then((plotly) => plotly && drawEvaluation());
    return;
  }
  drawConfusionMatrix($("confusion-matrix"), shown, state.cmMode);
  $("confusion-matrix").dataset.shown = shown.epoch ? `epoch-${shown.epoch}` : "final";
  for (const button of $("cm-mode").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === state.cmMode));
  }
}

async function loadEvaluation() {
  try {
    state.evaluation = await api(`/runs/${runId}/evaluation`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      state.evaluationMissing = true;
      if (!state.shownEvaluation) renderEvaluationEmpty();
      return;
    }
    showMessage($("evaluation-error"), err, { prefix: "Could not load the evaluation: " });
    return;
  }
  showMessage($("evaluation-error"), null);
  epochEvaluations.setFinal(state.evaluation); // shows it unless an earlier epoch is selected
}

/** Draw one evaluation (the final one, or an epoch's from the slider) with its report. */
function showEvaluation(evaluation, { epoch }) {
  state.shownEvaluation = evaluation;
  showMessage($("evaluation-error"), null);
  $("evaluation-empty").hidden = true;
  $("evaluation").classList.remove("awaiting");
  const split = evaluation.split ? `on the ${evaluation.split} split` : "";
  $("evaluation-split").textContent = epoch ? `${split} after epoch ${epoch}` : split;
  $("cm-mode").hidden = false;
  $("confusion-matrix").hidden = false;
  fillReportTable($("report-table"), evaluation);
  $("report-table").hidden = false;
  drawEvaluation();
}

const epochEvaluations = new EpochEvaluations({
  root: $("cm-epochs"),
  slider: $("cm-epoch"),
  label: $("cm-epoch-label"),
  fetchEpoch: (epoch) => api(`/runs/${runId}/evaluation/epochs/${epoch}`),
  onShow: showEvaluation,
  onError: (err) => showMessage($("evaluation-error"), err, { prefix: "Could not load that epoch's evaluation: " }),
});

/** Per-epoch evaluations so far (spec evaluation.every_epoch); live ones come as events. */
async function loadEpochEvaluations() {
  try {
    const { items } = await api(`/runs/${runId}/evaluation/epochs`);
    epochEvaluations.setEpochs(items);
  } catch (err) {
    showMessage($("evaluation-error"), err, { prefix: "Could not load the per-epoch evaluations: " });
  }
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
  renderArtifacts(list, items, {
    finished: Boolean(state.run) && !ACTIVE_STATUSES.has(state.run.status),
    external: Boolean(state.run) && isExternal(state.run),
  });
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
      if (run.model_summary && run.model_summary.base) renderBase($("run-base-row"), $("run-base"), run.model_summary.base);
      renderProgress();
      if (run.status === "succeeded" && !state.evaluation) loadEvaluation();
      if (!ACTIVE_STATUSES.has(run.status)) loadArtifacts();
      renderFlagList();
      scheduleTimeline();
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
    if (otherMetrics) otherMetrics.addPoints(data.points || []);
    systemMetrics.addPoints(data.points || []);
  });
  const received = (kind) => (data) => ingestEvent(kind, data, { received: new Date() });
  for (const kind of ["status", "stage", "train_begin", "evaluation", "artifact", "early_stop", "phase", "diagnosis", "runtime", "base", "class_weight", "samples"]) {
    on(kind, received(kind));
  }
  on("train_begin", (data) => {
    state.trainBegin = data;
    if (charts) charts.setStepsPerEpoch(data.steps_per_epoch, { exact: true });
    renderProgress();
    refreshRun(); // the model summary is ready once training begins
  });
  on("status", (data) => {
    if (data.attempt > (state.run.attempt || 1)) {
      // the lost attempt's curves were dropped and the next one draws them again: start over
      location.reload();
      return;
    }
    state.run = { ...state.run, ...data };
    renderHeader();
    renderProgress();
    if (!ACTIVE_STATUSES.has(data.status)) refreshRun();
  });
  // fell far behind the live feed: the browser reconnects with Last-Event-ID and catches up
  on("reconnect", () => setLive("catching up…", "reconnecting"));
  on("evaluation", () => loadEvaluation());
  on("epoch_evaluation", (data) => epochEvaluations.addEpoch(data));
  on("artifact", () => loadArtifacts());
  on("end", () => {
    source.close();
    state.stream = null;
    setLive("");
    refreshRun();
  });
}

/** Batch/epoch switches only for a run with per-batch curves; an epoch-only run says so. */
function renderGranularity() {
  const epochOnly = charts.epochsDone > 0 && !charts.hasBatches;
  $("granularity").hidden = epochOnly;
  $("curves-note").hidden = !epochOnly;
  $("curves-note").textContent = epochOnly ? "Per epoch only: this run reported no per-batch values." : "";
}

// ---- start --------------------------------------------------------------------------------

async function loadHistory(run, request) {
  let metrics = await request;
  if (metrics.last_event_id < run.last_event_id) {
    // read before the run (both were asked at once): the stream opens after the run's last
    // event, so points between the two would be missing; ask again (only a live run gets here)
    metrics = await api(`/runs/${runId}/metrics?max_points=2000`);
  }
  if (!(await plotlyReady)) {
    showMessage($("metrics-error"), "Charts are unavailable: plotly.js did not load.");
    return;
  }
  const active = ACTIVE_STATUSES.has(run.status);
  // an empty plot beside others' curves names what this run does not report
  const missing = (plot) => `This run ${active ? "has not reported" : "did not report"} ${plot.title === "learning rate" ? "a learning rate" : plot.title}.`;
  charts.setEmptyText(active ? "Waiting for the first batch…" : "No metrics were recorded for this run.", missing);
  charts.setHistory(metrics.series, { draw: false }); // drawn once, on the right x axis
  if (!charts.stepsPerEpoch && charts.epochsDone > 0 && charts.lastBatchStep > 0) {
    // No train_begin to read: guess from history; exact once the run has finished.
    const guess = Math.round(charts.lastBatchStep / charts.epochsDone);
    charts.setStepsPerEpoch(guess, { exact: !ACTIVE_STATUSES.has(run.status) });
  }
  charts.redraw();
  state.historyDrawn = true;
  renderGranularity();
  if (otherMetrics) otherMetrics.setHistory(metrics.series);
  systemMetrics.setHistory(metrics.series);
}

async function main() {
  if (!runId) {
    showMessage($("run-error"), "This address does not name a run; run pages live at /runs/<id>.");
    $("run-content").hidden = true;
    return;
  }
  let run;
  try {
    run = await runRequest; // both requests left before this module ran: run-requests.js
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
  if (run.model_summary && run.model_summary.base) renderBase($("run-base-row"), $("run-base"), run.model_summary.base);
  $("spec-json").textContent = JSON.stringify(run.spec, null, 2);
  renderExternalSections(run);
  renderProgress();
  loadArtifacts();
  if (run.spec && run.spec.evaluation && run.spec.evaluation.every_epoch) loadEpochEvaluations();
  if (run.status === "succeeded") loadEvaluation();
  scheduleTimeline();
  renderFlagList();
  // events before this page opened (train_begin, runtime, phases, flags…); the stream has the rest
  loadEventHistory(run);
  if (isExternal(run)) logPanel.setStatus("A script's run sends no log to Fitboard.", "empty");
  else logPanel.start(runId, { live: ACTIVE_STATUSES.has(run.status), queued: run.status === "queued" });

  try {
    await loadHistory(run, historyRequest);
  } catch (err) {
    showMessage($("metrics-error"), err, { prefix: "Could not load the metrics: " });
  }
  renderHeader();
  renderProgress();
  // Events after the run was read; metric steps already drawn are skipped on arrival.
  if (ACTIVE_STATUSES.has(run.status)) openStream(run.last_event_id);
  if (run.status === "queued") watchWaiting();
}

/** While the run waits, ask every 5 s why (a worker may join, or leave). */
function watchWaiting() {
  const timer = setInterval(async () => {
    if (!state.run || state.run.status !== "queued") {
      clearInterval(timer);
      return;
    }
    try {
      const fresh = await api(`/runs/${runId}`);
      if (state.run.status === "queued") state.run = { ...state.run, waiting: fresh.waiting };
      renderProgress();
    } catch {
      // the next tick asks again
    }
  }, 5000);
}

// Cancel asks first, saying what is kept (the dialog's form closes it with the button's value)
$("cancel-button").addEventListener("click", () => $("cancel-dialog").showModal());
$("cancel-dialog").addEventListener("close", () => {
  if ($("cancel-dialog").returnValue === "cancel") cancelRun();
});

async function cancelRun() {
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
}

$("granularity").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-granularity]");
  if (!button || !charts) return;
  charts.setGranularity(button.dataset.granularity);
  for (const other of $("granularity").querySelectorAll("button")) {
    other.setAttribute("aria-pressed", String(other === button));
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
