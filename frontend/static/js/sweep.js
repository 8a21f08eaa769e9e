// One sweep: progress, best trial, parameters against the objective (parcoords), the objective
// by trial, hyperparameter importance, the trials table and Cancel. Polls every 3 s while the
// sweep runs; running trials are drawn at their latest objective value.

import { api, showMessage } from "./api.js";
import { el, formatMetric, statusBadge, timeElement } from "./format.js";

const sweepId = Number(location.pathname.split("/").filter(Boolean).pop());
const POLL_MS = 3000;
let timer = null;
let importanceKey = null; // the succeeded count importance was last fetched for

function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : formatMetric(value);
  return JSON.stringify(value);
}

function pruner(sweep) {
  const p = sweep.pruner;
  if (!p) return "none";
  if (p.kind === "median") return `median (warm-up ${p.warmup_epochs} epochs, ${p.min_trials}+ trials)`;
  return `successive halving (from epoch ${p.min_epochs}, factor ${p.reduction_factor})`;
}

function renderHead(sweep) {
  document.title = `${sweep.name} · Sweep · Fitboard`;
  document.getElementById("sweep-name").textContent = sweep.name;
  statusBadge(sweep.status, document.getElementById("sweep-status"));
  document.getElementById("sweep-strategy").textContent =
    `${sweep.strategy}, ${sweep.max_trials} trials`;
  document.getElementById("sweep-objective").textContent = `${sweep.objective} (${sweep.direction})`;
  document.getElementById("sweep-concurrent").textContent = String(sweep.max_concurrent);
  document.getElementById("sweep-pruner").textContent = pruner(sweep);
  document.getElementById("sweep-created").replaceChildren(timeElement(sweep.created_at));
  document.getElementById("sweep-finished").replaceChildren(
    sweep.finished_at ? timeElement(sweep.finished_at) : "—",
  );
  // trials are named "<sweep name> #<n>": the runs list finds them by name
  document.getElementById("sweep-runs-link").href = `/?q=${encodeURIComponent(sweep.name)}`;
  const p = sweep.progress;
  for (const key of ["done", "running", "queued", "pruned", "failed"]) {
    document.getElementById(`progress-${key}`).textContent =
      key === "done" ? `${p.done} / ${p.total}` : String(p[key]);
  }
  const bar = document.getElementById("sweep-bar");
  bar.dataset.status = sweep.status === "finished" ? "succeeded" : sweep.status;
  const percent = p.total ? Math.round((100 * p.done) / p.total) : 0;
  document.getElementById("sweep-bar-fill").style.width = `${percent}%`;
  document.getElementById("sweep-bar-track").setAttribute("aria-valuenow", String(percent));
  document.getElementById("sweep-cancel").hidden = sweep.status !== "running";
  const best = document.getElementById("sweep-best");
  if (sweep.best) {
    const b = sweep.best;
    best.className = "";
    best.replaceChildren(
      el("p", {},
        el("a", { href: `/runs/${b.run_id}`, text: `Trial #${b.trial_number}` }),
        ` — ${sweep.objective} `,
        el("strong", { text: formatMetric(b.objective) })),
      el("ul", { className: "param-list" },
        ...Object.entries(b.params).map(([k, v]) => el("li", {}, el("code", { text: k }), ` = ${formatValue(v)}`))),
    );
  }
}

function numeric(values) {
  return values.every((v) => typeof v === "number");
}

function dimension(label, values) {
  if (numeric(values)) return { label, values };
  const names = [...new Set(values.map((v) => JSON.stringify(v)))];
  return {
    label,
    values: values.map((v) => names.indexOf(JSON.stringify(v))),
    tickvals: names.map((_, i) => i),
    ticktext: names,
  };
}

const hasValue = (t) => t.objective !== null && t.objective !== undefined;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** "3 of 12 trials finished; ..." and what the charts cannot show yet. */
function partialNote(sweep, trials) {
  const p = sweep.progress;
  const running = trials.filter((t) => t.status === "running");
  const parts = [`${p.done} of ${p.total} trials finished`];
  if (p.running) parts.push(`${p.running} running`);
  if (p.queued) parts.push(`${p.queued} queued`);
  const unasked = p.total - p.created;
  if (unasked > 0) parts.push(`${unasked} not asked for yet (bayesian: as slots free up)`);
  let text = `${parts.join(", ")}.`;
  const live = running.filter(hasValue).length;
  const silent = running.length - live;
  if (live) text += ` Running trials are drawn at their latest ${sweep.objective} (${live}).`;
  if (silent) text += ` ${plural(silent, "running trial")} ${silent === 1 ? "has" : "have"} not reported ${sweep.objective} yet.`;
  const noValue = trials.filter((t) => t.status !== "running" && t.status !== "queued" && !hasValue(t)).length;
  if (noValue) text += ` ${plural(noValue, "finished trial")} left no ${sweep.objective} (failed or cancelled early).`;
  return text;
}

/** Show the plot, or say why there is nothing to draw instead of empty axes. */
function plotOrSay(plotId, emptyId, message) {
  const plot = document.getElementById(plotId);
  const empty = document.getElementById(emptyId);
  empty.hidden = !message;
  empty.textContent = message || "";
  plot.hidden = Boolean(message);
  return !message;
}

