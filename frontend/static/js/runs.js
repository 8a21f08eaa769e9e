// Runs history: search, filters, sort and page on the server; the URL holds the whole view.
// Select runs to compare, cancel, delete or tag. Rows of queued/running runs stay live.
// The columns are each person's own choice (runs-columns.js), kept on the server.

import { api, describeError, showMessage } from "./api.js";
import { ACTIVE_STATUSES, el, formatCount } from "./format.js";
import {
  DEFAULT_COLUMNS,
  describe,
  loadColumns,
  normalize,
  paramPaths,
  pathLabel,
  renderChooser,
  saveColumns,
} from "./runs-columns.js";
import { renderRow, updateRow } from "./runs-rows.js";
import { FILTERS, PAGE_SIZE, apiQuery, blankView, hasFilters, urlOf, viewFromUrl } from "./runs-view.js";

const REFRESH_MS = 3000;
const SEARCH_DEBOUNCE_MS = 300;
const COMPARE_MAX = 20;

const $ = (id) => document.getElementById(id);
const table = $("runs-table");
const body = $("runs-body");
const errorBox = $("runs-error");
const notice = $("runs-notice");
const empty = $("runs-empty");
const count = $("runs-count");
const search = $("runs-search");
const controls = {
  status: $("status-filter"),
  dataset: $("dataset-filter"),
  preset: $("preset-filter"),
  tag: $("tag-filter"),
  launcher: $("launcher-filter"),
  from: $("created-from"),
  to: $("created-to"),
};
const selectPage = $("select-page");
const buttons = {
  compare: $("compare-selected"),
  tag: $("tag-selected"),
  cancel: $("cancel-selected"),
  remove: $("delete-selected"),
  prev: $("prev-page"),
  next: $("next-page"),
};

const chooser = {
  menu: $("columns-menu"),
  body: $("columns-body"),
  filter: $("columns-filter"),
  reset: $("columns-reset"),
};

const state = {
  view: blankView(),
  columns: [...DEFAULT_COLUMNS], // column keys shown, in order (runs-columns.js)
  available: null, // {metrics, params} the runs have, once the chooser has asked
  saving: Promise.resolve(), // the last save of the columns, queued behind the ones before
  page: null, // the last RunPage shown
  selected: new Map(), // run id -> RunSummary, for the rows ticked on this page
  generation: 0, // bumps on every load, so a stale answer is dropped
  refreshTimer: null,
  refreshFailed: false,
  searchTimer: null,
  typing: false, // a search being typed replaces its own history entry
};

// ---- controls ----

/** Make sure a select can show `value` (a shared link may name one not in the list). */
function ensureOption(select, value, label = value) {
  if (!value || [...select.options].some((o) => o.value === value)) return;
  select.append(el("option", { value, text: label }));
}

function syncControls() {
  const { view } = state;
  if (document.activeElement !== search) search.value = view.q;
  ensureOption(controls.status, view.status, view.status.split(",").join(", "));
  ensureOption(controls.launcher, view.launcher);
  for (const key of ["status", "dataset", "preset", "tag", "launcher", "from", "to"]) controls[key].value = view[key];
  $("clear-filters").hidden = !hasFilters(view);
  for (const th of table.querySelectorAll("th[data-sort]")) {
    const key = th.dataset.sort;
    const direction = view.sort === key ? "ascending" : view.sort === `-${key}` ? "descending" : null;
    if (direction) th.setAttribute("aria-sort", direction);
    else th.removeAttribute("aria-sort");
  }
}

function fillSelect(select, facets) {
  const current = select.value;
  const options = facets.map((f) => el("option", { value: f.value, text: `${f.value} (${formatCount(f.count)})` }));
  select.replaceChildren(el("option", { value: "", text: "All" }), ...options);
  ensureOption(select, current);
  select.value = current;
}

async function loadFacets() {
  try {
    const facets = await api("/runs/facets");
    fillSelect(controls.dataset, facets.datasets);
    fillSelect(controls.preset, facets.presets);
    fillSelect(controls.tag, facets.tags);
    fillSelect(controls.launcher, facets.launchers || []);
    $("known-tags").replaceChildren(...facets.tags.map((f) => el("option", { value: f.value })));
    syncControls();
  } catch (err) {
    showMessage(errorBox, err, { prefix: "Could not load the filter choices: " });
  }
}

/** Go to a new view: it becomes a history entry (or replaces the current one) and loads. */
function navigate(changes, { replace = false } = {}) {
  const view = { ...state.view, ...changes };
  if (!("offset" in changes)) view.offset = 0; // any new query starts at its first page
  state.view = view;
  const url = urlOf(view);
  if (url !== location.pathname + location.search) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }
  clearSelection();
  showMessage(notice, null);
  syncControls();
  load();
}

