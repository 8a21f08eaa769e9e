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

const METRIC_COLUMNS = ["loss", "accuracy", "val_loss", "val_accuracy"];
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

function cells(run, { onTag }) {
  const metrics = run.final_metrics || {};
  const tags = run.tags || [];
  const started = run.started_at
    ? shortTime(run.started_at)
    : el("span", { className: "muted", title: "Not started yet: the time it was queued" }, shortTime(run.created_at));
  return [
    el("td", { className: "name-cell" }, el("a", { href: `/runs/${run.id}`, text: run.name })),
    el("td", {}, statusBadge(run.status)),
    el("td", { className: "nowrap", text: run.preset || "—" }),
    el("td", { className: "nowrap", text: run.dataset || "—" }),
    el(
      "td",
      { className: "tags-cell" },
      tags.map((tag) =>
        el("button", {
          type: "button",
          className: "chip",
          text: tag,
          title: `Show the runs tagged ${tag}`,
          on: { click: () => onTag(tag) },
        }),
      ),
    ),
    el("td", { className: "nowrap launcher-cell", text: run.launched_by || "—" }),
    el("td", { className: "time-cell" }, started),
    el("td", { className: "num", text: formatDuration(runDuration(run)) }),
    ...METRIC_COLUMNS.map((key) => el("td", { className: "num", text: formatMetric(metrics[key]) })),
  ];
}

/** A new row: its checkbox calls onSelect(runId, checked), a tag chip onTag(tag). */
export function renderRow(run, handlers) {
  const checkbox = el("input", {
    type: "checkbox",
    className: "select-run",
    on: { change: (event) => handlers.onSelect(Number(row.dataset.runId), event.target.checked) },
  });
  const row = el("tr", { dataset: { runId: String(run.id) } }, el("td", { className: "select-cell" }, checkbox));
  updateRow(row, run, handlers);
  return row;
}

/** Refill a row in place; its checkbox cell stays, so focus and ticks survive a refresh. */
export function updateRow(row, run, handlers) {
  const fingerprint = JSON.stringify(run);
  if (row.dataset.fingerprint === fingerprint) return;
  row.dataset.fingerprint = fingerprint;
  row.dataset.status = run.status;
  row.querySelector("input.select-run").setAttribute("aria-label", `Select run ${run.name}`);
  while (row.cells.length > 1) row.deleteCell(1);
  row.append(...cells(run, handlers));
}
