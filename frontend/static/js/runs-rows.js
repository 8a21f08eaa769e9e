// Rows of the runs table. Everything a user wrote (names, tags) goes in as text.

import {
  el,
  formatDuration,
  formatMetric,
  parseTime,
  runDuration,
  statusBadge,
  timeElement,
} from "./format.js";

const minuteParts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
const minuteFormat = new Intl.DateTimeFormat(undefined, minuteParts);
const minuteYearFormat = new Intl.DateTimeFormat(undefined, { ...minuteParts, year: "numeric" });

/** The shared <time> (viewer's zone, UTC in its tooltip), to the minute: a table is narrow. */
function shortTime(iso) {
  const node = timeElement(iso);
  const date = parseTime(iso);
  if (date) {
    const format = date.getFullYear() === new Date().getFullYear() ? minuteFormat : minuteYearFormat;
    node.textContent = format.format(date);
  }
  return node;
}

function paramText(value) {
  if (value === null || value === undefined) return "—";
  return String(value); // a spec's own value, as written (0.001, 64, adam, true)
}

/** Text that may be long (an uploaded dataset's name, a username): wraps in a narrow column. */
function clipped(className, text) {
  return el("td", { className: `clip-cell ${className}` }, el("span", { className: "clip", text: text || "—" }));
}

/** One cell of a run for a column key (see runs-columns.js). */
function cell(key, run, { onTag }) {
  switch (key) {
    case "name":
      return el("td", { className: "name-cell" }, el("a", { href: `/runs/${run.id}`, text: run.name }));
    case "status":
      return el("td", {}, statusBadge(run.status));
    case "preset":
      return clipped("", run.preset);
    case "dataset":
      return clipped("", run.dataset);
    case "tags":
      return el(
        "td",
        { className: "tags-cell" },
        (run.tags || []).map((tag) =>
          el("button", {
            type: "button",
            className: "chip",
            text: tag,
            title: `Show the runs tagged ${tag}`,
            on: { click: () => onTag(tag) },
          }),
        ),
      );
    case "launcher":
      return clipped("launcher-cell", run.launched_by);
    case "started":
      return el(
        "td",
        { className: "time-cell" },
        run.started_at
          ? shortTime(run.started_at)
          : el("span", { className: "muted", title: "Not started yet: the time it was queued" }, shortTime(run.created_at)),
      );
    case "duration":
      return el("td", { className: "num", text: formatDuration(runDuration(run)) });
    default:
      break;
  }
  if (key.startsWith("metric:")) {
    return el("td", { className: "num", text: formatMetric((run.final_metrics || {})[key.slice(7)]) });
  }
  const value = (run.params || {})[key.slice(6)];
  if (typeof value !== "string") return el("td", { className: "num", text: paramText(value) });
  return el("td", { className: "param-cell" }, el("span", { title: value, text: value }));
}

/**
 * A new row with a cell per column key: its checkbox calls onSelect(runId, checked), a tag
 * chip onTag(tag).
 */
export function renderRow(run, columns, handlers) {
  const checkbox = el("input", {
    type: "checkbox",
    className: "select-run",
    on: { change: (event) => handlers.onSelect(Number(row.dataset.runId), event.target.checked) },
  });
  const row = el("tr", { dataset: { runId: String(run.id) } }, el("td", { className: "select-cell" }, checkbox));
  updateRow(row, run, columns, handlers);
  return row;
}

/** Refill a row in place; its checkbox cell stays, so focus and ticks survive a refresh. */
export function updateRow(row, run, columns, handlers) {
  const fingerprint = JSON.stringify([columns, run]);
  if (row.dataset.fingerprint === fingerprint) return;
  row.dataset.fingerprint = fingerprint;
  row.dataset.status = run.status;
  row.querySelector("input.select-run").setAttribute("aria-label", `Select run ${run.name}`);
  while (row.cells.length > 1) row.deleteCell(1);
  row.append(...columns.map((key) => cell(key, run, handlers)));
}
