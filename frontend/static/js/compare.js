// Compare 2-20 runs: curves overlaid per metric, final metrics, and the spec parameters that
// differ. The selection lives in the URL: /compare?runs=1,2,3.

import { ApiError, api, describeError, showMessage } from "./api.js";
import { el, formatDuration, formatMetric, runDuration, statusBadge } from "./format.js";
import { plotlyReady } from "./plotly-ready.js";
import { flatten } from "./schema.js";

const $ = (id) => document.getElementById(id);
const MIN_RUNS = 2;
const MAX_RUNS = 20;
const METRICS = ["loss", "val_loss", "accuracy", "val_accuracy", "lr"];
const FINAL = [
  ["loss", "min"],
  ["accuracy", "max"],
  ["val_loss", "min"],
  ["val_accuracy", "max"],
];
// 20 colours that stay apart from each other (Tableau 10, then its lighter half)
const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
  "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
];

let loadToken = 0;

/** Plotly reads a few HTML tags in its text; entities make a run's name show as typed. */
export function plotlyText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** "3, 1,3 ,x" -> {ids: [3, 1], bad: ["x"]}: in the order given, no repeats. */
export function parseIds(text) {
  const ids = [];
  const bad = [];
  for (const raw of String(text || "").split(/[\s,]+/)) {
    if (!raw) continue;
    if (/^\d+$/.test(raw) && Number(raw) > 0) {
      if (!ids.includes(Number(raw))) ids.push(Number(raw));
    } else {
      bad.push(raw);
    }
  }
  return { ids, bad };
}

/** Put the selection in the address (commas left readable: the link is meant to be shared). */
function setUrl(ids, { push = true } = {}) {
  const url = new URL(location.href);
  url.search = ids.length ? `?runs=${ids.map((id) => encodeURIComponent(id)).join(",")}` : "";
  if (url.href === location.href) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function showEmpty(text) {
  $("compare-content").hidden = true;
  $("compare-empty").hidden = false;
  $("compare-empty-text").textContent = text;
}

const legendName = (run) => `${run.name} #${run.id}`;

// ---- runs ---------------------------------------------------------------------------------------

function renderChips(runs) {
  $("runs-count").textContent = `(${runs.length})`;
  $("run-chips").replaceChildren(
    ...runs.map((run, index) =>
      el(
        "li",
        { className: "run-chip", dataset: { runId: String(run.id) } },
        el("span", { className: "swatch", style: `background:${PALETTE[index % PALETTE.length]}`, "aria-hidden": "true" }),
        el("a", { href: `/runs/${run.id}`, text: run.name }),
        el("span", { className: "muted", text: `#${run.id}` }),
        statusBadge(run.status),
        el("button", {
          type: "button",
          className: "icon-button",
          title: "Leave this run out",
          "aria-label": `Leave run ${run.id} out`,
          text: "✕",
          on: {
            click: () => {
              const ids = runs.map((r) => r.id).filter((id) => id !== run.id);
              setUrl(ids);
              load();
            },
          },
        }),
      ),
    ),
  );
}

// ---- curves -------------------------------------------------------------------------------------

function drawPlots(runs, metricsByRun) {
  for (const metric of METRICS) {
    const div = $(`cmp-${metric}`);
    const traces = runs.map((run, index) => {
      const series = (metricsByRun.get(run.id) || {})[metric] || { steps: [], values: [] };
      return {
        type: "scatter",
        mode: series.steps.length > 60 ? "lines" : "lines+markers",
        uid: `run-${run.id}`,
        meta: run.id,
        name: plotlyText(legendName(run)),
        x: series.steps,
        y: series.values,
        line: { color: PALETTE[index % PALETTE.length], width: 2 },
        marker: { size: 5 },
        hovertemplate: `epoch %{x}: %{y:${metric === "lr" ? ".3~e" : ".4f"}}<extra>${plotlyText(legendName(run))}</extra>`,
      };
    });
    const hasData = traces.some((trace) => trace.x.length);
    const layout = {
      margin: { l: 60, r: 16, t: 16, b: 40 },
      hovermode: "closest",
      showlegend: true,
      legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
      xaxis: { title: { text: "epoch" }, zeroline: false, visible: hasData, dtick: undefined },
      yaxis: {
        title: { text: metric },
        zeroline: false,
        visible: hasData,
        type: metric === "lr" ? "log" : "linear",
        exponentformat: metric === "lr" ? "power" : "none",
      },
      annotations: hasData
        ? []
        : [{ text: `No run recorded ${metric}`, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { size: 14, color: "#6b7280" } }],
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
    };
    Plotly.react(div, traces, layout, { responsive: true, displaylogo: false });
  }
}

// ---- system metrics (sys/*) ---------------------------------------------------------------------

const SYSTEM_LABELS = { cpu_percent: "CPU %", rss_mb: "memory (RSS, MB)", util: "utilisation %", mem_used_mb: "memory used (MB)", power_w: "power (W)" };

/** "sys/gpu0_util" -> "GPU 0 utilisation %"; "sys/cpu_percent" -> "CPU %". */
export function systemLabel(key) {
  const name = key.replace(/^sys\//, "");
  const gpu = /^gpu(\d+)_(.+)$/.exec(name);
  if (gpu) return `GPU ${gpu[1]} ${SYSTEM_LABELS[gpu[2]] || gpu[2]}`;
  return SYSTEM_LABELS[name] || name;
}

/** The sys/* keys any of the runs recorded, CPU and memory first, then GPUs in order. */
async function systemKeys(runs) {
  const answers = await Promise.all(
    runs.map((run) => api(`/runs/${run.id}/metrics/keys`).then((a) => a.keys).catch(() => [])),
  );
  const keys = [...new Set(answers.flat().filter((key) => key.startsWith("sys/")))];
  const rank = (key) => (key === "sys/cpu_percent" ? 0 : key === "sys/rss_mb" ? 1 : 2);
  return keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b, undefined, { numeric: true }));
}