// ---- loading and rendering ----

async function load({ quiet = false } = {}) {
  const generation = ++state.generation;
  stopRefresh();
  if (!quiet) table.setAttribute("aria-busy", "true"); // the old rows stay, dimmed
  try {
    const page = await api(apiQuery(state.view, paramPaths(state.columns)));
    if (generation !== state.generation) return;
    if (page.items.length === 0 && page.total > 0 && state.view.offset > 0) {
      // past the end (runs were deleted, or an old link): show the last page instead
      const offset = Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE;
      state.view = { ...state.view, offset };
      history.replaceState(null, "", urlOf(state.view));
      load();
      return;
    }
    state.page = page;
    state.refreshFailed = false;
    showMessage(errorBox, null);
    render();
  } catch (err) {
    if (generation !== state.generation) return;
    state.refreshFailed = quiet;
    if (!quiet) {
      state.page = null;
      render();
    }
    const prefix = quiet ? "Could not refresh runs (retrying): " : "Could not load runs: ";
    showMessage(errorBox, err, { prefix });
  }
  table.setAttribute("aria-busy", "false");
  scheduleRefresh();
}

function render() {
  const items = state.page ? state.page.items : [];
  const existing = new Map([...body.querySelectorAll("tr[data-run-id]")].map((r) => [Number(r.dataset.runId), r]));
  const handlers = { onSelect: toggle, onTag: (tag) => navigate({ tag }) };
  const rows = items.map((run) => {
    const row = existing.get(run.id);
    if (!row) return renderRow(run, state.columns, handlers);
    updateRow(row, run, state.columns, handlers);
    return row;
  });
  const sameOrder = rows.length === body.children.length && rows.every((row, i) => body.children[i] === row);
  if (!sameOrder) body.replaceChildren(...rows);

  // ticks of runs no longer on the page are dropped; the others get fresh data
  const visible = new Map(items.map((run) => [run.id, run]));
  for (const id of [...state.selected.keys()]) {
    if (visible.has(id)) state.selected.set(id, visible.get(id));
    else state.selected.delete(id);
  }
  for (const row of rows) row.querySelector("input.select-run").checked = state.selected.has(Number(row.dataset.runId));

  const none = items.length === 0 && state.page !== null;
  empty.hidden = !none;
  table.hidden = none;
  if (none) {
    const filtered = hasFilters(state.view);
    $("runs-empty-text").textContent = filtered
      ? "No runs match this search and these filters. Change or clear them to see more."
      : "No runs yet. Launch your first training run from a preset.";
    $("runs-empty-new").hidden = filtered;
    $("runs-empty-clear").hidden = !filtered;
  }
  renderPager();
  renderSelection();
}

function renderPager() {
  const page = state.page;
  const { offset } = state.view;
  const shown = page ? page.items.length : 0;
  count.textContent = page && shown > 0 ? `${formatCount(offset + 1)}–${formatCount(offset + shown)} of ${formatCount(page.total)}` : "";
  buttons.prev.disabled = !page || offset === 0;
  buttons.next.disabled = !page || offset + shown >= page.total;
}

// ---- selection and actions ----

/** Untick everything now, on screen too (the next rows may take a moment to arrive). */
function clearSelection() {
  state.selected.clear();
  for (const box of body.querySelectorAll("input.select-run")) box.checked = false;
  renderSelection();
}

function toggle(runId, checked) {
  const run = state.page && state.page.items.find((r) => r.id === runId);
  if (checked && run) state.selected.set(runId, run);
  else state.selected.delete(runId);
  renderSelection();
}

function renderSelection() {
  const runs = [...state.selected.values()];
  const n = runs.length;
  const onPage = state.page ? state.page.items.length : 0;
  $("selection-count").textContent = n === 0 ? "Select runs to compare, cancel, delete or tag them." : `${n} selected`;
  buttons.compare.disabled = n < 2 || n > COMPARE_MAX;
  buttons.compare.title = n > COMPARE_MAX ? `Compare up to ${COMPARE_MAX} runs` : "Compare 2 or more runs";
  buttons.tag.disabled = n === 0;
  buttons.cancel.disabled = !runs.some((r) => ACTIVE_STATUSES.has(r.status));
  buttons.remove.disabled = !runs.some((r) => !ACTIVE_STATUSES.has(r.status));
  selectPage.checked = n > 0 && n === onPage;
  selectPage.indeterminate = n > 0 && n < onPage;
}

