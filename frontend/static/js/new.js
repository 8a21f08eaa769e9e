// New run: pick a preset, edit its spec as JSON, submit; show 422 errors next to their inputs.

import { ApiError, api, describeError, showMessage } from "./api.js";
import { el } from "./format.js";

const form = document.getElementById("new-run-form");
const presetSelect = document.getElementById("preset-select");
const presetDescription = document.getElementById("preset-description");
const nameInput = document.getElementById("run-name");
const nameErrors = document.getElementById("name-error");
const editor = document.getElementById("spec-editor");
const specErrors = document.getElementById("spec-errors");
const formError = document.getElementById("form-error");
const submitButton = document.getElementById("submit-run");
const submitStatus = document.getElementById("submit-status");
const resetButton = document.getElementById("reset-spec");

const presets = new Map(); // name -> {name, description, spec}
let loadedText = ""; // the editor text as last loaded from a preset, to notice edits
let nameTouched = false;

const pretty = (value) => JSON.stringify(value, null, 2);
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  if (keysA.length !== Object.keys(b).length) return false;
  return keysA.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
}

/**
 * What to deep-merge into `base` to get `edited` (objects merge, anything else replaces),
 * or null when that cannot be said with overrides (a key was removed).
 */
export function overridesFrom(base, edited) {
  if (!isObject(base) || !isObject(edited)) return null;
  if (Object.keys(base).some((key) => !Object.hasOwn(edited, key))) return null;
  const out = {};
  for (const [key, value] of Object.entries(edited)) {
    if (!Object.hasOwn(base, key)) {
      out[key] = value;
    } else if (isObject(base[key]) && isObject(value)) {
      const nested = overridesFrom(base[key], value);
      if (nested === null) return null;
      if (Object.keys(nested).length) out[key] = nested;
    } else if (!deepEqual(base[key], value)) {
      out[key] = value;
    }
  }
  return out;
}

/** Error paths from the API, as the page names them: "name", "spec", "spec.fit.epochs". */
export function normaliseField(field) {
  let path = String(field || "").replace(/^body\./, "");
  if (path === "overrides" || path.startsWith("overrides.")) path = `spec${path.slice(9)}`;
  return path;
}

/** Where a dotted spec path's last named key sits in the JSON text (best effort). */
function locateField(text, path) {
  let at = -1;
  let from = 0;
  for (const segment of path.split(".").slice(1)) {
    if (/^\d+$/.test(segment)) continue;
    const found = text.indexOf(JSON.stringify(segment), from);
    if (found === -1) break;
    at = found;
    from = found + 1;
  }
  return at === -1 ? null : { start: at, end: at + path.split(".").pop().length + 2 };
}

function selectInEditor(start, end) {
  editor.focus();
  editor.setSelectionRange(start, end);
  // Scroll the selection into view: put the caret line near the top of the textarea.
  const line = editor.value.slice(0, start).split("\n").length - 1;
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
  editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

function clearErrors() {
  showMessage(formError, null);
  nameErrors.replaceChildren();
  specErrors.replaceChildren();
  nameInput.removeAttribute("aria-invalid");
  editor.removeAttribute("aria-invalid");
  submitStatus.textContent = "";
}

function fieldError(field, message, { showPath = false } = {}) {
  const item = el("li", { className: "field-error", dataset: { field } });
  if (showPath) {
    const spot = field === "spec" ? null : locateField(editor.value, field);
    const label = spot
      ? el("button", {
          type: "button",
          className: "link-button field-path",
          title: "Show in the editor",
          text: field,
          on: { click: () => selectInEditor(spot.start, spot.end) },
        })
      : el("code", { className: "field-path", text: field });
    item.append(label, " ");
  }
  item.append(el("span", { text: message }));
  return item;
}

function showFieldErrors(errors) {
  const nameList = el("ul", { className: "error-list" });
  const specList = el("ul", { className: "error-list" });
  const other = [];
  for (const error of errors) {
    const field = normaliseField(error.field);
    const message = error.message || "is invalid";
    if (field === "name") nameList.append(fieldError(field, message));
    else if (field === "spec" || field.startsWith("spec.")) {
      specList.append(fieldError(field, message, { showPath: true }));
    } else other.push(field ? `${field}: ${message}` : message);
  }
  if (nameList.childElementCount) {
    nameErrors.replaceChildren(nameList);
    nameInput.setAttribute("aria-invalid", "true");
  }
  if (specList.childElementCount) {
    specErrors.replaceChildren(el("p", { className: "error-title", text: "The spec was rejected:" }), specList);
    editor.setAttribute("aria-invalid", "true");
  }
  return other;
}

/** JSON.parse, with the error's line and column when the engine gives a position. */
function parseSpec(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    const message = err.message;
    const match = /position (\d+)/.exec(message);
    let where = null;
    if (match) {
      const position = Number(match[1]);
      const before = text.slice(0, position).split("\n");
      where = { position, line: before.length, column: before[before.length - 1].length + 1 };
    }
    return { error: message, where };
  }
}