function renderCharts(sweep, trials) {
  document.getElementById("sweep-partial").textContent = partialNote(sweep, trials);
  if (!window.Plotly) return;
  const scored = trials.filter(hasValue);
  const waiting = scored.length
    ? null
    : `No trial has reported ${sweep.objective} yet: the plots fill in as trials finish their first epoch.`;
  const layout = { margin: { l: 70, r: 40, t: 50, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)" };
  const config = { displaylogo: false, responsive: true };
  if (plotOrSay("sweep-parcoords", "parcoords-empty", waiting)) {
    const paths = Object.keys(sweep.space);
    const objective = scored.map((t) => t.objective);
    const dims = paths.map((path) => dimension(path, scored.map((t) => t.params[path])));
    dims.push({ label: sweep.objective, values: objective });
    window.Plotly.react(
      document.getElementById("sweep-parcoords"),
      [{
        type: "parcoords",
        line: {
          color: objective,
          colorscale: "Viridis",
          reversescale: sweep.direction === "minimize",
          showscale: true,
        },
        dimensions: dims,
      }],
      layout,
      config,
    );
  }
  if (!plotOrSay("sweep-scatter", "scatter-empty", waiting)) return;
  const byStatus = {};
  for (const t of scored) (byStatus[t.status] ||= []).push(t);
  const traces = Object.entries(byStatus).map(([status, items]) => ({
    type: "scatter",
    mode: "markers",
    name: status === "running" ? "running (latest)" : status,
    x: items.map((t) => t.trial_number),
    y: items.map((t) => t.objective),
    text: items.map((t) => Object.entries(t.params).map(([k, v]) => `${k}=${formatValue(v)}`).join("<br>")),
    hovertemplate: "trial %{x}: %{y}<br>%{text}<extra></extra>",
    marker: { size: 9, symbol: status === "running" ? "circle-open" : "circle" },
  }));
  window.Plotly.react(
    document.getElementById("sweep-scatter"),
    traces,
    { ...layout, xaxis: { title: { text: "trial" }, tickformat: "d", rangemode: "tozero", tick0: 0, dtick: trials.length > 20 ? undefined : 1 }, yaxis: { title: { text: sweep.objective } } },
    config,
  );
}

/** Importance as a bar list (the page's partial plotly.js bundle has no bar trace). */
function renderImportance(found) {
  const box = document.getElementById("sweep-importance");
  if (!found.items.length) {
    box.className = "muted";
    box.textContent = `Shown once ${found.needed} trials have succeeded with a ${found.objective} (${found.finished} so far).`;
    return;
  }
  box.className = "";
  box.replaceChildren(
    el("ol", { className: "importance-list", "aria-label": `Importance from ${found.finished} trials` },
      ...found.items.map((item) => {
        const percent = Math.round(item.importance * 1000) / 10;
        return el("li", { className: "importance-item", dataset: { param: item.param } },
          el("code", { text: item.param }),
          el("span", { className: "importance-track", role: "presentation" },
            el("span", { className: "importance-fill", style: `width: ${Math.max(0, Math.min(100, percent))}%; display: block` })),
          el("span", { className: "importance-value", text: `${percent}%` }));
      })),
    el("p", { className: "hint", text: `From ${plural(found.finished, "succeeded trial")}.` }),
  );
}

async function loadImportance(sweep) {
  const key = sweep.progress.succeeded;
  if (key === importanceKey) return;
  try {
    renderImportance(await api(`/sweeps/${sweepId}/importance`));
    importanceKey = key;
  } catch (err) {
    document.getElementById("sweep-importance").textContent = `Importance is unavailable: ${err.message}`;
  }
}

function renderTrials(sweep, trials) {
  const paths = Object.keys(sweep.space);
  document.getElementById("trials-head").replaceChildren(
    el("th", { scope: "col", text: "#" }),
    el("th", { scope: "col", text: "Status" }),
    ...paths.map((p) => el("th", { scope: "col", text: p })),
    el("th", { scope: "col", className: "num", text: sweep.objective }),
    el("th", { scope: "col", text: "Note" }),
  );
  document.getElementById("trials-body").replaceChildren(
    ...trials.map((t) =>
      el("tr", { dataset: { runId: String(t.run_id), status: t.status } },
        el("td", {}, el("a", { href: `/runs/${t.run_id}`, text: `#${t.trial_number}` })),
        el("td", {}, statusBadge(t.status)),
        ...paths.map((p) => el("td", { className: "num", text: formatValue(t.params[p]) })),
        el("td", { className: "num", text: t.objective === null ? "—" : formatMetric(t.objective) }),
        el("td", { className: "muted", text: t.failure_reason || "" }),
      ),
    ),
  );
}

async function load() {
  try {
    const [sweep, trials] = await Promise.all([
      api(`/sweeps/${sweepId}`),
      api(`/sweeps/${sweepId}/trials`),
    ]);
    renderHead(sweep);
    renderTrials(sweep, trials.items);
    renderCharts(sweep, trials.items);
    await loadImportance(sweep);
    showMessage(document.getElementById("sweep-error"), null);
    if (sweep.status !== "running" && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  } catch (err) {
    showMessage(document.getElementById("sweep-error"), err);
  }
}

document.getElementById("sweep-cancel").addEventListener("click", async () => {
  const box = document.getElementById("cancel-error");
  try {
    await api(`/sweeps/${sweepId}/cancel`, { method: "POST" });
    showMessage(box, null);
  } catch (err) {
    showMessage(box, err);
  }
  load();
});

// plotly.js loads with defer; modules run after deferred scripts, so it is there now
load();
timer = setInterval(() => {
  if (!document.hidden) load();
}, POLL_MS);