/** Run one API call per run; resolves to the errors, each as "name: reason". */
async function forEachRun(runs, call) {
  const results = await Promise.allSettled(runs.map(call));
  return results
    .map((result, i) => (result.status === "rejected" ? `${runs[i].name}: ${describeError(result.reason)}` : null))
    .filter(Boolean);
}

/** Say what an action did (when it did anything) and list what failed. */
function report(done, text, errors) {
  showMessage(notice, done > 0 ? text : null);
  showMessage(errorBox, errors.length ? errors.join("\n") : null);
}

/** Open a dialog; resolves to its return value ("" when dismissed with Escape). */
function ask(dialog) {
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
    dialog.showModal();
  });
}

async function cancelSelected() {
  const runs = [...state.selected.values()].filter((r) => ACTIVE_STATUSES.has(r.status));
  buttons.cancel.disabled = true;
  const errors = await forEachRun(runs, (run) => api(`/runs/${run.id}/cancel`, { method: "POST" }));
  const n = runs.length - errors.length;
  report(n, `Asked ${n} run${n === 1 ? "" : "s"} to stop.`, errors);
  load();
}

async function deleteSelected() {
  const all = [...state.selected.values()];
  const runs = all.filter((r) => !ACTIVE_STATUSES.has(r.status));
  const skipped = all.length - runs.length;
  $("confirm-title").textContent = `Delete ${runs.length} run${runs.length === 1 ? "" : "s"}?`;
  $("confirm-text").textContent =
    "Their metrics, events and artifacts (saved models) are deleted too. This cannot be undone." +
    (skipped ? ` ${skipped} queued or running run${skipped === 1 ? " is" : "s are"} kept: cancel ${skipped === 1 ? "it" : "them"} first.` : "");
  $("confirm-list").replaceChildren(...runs.slice(0, 10).map((r) => el("li", { text: r.name })));
  if (runs.length > 10) $("confirm-list").append(el("li", { className: "muted", text: `and ${runs.length - 10} more` }));
  if ((await ask($("confirm-dialog"))) !== "confirm") return;
  const errors = await forEachRun(runs, (run) => api(`/runs/${run.id}`, { method: "DELETE" }));
  const n = runs.length - errors.length;
  report(n, `Deleted ${n} run${n === 1 ? "" : "s"}.`, errors);
  clearSelection();
  loadFacets();
  load();
}

async function tagSelected() {
  const runs = [...state.selected.values()];
  const input = $("tag-input");
  input.value = "";
  $("tag-text").textContent = `Adds it to ${runs.length} selected run${runs.length === 1 ? "" : "s"}.`;
  if ((await ask($("tag-dialog"))) !== "add") return;
  const tag = input.value.trim();
  if (!tag) return;
  const errors = await forEachRun(runs, (run) =>
    api(`/runs/${run.id}`, { method: "PATCH", body: { tags: [...new Set([...(run.tags || []), tag])] } }),
  );
  const n = runs.length - errors.length;
  report(n, `Tagged ${n} run${n === 1 ? "" : "s"} "${tag}".`, errors);
  loadFacets();
  load();
}

function compareSelected() {
  const ids = [...state.selected.keys()];
  location.href = `/compare?runs=${ids.join(",")}`;
}

// ---- live refresh: only while something on screen can still change ----

function stopRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
}

function scheduleRefresh() {
  stopRefresh();
  const active = state.page && state.page.items.some((run) => ACTIVE_STATUSES.has(run.status));
  if (!active && !state.refreshFailed) return;
  state.refreshTimer = setTimeout(() => {
    if (document.hidden) scheduleRefresh();
    else load({ quiet: true });
  }, REFRESH_MS);
}

// ---- columns: the header, and the chooser ----

function renderHead() {
  const head = table.tHead.rows[0];
  const cells = state.columns.map((key) => {
    const column = describe(key);
    const th = el("th", { scope: "col", className: column.num ? "num" : column.param ? "param-col" : "" });
    if (key === "name") th.classList.add("name-col");
    th.dataset.column = key;
    const label = column.param
      ? el("span", { className: "mono" }, pathLabel(column.name))
      : el("span", { text: column.label });
    if (!column.sort) {
      th.append(label);
      return th;
    }
    th.dataset.sort = column.sort;
    if (column.first) th.dataset.first = column.first;
    const title = `Sort by ${column.param ? column.name : column.label.toLowerCase()}`;
    const button = el("button", { type: "button", className: "sort-button", title }, label);
    button.addEventListener("click", () => navigate({ sort: sortFor(th) }));
    th.append(button);
    return th;
  });
  head.replaceChildren(head.cells[0], ...cells);
  const placeholder = body.querySelector(".placeholder-row td");
  if (placeholder) placeholder.colSpan = state.columns.length + 1;
}