function buildBody(name, spec) {
  const preset = presets.get(presetSelect.value);
  const overrides = preset ? overridesFrom(preset.spec, spec) : null;
  // A preset plus overrides keeps the run's preset on record; otherwise send the whole spec.
  if (preset && overrides !== null) return { name, preset: preset.name, overrides };
  return { name, spec };
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const parsed = parseSpec(editor.value);
  if (parsed.error !== undefined) {
    const engineSaysWhere = /line \d+/.test(parsed.error);
    const where = parsed.where && !engineSaysWhere ? ` (line ${parsed.where.line}, column ${parsed.where.column})` : "";
    specErrors.replaceChildren(
      el("ul", { className: "error-list" }, fieldError("spec", `Invalid JSON${where}: ${parsed.error}`)),
    );
    editor.setAttribute("aria-invalid", "true");
    if (parsed.where) selectInEditor(parsed.where.position, parsed.where.position + 1);
    else editor.focus();
    submitStatus.textContent = "Nothing was sent: fix the JSON first.";
    return;
  }
  if (!isObject(parsed.value)) {
    specErrors.replaceChildren(
      el("ul", { className: "error-list" }, fieldError("spec", "The spec must be a JSON object { … }.")),
    );
    editor.setAttribute("aria-invalid", "true");
    submitStatus.textContent = "Nothing was sent: fix the spec first.";
    return;
  }

  submitButton.disabled = true;
  submitStatus.textContent = "Starting…";
  try {
    const run = await api("/runs", { method: "POST", body: buildBody(nameInput.value.trim(), parsed.value) });
    submitStatus.textContent = "Run created, opening it…";
    location.assign(`/runs/${encodeURIComponent(run.id)}`);
  } catch (err) {
    submitButton.disabled = false;
    submitStatus.textContent = "";
    const other = err instanceof ApiError && err.errors.length ? showFieldErrors(err.errors) : null;
    if (other === null) {
      showMessage(formError, err, { prefix: "Could not start the run: " });
    } else if (other.length) {
      showMessage(formError, `${err.detail} ${other.join("; ")}`);
    } else {
      submitStatus.textContent = "Fix the errors shown above and submit again.";
    }
    const firstError = document.querySelector(".field-errors .field-error");
    (firstError || formError).scrollIntoView({ block: "center", behavior: "smooth" });
  }
}

function loadPreset(name) {
  const preset = presets.get(name);
  clearErrors();
  presetDescription.textContent = preset ? preset.description || "" : "";
  loadedText = preset ? pretty(preset.spec) : "{\n  \n}";
  editor.value = loadedText;
  if (!nameTouched) nameInput.value = preset ? preset.name : "";
  const url = new URL(location.href);
  if (preset) url.searchParams.set("preset", preset.name);
  else url.searchParams.delete("preset");
  history.replaceState(null, "", url);
}

async function init() {
  const wanted = new URLSearchParams(location.search).get("preset");
  let list = [];
  let failure = null;
  try {
    list = await api("/presets");
  } catch (err) {
    failure = err;
  }
  presetSelect.replaceChildren(el("option", { value: "", text: "None: write the whole spec" }));
  for (const preset of list) {
    presets.set(preset.name, preset);
    presetSelect.append(el("option", { value: preset.name, text: preset.name }));
  }
  presetSelect.disabled = false;
  const unknown = wanted && !presets.has(wanted);
  const initial = wanted && !unknown ? wanted : list.length ? list[0].name : "";
  presetSelect.value = initial;
  loadPreset(initial);
  if (failure) {
    showMessage(formError, failure, { prefix: "Could not load presets (you can still paste a whole spec): " });
  } else if (unknown) {
    showMessage(formError, `There is no preset named "${wanted}"; showing ${initial || "an empty spec"} instead.`);
  }
}

presetSelect.addEventListener("change", () => {
  const edited = editor.value !== loadedText;
  const previous = [...presets.keys()].find((name) => pretty(presets.get(name).spec) === loadedText) ?? "";
  if (edited && !window.confirm("Replace your edited spec with this preset's spec?")) {
    presetSelect.value = previous;
    return;
  }
  loadPreset(presetSelect.value);
});

resetButton.addEventListener("click", () => loadPreset(presetSelect.value));
nameInput.addEventListener("input", () => {
  nameTouched = true;
});
editor.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});
form.addEventListener("submit", (event) => {
  submit(event).catch((err) => showMessage(formError, describeError(err)));
});
// Coming back with the Back button restores the page from cache with a busy button.
window.addEventListener("pageshow", () => {
  submitButton.disabled = false;
});

init();
