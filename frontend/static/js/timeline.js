// The run page's Events timeline and Flags, built from the run and its (non-metric) events.

import { el, formatBytes, formatMetric, formatTime, parseTime } from "./format.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "pruned"]);
const FLAG_LABELS = {
  overfitting: "Overfitting",
  generalization_gap: "Generalization gap",
  underfitting: "Underfitting",
};

export const flagLabel = (kind) => FLAG_LABELS[kind] || String(kind || "flag").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

/** "mixed_float16 · CPU:0, CPU:1 (2 replicas) · global batch 64 · tensorflow" */
export function runtimeText(data) {
  if (!data) return "";
  const devices = Array.isArray(data.devices) && data.devices.length ? data.devices.join(", ") : "default device";
  const parts = [data.precision_policy || "float32", devices + (data.num_replicas > 1 ? ` (${data.num_replicas} replicas)` : "")];
  if (data.global_batch_size) parts.push(`global batch ${data.global_batch_size}`);
  if (data.backend) parts.push(data.backend);
  return parts.join(" · ");
}

function shortJson(data) {
  const text = JSON.stringify(data);
  return text && text.length > 120 ? `${text.slice(0, 119)}…` : text || "";
}

const STAGE_TITLES = {
  process_started: "Training process started",
  data_loaded: "Data loaded",
  model_built: "Model built",
};

/** A stage of a starting run: what it did and how long it took. */
function describeStage(data) {
  const parts = [];
  if (data.stage === "process_started") {
    if (data.startup_s !== null && data.startup_s !== undefined) parts.push(`Keras (${data.backend || "?"}) ready in ${Number(data.startup_s).toFixed(1)} s`);
    if (data.host) parts.push(`on ${data.host}`);
  } else if (data.stage === "data_loaded") {
    if (data.train !== undefined) parts.push(`${Number(data.train).toLocaleString()} train · ${Number(data.test || 0).toLocaleString()} test`);
    if (Array.isArray(data.input_shape)) parts.push(`input ${data.input_shape.map((d) => (d === null ? "?" : d)).join("×")}`);
    if (data.seconds !== undefined) parts.push(`${Number(data.seconds).toFixed(1)} s`);
  } else if (data.stage === "model_built") {
    if (data.params !== undefined) parts.push(`${Number(data.params).toLocaleString()} parameters`);
    if (data.seconds !== undefined) parts.push(`${Number(data.seconds).toFixed(1)} s after start`);
  }
  return { key: `stage-${data.stage}`, title: STAGE_TITLES[data.stage] || String(data.stage).replace(/_/g, " "), detail: parts.join(" · ") };
}