function renderColumnsMenu() {
  if (!chooser.menu.open) return;
  renderChooser(chooser.body, {
    keys: state.columns,
    available: state.available,
    filter: chooser.filter.value,
    onChange: setColumns,
  });
}

async function loadAvailable() {
  try {
    state.available = await api("/runs/columns");
  } catch (err) {
    state.available = { metrics: [], params: [] };
    showMessage(errorBox, err, { prefix: "Could not load the metrics and parameters to choose from: " });
  }
  renderColumnsMenu();
}

/** Show these columns now and remember them for this person. */
function setColumns(keys) {
  const before = paramPaths(state.columns).join(",");
  state.columns = normalize(keys);
  renderHead();
  renderColumnsMenu();
  syncControls();
  // a new parameter's values come with the rows; anything else is on the page already
  if (paramPaths(state.columns).join(",") !== before) load();
  else render();
  // one save at a time, each sending the columns as they are then: the last edit wins
  state.saving = state.saving
    .then(() => saveColumns(state.columns))
    .catch((err) => showMessage(errorBox, err, { prefix: "Could not save your columns: " }));
}

chooser.menu.addEventListener("toggle", () => {
  if (!chooser.menu.open) return;
  renderColumnsMenu();
  loadAvailable(); // fresh each time: new runs bring new metrics
});
chooser.filter.addEventListener("input", renderColumnsMenu);
chooser.reset.addEventListener("click", () => setColumns(DEFAULT_COLUMNS));
document.addEventListener("click", (event) => {
  // composedPath, not contains: a clicked button may be re-rendered away by now
  if (chooser.menu.open && !event.composedPath().includes(chooser.menu)) chooser.menu.open = false;
});
chooser.menu.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && chooser.menu.open) {
    chooser.menu.open = false;
    chooser.menu.querySelector("summary").focus();
  }
});

// ---- wiring ----

function sortFor(th) {
  const key = th.dataset.sort;
  const { sort } = state.view;
  if (sort === key) return `-${key}`;
  if (sort === `-${key}`) return key;
  return th.dataset.first === "desc" ? `-${key}` : key;
}

search.addEventListener("input", () => {
  clearTimeout(state.searchTimer);
  state.searchTimer = setTimeout(() => {
    const q = search.value.trim();
    if (q === state.view.q) return;
    navigate({ q }, { replace: state.typing });
    state.typing = true;
  }, SEARCH_DEBOUNCE_MS);
});
search.addEventListener("blur", () => (state.typing = false));
$("runs-filters").addEventListener("submit", (event) => event.preventDefault());

for (const [key, control] of Object.entries(controls)) {
  control.addEventListener("change", () => {
    state.typing = false;
    navigate({ [key]: control.value });
  });
}

function clearFilters() {
  state.typing = false;
  search.value = "";
  navigate(Object.fromEntries(FILTERS.map((key) => [key, ""])));
}
$("clear-filters").addEventListener("click", clearFilters);
$("empty-clear-filters").addEventListener("click", clearFilters);

buttons.prev.addEventListener("click", () => navigate({ offset: Math.max(0, state.view.offset - PAGE_SIZE) }));
buttons.next.addEventListener("click", () => navigate({ offset: state.view.offset + PAGE_SIZE }));
buttons.compare.addEventListener("click", compareSelected);
buttons.cancel.addEventListener("click", cancelSelected);
buttons.remove.addEventListener("click", deleteSelected);
buttons.tag.addEventListener("click", tagSelected);

selectPage.addEventListener("change", () => {
  state.selected.clear();
  if (selectPage.checked && state.page) for (const run of state.page.items) state.selected.set(run.id, run);
  for (const box of body.querySelectorAll("input.select-run")) box.checked = selectPage.checked;
  renderSelection();
});

for (const dialog of [$("confirm-dialog"), $("tag-dialog")]) {
  for (const button of dialog.querySelectorAll("button[value=cancel]")) {
    button.addEventListener("click", () => dialog.close("cancel"));
  }
}

window.addEventListener("popstate", () => {
  clearTimeout(state.searchTimer); // a search still being typed belongs to the view left
  state.view = viewFromUrl();
  state.typing = false;
  clearSelection();
  syncControls();
  load();
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.refreshTimer !== null) load({ quiet: true });
});

state.view = viewFromUrl();
try {
  state.columns = await loadColumns();
} catch (err) {
  showMessage(errorBox, err, { prefix: "Could not load your columns (showing the default ones): " });
}
renderHead();
syncControls();
loadFacets();
load();
