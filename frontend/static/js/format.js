// Formatting and DOM building shared by the pages. Everything user-supplied goes in as text.

export const ACTIVE_STATUSES = new Set(["queued", "running"]);
export const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "pruned"];

/**
 * Create an element. attrs: plain attributes plus `text` (textContent), `className`,
 * `dataset` (object), `style` (CSS text, applied through CSSOM: the CSP refuses style
 * attributes) and `on` (event name -> handler). children: nodes or strings (as text).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") node.style.cssText = String(value);
    else if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Parse an API timestamp; a string without a zone is UTC (the API's contract). */
export function parseTime(iso) {
  if (!iso) return null;
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(iso);
  const date = new Date(hasZone ? iso : `${iso}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

const timeParts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };
const thisYearFormat = new Intl.DateTimeFormat(undefined, timeParts);
const otherYearFormat = new Intl.DateTimeFormat(undefined, { ...timeParts, year: "numeric" });

/** Local date and time; the year only when it is not this year. */
export function formatTime(date) {
  const format = date.getFullYear() === new Date().getFullYear() ? thisYearFormat : otherYearFormat;
  return format.format(date);
}

/** A <time> in the viewer's time zone (the UTC value in its tooltip), or an em dash. */
export function timeElement(iso) {
  const date = parseTime(iso);
  if (!date) return el("span", { className: "muted", text: "—" });
  return el("time", {
    datetime: date.toISOString(),
    title: `${date.toISOString().replace(".000Z", "Z")} (UTC)`,
    text: formatTime(date),
  });
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 0) seconds = 0;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(rest).padStart(2, "0")} s`;
  return `${rest} s`;
}

/** Duration of a run: the server's, or the time since it started while it runs. */
export function runDuration(run, now = Date.now()) {
  if (run.duration_s !== null && run.duration_s !== undefined) return run.duration_s;
  const started = parseTime(run.started_at);
  if (!started) return null;
  const finished = parseTime(run.finished_at);
  return ((finished ? finished.getTime() : now) - started.getTime()) / 1000;
}

export function formatMetric(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(2);
  return value.toFixed(digits);
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatCount(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString();
}

/** A coloured status pill; `node` can be an existing badge to update in place. */
export function statusBadge(status, node = null) {
  const badge = node || el("span");
  const known = STATUSES.includes(status) ? status : "unknown";
  badge.className = `badge badge-${known}`;
  badge.textContent = status || "unknown";
  badge.dataset.status = status || "";
  return badge;
}