/** Title, detail and tone of one event; null for events the timeline leaves out. */
export function describeEvent(kind, data, run) {
  data = data || {};
  switch (kind) {
    case "status": {
      if (data.status === "queued" && data.resumed_by_hand) {
        const from = data.resume_from ? `from the checkpoint of epoch ${data.resume_from.epoch}` : "";
        return { key: `queued-${data.attempt}`, title: `Resumed by hand as attempt ${data.attempt}`, detail: [from, data.epochs ? `up to epoch ${data.epochs}` : ""].filter(Boolean).join(", "), tone: "warn" };
      }
      if (data.status === "queued" && data.requeued_because) {
        return { key: `queued-${data.attempt}`, title: `Queued again as attempt ${data.attempt}`, detail: data.requeued_because, tone: "warn" };
      }
      if (data.status === "queued") {
        return data.cancel_requested ? null : { key: "queued", title: "Queued", detail: run && run.preset ? `preset ${run.preset}` : "custom spec" };
      }
      if (data.status === "running") {
        if (data.cancel_requested) return { key: "cancel", title: "Cancel requested", detail: "the run stops within a couple of batches", tone: "warn" };
        const title = data.attempt > 1 ? `Started attempt ${data.attempt}` : "Started";
        return { key: data.attempt > 1 ? `running-${data.attempt}` : "running", title, detail: data.worker_host && !(run && run.source === "external") ? `on ${data.worker_host}` : "" };
      }
      if (data.status === "succeeded") return { key: "final", title: "Finished", detail: "succeeded", tone: "ok" };
      if (data.status === "failed") return { key: "final", title: "Failed", detail: data.failure_reason || "no reason was recorded", tone: "bad" };
      if (data.status === "cancelled") return { key: "final", title: "Cancelled", detail: data.failure_reason || "", tone: "warn" };
      return { key: `status-${data.status}`, title: String(data.status), detail: "" };
    }
    case "stage":
      return describeStage(data);
    case "train_begin": {
      const parts = [];
      if (data.epochs) parts.push(`${data.epochs} epochs`);
      if (data.steps_per_epoch) parts.push(`${data.steps_per_epoch} batches each`);
      if (data.batch_size) parts.push(`batch size ${data.batch_size}`);
      if (data.train_samples) parts.push(`${Number(data.train_samples).toLocaleString()} training samples`);
      return { key: "train_begin", title: "Training began", detail: parts.join(" · ") };
    }
    case "runtime":
      return { key: "runtime", title: "Runtime", detail: runtimeText(data) };
    case "base": {
      const detail = data.from_run ? `the model of run #${data.from_run}` : data.application ? `${data.application}${data.weights ? ` (${data.weights} weights)` : ""}` : shortJson(data);
      return { key: "base", title: "Base network", detail };
    }
    case "class_weight":
      return { key: "class_weight", title: "Class weights", detail: data.mode || shortJson(data.weights) };
    case "phase": {
      const index = Number(data.index ?? 0);
      const parts = [`from epoch ${data.start_epoch ?? "?"}`];
      if (data.epochs) parts.push(`${data.epochs} epochs`);
      if (data.learning_rate !== undefined && data.learning_rate !== null) parts.push(`learning rate ${formatMetric(data.learning_rate, 6).replace(/0+$/, "").replace(/\.$/, "")}`);
      if (data.unfreeze_last) parts.push(`last ${data.unfreeze_last} base layers trainable`);
      return { key: `phase-${index}`, title: `Phase ${index + 1}`, detail: parts.join(" · ") };
    }
    case "diagnosis":
      return { key: `diagnosis-${data.kind}`, title: `Flag: ${flagLabel(data.kind).toLowerCase()}`, detail: `epoch ${data.epoch ?? "?"}: ${data.message || ""}`, tone: "warn" };
    case "early_stop": {
      const best = data.best_epoch ? `best epoch ${data.best_epoch} by ${data.monitor || "the monitor"}${data.best_value !== undefined && data.best_value !== null ? ` (${formatMetric(data.best_value)})` : ""}` : "";
      if (data.stopped_epoch) {
        return { key: "early_stop", title: "Early stop", detail: [`stopped after epoch ${data.stopped_epoch}`, best, data.restored ? "best weights restored" : ""].filter(Boolean).join(" · "), tone: "warn" };
      }
      return { key: "early_stop", title: "Early stopping did not trigger", detail: best };
    }
    case "evaluation":
      return { key: "evaluation", title: "Evaluated", detail: data.split ? `on the ${data.split} split` : "" };
    case "artifact":
      if (data.kind === "checkpoint") return null; // the checkpoint events say it
      return { key: `artifact-${data.name}`, title: `Saved ${data.name || "an artifact"}`, detail: data.kind || "", tone: "muted" };
    case "checkpoint": {
      // one entry, the newest: a checkpoint every epoch would bury everything else
      const parts = [];
      if (data.bytes !== undefined) parts.push(formatBytes(data.bytes));
      if (data.seconds !== undefined) parts.push(`${Number(data.seconds).toFixed(1)} s`);
      return { key: "checkpoint", title: `Checkpoint after epoch ${data.epoch ?? "?"}`, detail: parts.join(" · "), tone: "muted" };
    }
    case "forked":
      return { key: "forked", title: `Forked from run #${data.run_id} at epoch ${data.epoch}`, detail: data.artifact ? `starts from its ${data.artifact}` : "" };
    case "fork":
      return { key: `fork-${data.run_id}`, title: `Forked as run #${data.run_id}`, detail: `from the checkpoint of epoch ${data.epoch}`, tone: "muted" };
    case "resumed": {
      if (data.from_run) {
        return { key: `resumed-${data.attempt}`, title: `Started from run #${data.from_run}'s epoch ${data.from_epoch ?? "?"}`, detail: data.host ? `on ${data.host}` : "", tone: "muted" };
      }
      const parts = [];
      if (data.host) parts.push(`on ${data.host}`);
      if (data.artifact) parts.push(`from ${data.artifact}`);
      return { key: `resumed-${data.attempt}`, title: `Attempt ${data.attempt ?? "?"}, resumed from epoch ${data.from_epoch ?? "?"}`, detail: parts.join(" · "), tone: "warn" };
    }
    case "samples":
    case "metrics":
    case "end":
      return null;
    default:
      return { key: `${kind}-${shortJson(data)}`, title: String(kind).replace(/_/g, " "), detail: shortJson(data) };
  }
}

