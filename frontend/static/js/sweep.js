// One sweep: progress, best trial, parameters against the objective (parcoords), the objective
// by trial, the trials table and Cancel. Polls every 3 s while the sweep runs.

import { api, showMessage } from "./api.js";
import { el, formatMetric, statusBadge, timeElement } from "./format.js";

const sweepId = Number(location.pathname.split("/").filter(Boolean).pop());
const POLL_MS = 3000;
let timer = null;

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

function renderCharts(sweep, trials) {
  if (!window.Plotly) return;
  const scored = trials.filter((t) => t.objective !== null && t.objective !== undefined);
  const paths = Object.keys(sweep.space);
  const parcoords = document.getElementById("sweep-parcoords");
  const layout = { margin: { l: 70, r: 40, t: 50, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)" };
  const config = { displaylogo: false, responsive: true };
  const objective = scored.map((t) => t.objective);
  const dims = paths.map((path) => dimension(path, scored.map((t) => t.params[path])));
  dims.push({ label: sweep.objective, values: objective });
  window.Plotly.react(
    parcoords,
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
  const byStatus = {};
  for (const t of scored) (byStatus[t.status] ||= []).push(t);
  const traces = Object.entries(byStatus).map(([status, items]) => ({
    type: "scatter",
    mode: "markers",
    name: status,
    x: items.map((t) => t.trial_number),
    y: items.map((t) => t.objective),
    text: items.map((t) => Object.entries(t.params).map(([k, v]) => `${k}=${formatValue(v)}`).join("<br>")),
    hovertemplate: "trial %{x}: %{y}<br>%{text}<extra></extra>",
    marker: { size: 9 },
  }));
  window.Plotly.react(
    document.getElementById("sweep-scatter"),
    traces,
    { ...layout, xaxis: { title: { text: "trial" }, tickformat: "d", rangemode: "tozero", tick0: 0, dtick: trials.length > 20 ? undefined : 1 }, yaxis: { title: { text: sweep.objective } } },
    config,
  );
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
