// The runs table's columns: the built-in ones, any final metric (metric:<key>) and any spec
// parameter (param:<path>), the same keys the list sorts by. Each person chooses and orders
// them; the choice is kept on the server (GET/PUT /auth/me/preferences). Name stays first.

import { api } from "./api.js";
import { el } from "./format.js";

/** The table's own columns; `sort` is the list's sort key, `first: "desc"` its first click. */
export const BUILTIN = {
  name: { label: "Name", sort: "name" },
  status: { label: "Status", sort: "status" },
  preset: { label: "Preset", sort: "preset" },
  dataset: { label: "Dataset", sort: "dataset" },
  tags: { label: "Tags" },
  launcher: { label: "Launched by" },
  started: { label: "Started", sort: "created_at", first: "desc" },
  duration: { label: "Duration", sort: "duration", first: "desc", num: true },
};
const DEFAULT_METRICS = ["loss", "accuracy", "val_loss", "val_accuracy"];
export const DEFAULT_COLUMNS = [...Object.keys(BUILTIN), ...DEFAULT_METRICS.map((key) => `metric:${key}`)];
// as the API allows (backend/users/schemas.py)
const MAX_COLUMNS = 60;
const METRIC_KEY = /^[A-Za-z0-9_./-]{1,200}$/;
const PARAM_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+))*$/;
// metrics where bigger is better: their first click sorts descending
const HIGHER_IS_BETTER = /acc|auc|precision|recall|f1|iou|r2|top_k/i;

function humanize(key) {
  const words = key.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** What a column key means: label, sort key, whether it is a number; null if not a column. */
export function describe(key) {
  if (Object.hasOwn(BUILTIN, key)) return { key, kind: "builtin", ...BUILTIN[key] };
  const [kind, ...rest] = key.split(":");
  const name = rest.join(":");
  if (kind === "metric" && METRIC_KEY.test(name)) {
    const first = HIGHER_IS_BETTER.test(name) ? "desc" : undefined;
    return { key, kind, name, label: humanize(name), sort: key, first, num: true };
  }
  if (kind === "param" && PARAM_PATH.test(name) && name.length <= 200) {
    return { key, kind, name, label: name, sort: key, param: true };
  }
  return null;
}

/** A saved or edited list made usable: known keys once each, Name first, at most the API's cap. */
export function normalize(keys) {
  const known = (Array.isArray(keys) ? keys : []).filter((key) => typeof key === "string" && describe(key));
  return ["name", ...new Set(known.filter((key) => key !== "name"))].slice(0, MAX_COLUMNS);
}

export async function loadColumns() {
  const prefs = await api("/auth/me/preferences");
  return prefs.runs_columns ? normalize(prefs.runs_columns) : [...DEFAULT_COLUMNS];
}

export function saveColumns(keys) {
  const same = keys.length === DEFAULT_COLUMNS.length && keys.every((key, i) => key === DEFAULT_COLUMNS[i]);
  return api("/auth/me/preferences", { method: "PUT", body: { runs_columns: same ? null : keys } });
}

/** A spec path that breaks only after its dots (a header is narrow; fit.batch_size). */
export function pathLabel(path) {
  const parts = path.split(".");
  return parts.flatMap((part, i) => (i < parts.length - 1 ? [`${part}.`, el("wbr")] : [part]));
}

/** The spec paths the shown param columns need (GET /runs?with_params=). */
export function paramPaths(keys) {
  return keys.map(describe).filter((column) => column && column.kind === "param").map((column) => column.name);
}

// ---- the chooser: a <details> menu of ticks and up/down buttons ----

/**
 * Fill the chooser for `keys` (shown, in order) and `available` ({metrics, params} or null
 * while loading); `onChange(newKeys)` gets every edit. `filter` narrows the unshown lists.
 */
export function renderChooser(panel, { keys, available, filter, onChange }) {
  const shown = new Set(keys);
  const needle = filter.trim().toLowerCase();
  // the panel is rebuilt on every edit: focus goes back to the same control of the column
  const refocus = (key, selector) => {
    const item = [...panel.querySelectorAll("[data-column]")].filter((node) => node.dataset.column === key);
    const target = item.map((node) => node.querySelector(selector) || node).find((node) => !node.disabled);
    if (target) target.focus();
  };
  const move = (index, by) => {
    const next = [...keys];
    [next[index], next[index + by]] = [next[index + by], next[index]];
    onChange(next);
    refocus(keys[index], by < 0 ? "button:first-child" : "button:last-child");
  };
  const tick = (key, label, checked, disabled = false) =>
    el(
      "label",
      { className: "column-choice", title: key },
      el("input", {
        type: "checkbox",
        checked,
        disabled,
        dataset: { column: key },
        on: {
          change: (event) => {
            onChange(event.target.checked ? [...keys, key] : keys.filter((other) => other !== key));
            refocus(key, "input");
          },
        },
      }),
      el("span", { className: describe(key)?.param ? "mono" : "", text: label }),
    );

  const shownList = el(
    "ol",
    { className: "column-list", id: "shown-columns", "aria-label": "Shown columns, in order" },
    keys.map((key, index) => {
      const { label } = describe(key);
      return el(
        "li",
        { dataset: { column: key } },
        tick(key, label, true, key === "name"),
        el(
          "span",
          { className: "column-moves" },
          el("button", {
            type: "button",
            className: "icon-button",
            text: "↑",
            "aria-label": `Move ${label} left`,
            title: "Move left",
            disabled: index <= 1,
            on: { click: () => move(index, -1) },
          }),
          el("button", {
            type: "button",
            className: "icon-button",
            text: "↓",
            "aria-label": `Move ${label} right`,
            title: "Move right",
            disabled: index === 0 || index === keys.length - 1,
            on: { click: () => move(index, 1) },
          }),
        ),
      );
    }),
  );

  const group = (title, entries) => {
    const unshown = entries.filter(([key, label]) => !shown.has(key) && `${key} ${label}`.toLowerCase().includes(needle));
    if (unshown.length === 0) return null;
    return el(
      "fieldset",
      { className: "column-group" },
      el("legend", { text: title }),
      unshown.map(([key, label]) => tick(key, label, false)),
    );
  };
  const builtins = Object.entries(BUILTIN).map(([key, column]) => [key, column.label]);
  const metrics = available ? available.metrics.map((name) => [`metric:${name}`, humanize(name)]) : [];
  const params = available ? available.params.map((name) => [`param:${name}`, name]) : [];
  const full = keys.length >= MAX_COLUMNS;
  const rest = full
    ? [el("p", { className: "muted", text: `At most ${MAX_COLUMNS} columns: untick one to add another.` })]
    : [
        group("Table", builtins),
        available ? group("Final metrics", metrics) : el("p", { className: "muted", text: "Loading metrics and parameters…" }),
        available && group("Spec parameters", params),
      ];
  const groups = rest.filter(Boolean);
  if (groups.length === 0 && available) {
    groups.push(el("p", { className: "muted", text: needle ? "No other column matches." : "Every column is shown." }));
  }
  panel.replaceChildren(shownList, ...groups);
}