/** When an event happened: the times a status carries, else when it arrived or an estimate. */
function eventTime(event, run) {
  const data = event.data || {};
  if (event.kind === "status") {
    if (data.status === "queued" && !data.cancel_requested && !data.requeued_because) return { at: parseTime(run.created_at), approx: false };
    if (data.status === "running" && !data.cancel_requested && data.started_at) return { at: parseTime(data.started_at), approx: false };
    if (FINAL.has(data.status) && data.finished_at) return { at: parseTime(data.finished_at), approx: false };
  }
  if (event.received) return { at: event.received, approx: false };
  if (Number.isFinite(event.wall)) return { at: new Date(event.wall * 1000), approx: true };
  return { at: null, approx: true };
}

/** Timeline entries from the run and its events (in log order); one per key, latest wins. */
export function timelineEntries(run, events) {
  const byKey = new Map();
  let previous = null;
  for (const event of events) {
    const described = describeEvent(event.kind, event.data, run);
    if (!described) continue;
    let { at, approx } = eventTime(event, run);
    if (!at) {
      at = previous;
      approx = true;
    }
    if (at) previous = at;
    byKey.delete(described.key);
    byKey.set(described.key, { ...described, at, approx, kind: event.kind });
  }
  // the run itself says when it was queued, started and finished, whatever the log held
  const fallback = [
    run.source === "external"
      ? ["queued", run.created_at, { title: "Created", detail: "by a script training elsewhere" }]
      : ["queued", run.created_at, { title: "Queued", detail: run.preset ? `preset ${run.preset}` : "custom spec" }],
    ["running", run.started_at, { title: "Started", detail: run.worker_host && run.source !== "external" ? `on ${run.worker_host}` : "" }],
  ];
  if (FINAL.has(run.status)) {
    const final = describeEvent("status", { status: run.status, failure_reason: run.failure_reason }, run);
    fallback.push(["final", run.finished_at, final]);
  }
  for (const [key, iso, described] of fallback) {
    if (!byKey.has(key) && iso) byKey.set(key, { ...described, key, at: parseTime(iso), approx: false, kind: "status" });
  }
  const entries = [...byKey.values()];
  entries.forEach((entry, index) => {
    entry.order = index;
  });
  const rank = (entry) => (entry.key === "queued" ? 0 : entry.key === "final" ? 2 : 1);
  entries.sort((a, b) => rank(a) - rank(b) || (a.at && b.at ? a.at - b.at : 0) || a.order - b.order);
  return entries;
}

export function renderTimeline(list, entries) {
  list.replaceChildren(
    ...entries.map((entry) =>
      el(
        "li",
        { className: `timeline-item tone-${entry.tone || "plain"}`, dataset: { key: entry.key, kind: entry.kind } },
        entry.at
          ? el("time", {
              className: "timeline-time",
              datetime: entry.at.toISOString(),
              title: entry.approx ? "Approximate: the time of the metric points sent just before it" : entry.at.toISOString(),
              text: `${entry.approx ? "≈ " : ""}${formatTime(entry.at)}`,
            })
          : el("span", { className: "timeline-time muted", text: "—" }),
        el("span", { className: "timeline-title", text: entry.title }),
        entry.detail ? el("span", { className: "timeline-detail", text: entry.detail }) : null,
      ),
    ),
  );
}

/** Diagnosis events as flags with their remedies (one per kind, the latest). */
export function renderFlags(list, empty, diagnoses, { finished }) {
  const byKind = new Map();
  for (const data of diagnoses) byKind.set(data.kind, data);
  list.replaceChildren(
    ...[...byKind.values()].map((data) =>
      el(
        "li",
        { className: "flag", dataset: { kind: data.kind || "" } },
        el("div", { className: "flag-head" }, el("strong", { className: "flag-title", text: flagLabel(data.kind) }), el("span", { className: "muted", text: `epoch ${data.epoch ?? "?"}` })),
        el("p", { className: "flag-message", text: data.message || "" }),
        Array.isArray(data.remedies) && data.remedies.length
          ? el("div", { className: "flag-remedies" }, el("span", { className: "muted", text: "Try: " }), el("ul", {}, data.remedies.map((remedy) => el("li", { text: remedy }))))
          : null,
      ),
    ),
  );
  list.hidden = byKind.size === 0;
  empty.hidden = byKind.size > 0;
  empty.textContent = finished
    ? "No flags: the curves showed no sign of over- or underfitting."
    : "No flags so far: every epoch is checked for over- and underfitting.";
}
