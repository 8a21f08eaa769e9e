// Runs list: newest first, status filter in ?status=, "Load more", live status of active rows.

import { api, showMessage } from "./api.js";
import {
  ACTIVE_STATUSES,
  STATUSES,
  el,
  formatDuration,
  formatMetric,
  runDuration,
  statusBadge,
  timeElement,
} from "./format.js";

const PAGE_SIZE = 50;
const REFRESH_MS = 3000;
const METRIC_COLUMNS = ["loss", "accuracy", "val_loss", "val_accuracy"];

const table = document.getElementById("runs-table");
const body = document.getElementById("runs-body");
const filter = document.getElementById("status-filter");
const loadMore = document.getElementById("load-more");
const errorBox = document.getElementById("runs-error");
const empty = document.getElementById("runs-empty");
const emptyText = document.getElementById("runs-empty-text");
const count = document.getElementById("runs-count");

const state = {
  status: "",
  runs: new Map(), // id -> RunSummary
  order: [], // ids, newest first
  total: 0,
  nextCursor: null,
  generation: 0, // bumps on every filter change so stale answers are dropped
  refreshTimer: null,
  refreshFailed: false,
};

function statusFromUrl() {
  const status = new URLSearchParams(location.search).get("status") || "";
  return STATUSES.includes(status) ? status : "";
}

function query(extra = {}) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), ...extra });
  if (state.status) params.set("status", state.status);
  return `/runs?${params}`;
}

function renderRow(run) {
  const metrics = run.final_metrics || {};
  const row = el(
    "tr",
    { dataset: { runId: String(run.id), status: run.status } },
    el("td", { className: "name-cell" }, el("a", { href: `/runs/${run.id}`, text: run.name })),
    el("td", {}, statusBadge(run.status)),
    el("td", { text: run.preset || "—" }),
    el("td", { text: run.dataset || "—" }),
    el("td", {}, timeElement(run.created_at)),
    el("td", { className: "num", text: formatDuration(runDuration(run)) }),
    ...METRIC_COLUMNS.map((key) => el("td", { className: "num", text: formatMetric(metrics[key]) })),
  );
  return row;
}

function render() {
  const rows = state.order.map((id) => renderRow(state.runs.get(id)));
  body.replaceChildren(...rows);
  const none = state.order.length === 0;
  empty.hidden = !none;
  table.hidden = none;
  if (none) {
    emptyText.textContent = state.status
      ? `No ${state.status} runs. Choose "All" to see every run, or start a new one.`
      : "No runs yet. Launch your first training run from a preset.";
  }
  const shown = state.order.length;
  count.textContent = none
    ? ""
    : shown >= state.total
      ? `${shown} run${shown === 1 ? "" : "s"}`
      : `Showing ${shown} of ${state.total} runs`;
  loadMore.hidden = state.nextCursor === null || state.nextCursor === undefined;
}

function merge(items) {
  for (const run of items) {
    if (!state.runs.has(run.id)) state.order.push(run.id);
    state.runs.set(run.id, run);
  }
  state.order.sort((a, b) => b - a);
}

async function loadFirstPage() {
  const generation = ++state.generation;
  stopRefresh();
  showMessage(errorBox, null);
  table.setAttribute("aria-busy", "true"); // rows of the previous filter stay, dimmed
  try {
    const page = await api(query());
    if (generation !== state.generation) return;
    state.runs.clear();
    state.order = [];
    merge(page.items);
    state.total = page.total;
    state.nextCursor = page.next_cursor;
    render();
  } catch (err) {
    if (generation !== state.generation) return;
    body.replaceChildren();
    showMessage(errorBox, err, { prefix: "Could not load runs: " });
  }
  table.setAttribute("aria-busy", "false");
  scheduleRefresh();
}

async function loadNextPage() {
  const generation = state.generation;
  loadMore.disabled = true;
  try {
    const page = await api(query({ before_id: String(state.nextCursor) }));
    if (generation !== state.generation) return;
    merge(page.items);
    state.total = page.total;
    state.nextCursor = page.next_cursor;
    showMessage(errorBox, null);
    render();
  } catch (err) {
    showMessage(errorBox, err, { prefix: "Could not load more runs: " });
  } finally {
    loadMore.disabled = false;
  }
  scheduleRefresh();
}

function activeIds() {
  return state.order.filter((id) => ACTIVE_STATUSES.has(state.runs.get(id).status));
}

/** Re-read the first page (new runs, fresh statuses) and any active run beyond it. */
async function refresh() {
  const generation = state.generation;
  try {
    const page = await api(query());
    if (generation !== state.generation) return;
    const seen = new Set(page.items.map((run) => run.id));
    // New runs slot in by id; runs that left a filtered first page keep their row.
    merge(page.items);
    const stragglers = activeIds().filter((id) => !seen.has(id)).slice(0, 10);
    const runs = await Promise.all(stragglers.map((id) => api(`/runs/${id}`).catch(() => null)));
    if (generation !== state.generation) return;
    for (const run of runs) if (run) state.runs.set(run.id, run);
    state.total = page.total;
    state.refreshFailed = false;
    showMessage(errorBox, null);
    render();
  } catch (err) {
    if (generation !== state.generation) return;
    state.refreshFailed = true;
    showMessage(errorBox, err, { prefix: "Could not refresh runs (retrying): " });
  }
  scheduleRefresh();
}

function stopRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
}

/** Poll only while something on screen can still change (a queued or running run). */
function scheduleRefresh() {
  stopRefresh();
  if (activeIds().length === 0 && !state.refreshFailed) return;
  state.refreshTimer = setTimeout(() => {
    if (document.hidden) scheduleRefresh();
    else refresh();
  }, REFRESH_MS);
}

filter.addEventListener("change", () => {
  state.status = filter.value;
  const url = new URL(location.href);
  if (state.status) url.searchParams.set("status", state.status);
  else url.searchParams.delete("status");
  history.pushState({ status: state.status }, "", url);
  loadFirstPage();
});

window.addEventListener("popstate", () => {
  state.status = statusFromUrl();
  filter.value = state.status;
  loadFirstPage();
});

loadMore.addEventListener("click", loadNextPage);

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.refreshTimer !== null) {
    stopRefresh();
    refresh();
  }
});

state.status = statusFromUrl();
filter.value = state.status;
loadFirstPage();