async function drawSystem(runs, key, token) {
  const query = new URLSearchParams({ keys: key, max_points: "1000" });
  const answers = await Promise.all(
    runs.map((run) => api(`/runs/${run.id}/metrics?${query}`).then((a) => a.series[key]).catch(() => null)),
  );
  if (token !== loadToken) return;
  const traces = runs.map((run, index) => {
    const series = answers[index] || { steps: [], values: [] };
    return {
      type: "scatter",
      mode: series.steps.length > 60 ? "lines" : "lines+markers",
      uid: `run-${run.id}`,
      name: plotlyText(legendName(run)),
      x: series.steps,
      y: series.values,
      line: { color: PALETTE[index % PALETTE.length], width: 2 },
      marker: { size: 5 },
      hovertemplate: `%{x} s: %{y:.1f}<extra>${plotlyText(legendName(run))}</extra>`,
    };
  });
  const layout = {
    margin: { l: 60, r: 16, t: 16, b: 40 },
    hovermode: "closest",
    showlegend: true,
    legend: { orientation: "h", x: 0, y: -0.25, yanchor: "top", font: { size: 11 } },
    xaxis: { title: { text: "seconds" }, zeroline: false },
    yaxis: { title: { text: systemLabel(key) }, zeroline: false, rangemode: "tozero" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
  };
  Plotly.react($("cmp-sys"), traces, layout, { responsive: true, displaylogo: false });
}

async function loadSystem(runs, token) {
  const keys = await systemKeys(runs);
  if (token !== loadToken) return;
  const select = $("cmp-sys-key");
  const previous = select.value;
  select.replaceChildren(...keys.map((key) => el("option", { value: key, text: systemLabel(key) })));
  select.disabled = keys.length === 0;
  $("cmp-sys-none").hidden = keys.length > 0;
  $("cmp-sys").hidden = keys.length === 0;
  if (!keys.length) return;
  if (keys.includes(previous)) select.value = previous;
  select.onchange = () => drawSystem(runs, select.value, loadToken);
  await drawSystem(runs, select.value, token);
}

// ---- tables -------------------------------------------------------------------------------------

function renderFinal(runs, metricsByRun) {
  const best = {};
  for (const [key, direction] of FINAL) {
    const values = runs.map((run) => (run.final_metrics || {})[key]).filter((v) => typeof v === "number" && Number.isFinite(v));
    if (values.length > 1) best[key] = direction === "min" ? Math.min(...values) : Math.max(...values);
  }
  $("final-table").tBodies[0].replaceChildren(
    ...runs.map((run, index) => {
      const epochs = ((metricsByRun.get(run.id) || {}).loss || { steps: [] }).steps.length;
      return el(
        "tr",
        { dataset: { runId: String(run.id) } },
        el(
          "th",
          { scope: "row", className: "name-cell" },
          el("span", { className: "swatch", style: `background:${PALETTE[index % PALETTE.length]}`, "aria-hidden": "true" }),
          " ",
          el("a", { href: `/runs/${run.id}`, text: run.name }),
          el("span", { className: "muted", text: ` #${run.id}` }),
          forkNote(run),
        ),
        el("td", {}, statusBadge(run.status)),
        el("td", { className: "num", text: epochs || "—" }),
        el("td", { className: "num", text: formatDuration(runDuration(run)) }),
        ...FINAL.map(([key]) => {
          const value = (run.final_metrics || {})[key];
          const isBest = best[key] !== undefined && value === best[key];
          return el("td", { className: `num${isBest ? " best" : ""}`, title: isBest ? "best of these runs" : null, text: formatMetric(value) });
        }),
      );
    }),
  );
}

/** "forked from #12 at epoch 3" under a fork's name (its curves up to there are #12's). */
function forkNote(run) {
  const from = run.forked_from;
  if (!from) return null;
  return el(
    "span",
    { className: "muted fork-note", dataset: { forkedFrom: String(from.run_id) } },
    " · forked from ",
    el("a", { href: `/runs/${from.run_id}`, text: `#${from.run_id}` }),
    ` at epoch ${from.epoch}`,
  );
}

const forkText = (run) => (run.forked_from ? `#${run.forked_from.run_id} at epoch ${run.forked_from.epoch}` : null);

const cellText = (value) => (value === undefined ? "—" : typeof value === "string" ? value : JSON.stringify(value));

function renderParams(runs) {
  const flat = runs.map((run) => flatten({ preset: run.preset ?? null, forked_from: forkText(run), ...run.spec }));
  const keys = [];
  const seen = new Set();
  for (const map of flat) {
    for (const key of map.keys()) {
      if (!seen.has(key)) {
        seen.add(key);
        keys.push(key);
      }
    }
  }
  const table = $("params-table");
  table.tHead.replaceChildren(
    el(
      "tr",
      {},
      el("th", { scope: "col", text: "Parameter" }),
      ...runs.map((run, index) =>
        el("th", { scope: "col", className: "name-cell" }, el("span", { className: "swatch", style: `background:${PALETTE[index % PALETTE.length]}`, "aria-hidden": "true" }), " ", el("span", { text: run.name }), el("span", { className: "muted", text: ` #${run.id}` })),
      ),
    ),
  );
  let differing = 0;
  const rows = keys.map((key) => {
    const values = flat.map((map) => (map.has(key) ? map.get(key) : undefined));
    const texts = values.map(cellText);
    const differs = texts.some((text) => text !== texts[0]);
    if (differs) differing += 1;
    return el(
      "tr",
      { className: differs ? "differs" : null, dataset: { param: key, differs: String(differs) } },
      el("th", { scope: "row", className: "mono param-name", text: key }),
      ...texts.map((text, index) => el("td", { className: `mono${differs && text !== texts[0] ? " changed" : ""}${values[index] === undefined ? " muted" : ""}`, text })),
    );
  });
  table.tBodies[0].replaceChildren(...rows);
  $("params-summary").textContent = `· ${differing} of ${keys.length} differ`;
  $("params-same").hidden = differing > 0;
  applyDiffFilter();
}

function applyDiffFilter() {
  const only = $("only-diff").checked;
  for (const row of $("params-table").tBodies[0].rows) row.hidden = only && row.dataset.differs !== "true";
}

// ---- loading ------------------------------------------------------------------------------------

async function fetchRun(id) {
  try {
    return { id, run: await api(`/runs/${id}`) };
  } catch (err) {
    return { id, error: err };
  }
}

async function load() {
  const token = ++loadToken;
  const { ids, bad } = parseIds(new URLSearchParams(location.search).get("runs"));
  $("runs-input").value = ids.join(", ");
  showMessage($("compare-error"), null);
  const problems = [];
  if (bad.length) problems.push(`Not run ids: ${bad.map((b) => JSON.stringify(b)).join(", ")}.`);
  if (ids.length > MAX_RUNS) {
    showMessage($("compare-error"), `${problems.join(" ")} Compare at most ${MAX_RUNS} runs at a time; you gave ${ids.length}.`.trim());
    showEmpty(`Too many runs: pick at most ${MAX_RUNS}.`);
    return;
  }
  if (!ids.length) {
    if (problems.length) showMessage($("compare-error"), problems.join(" "));
    showEmpty("Pick 2 to 20 runs to compare.");
    return;
  }

  $("compare-content").setAttribute("aria-busy", "true");
  const answers = await Promise.all(ids.map(fetchRun));
  if (token !== loadToken) return;
  const runs = answers.filter((a) => a.run).map((a) => a.run);
  const missing = answers.filter((a) => a.error instanceof ApiError && a.error.status === 404).map((a) => a.id);
  const failed = answers.filter((a) => a.error && !(a.error instanceof ApiError && a.error.status === 404));
  if (missing.length) problems.push(`${missing.length === 1 ? "Run" : "Runs"} ${missing.join(", ")} ${missing.length === 1 ? "does" : "do"} not exist.`);
  for (const { id, error } of failed) problems.push(`Could not load run ${id}: ${describeError(error)}`);
  if (runs.length < MIN_RUNS) {
    problems.push(runs.length ? "Add at least one more run to compare." : "");
  }
  if (problems.filter(Boolean).length) showMessage($("compare-error"), problems.filter(Boolean).join(" "));
  if (!runs.length) {
    showEmpty("None of these runs could be shown. Pick 2 to 20 runs to compare.");
    return;
  }
  document.title = `Compare ${runs.length} runs · Fitboard`;
  $("compare-empty").hidden = true;
  $("compare-content").hidden = false;
  renderChips(runs);
  renderParams(runs);

  const metricsByRun = new Map();
  const query = new URLSearchParams({ keys: METRICS.join(","), max_points: "2000" });
  const metricAnswers = await Promise.all(
    runs.map((run) =>
      api(`/runs/${run.id}/metrics?${query}`)
        .then((answer) => ({ id: run.id, series: answer.series }))
        .catch((error) => ({ id: run.id, error })),
    ),
  );
  if (token !== loadToken) return;
  const metricProblems = [];
  for (const answer of metricAnswers) {
    if (answer.error) metricProblems.push(`run ${answer.id}: ${describeError(answer.error)}`);
    else metricsByRun.set(answer.id, answer.series);
  }
  showMessage($("plots-error"), metricProblems.length ? `Could not load the curves of ${metricProblems.join("; ")}` : null);
  renderFinal(runs, metricsByRun);
  const plotly = await plotlyReady;
  if (token !== loadToken) return;
  if (plotly) {
    drawPlots(runs, metricsByRun);
    await loadSystem(runs, token);
    if (token !== loadToken) return;
  } else showMessage($("plots-error"), "Charts are unavailable: plotly.js did not load.");
  $("compare-content").setAttribute("aria-busy", "false");
}

$("compare-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { ids, bad } = parseIds($("runs-input").value);
  setUrl([...ids, ...bad]);
  load();
});
$("only-diff").addEventListener("change", applyDiffFilter);
window.addEventListener("popstate", () => load());

// plotly.js is an async script: load() draws once it has run (plotly-ready.js)
load().catch((err) => showMessage($("compare-error"), describeError(err)));
