// New run: pick a preset (or clone a run), edit its spec in a form generated from the JSON
// Schema or as JSON or YAML (all three kept in sync), submit; 422 errors go next to their fields.
// The form shows the common fields first and folds the rest; what does not apply to the chosen
// dataset or optimizer is left out (the schema's x-applies-when).

import { ApiError, api, describeError, showMessage } from "./api.js";
import { el } from "./format.js";
import { clone, isObject } from "./schema.js";
import { KERAS_LAYERS, SchemaForm } from "./schema_form.js";
import { parseYaml, toYaml } from "./yaml.js";

const $ = (id) => document.getElementById(id);
const form = $("new-run-form");
const presetSelect = $("preset-select");
const presetDescription = $("preset-description");
const nameInput = $("run-name");
const nameErrors = $("name-error");
const editor = $("spec-editor");
const yamlEditor = $("spec-yaml");
const specErrors = $("spec-errors");
const formError = $("form-error");
const submitButton = $("submit-run");
const submitStatus = $("submit-status");
const resetButton = $("reset-spec");
const textError = $("text-error");
const syncState = $("sync-state");
const formRoot = $("spec-form");

const presets = new Map(); // name -> {name, description, spec}
const state = {
  spec: {},
  loadedText: "", // the spec as last loaded (preset or cloned run), to notice edits
  origin: null, // {kind: "preset", name} | {kind: "clone", run}
  view: "json",
  invalid: null, // {view, message, where}: a text view holds text that does not parse
  nameTouched: false,
  schemaForm: null,
};

const pretty = (value) => JSON.stringify(value, null, 2);
const VIEW_NAMES = { json: "JSON", yaml: "YAML" };
const NEW_LAYER = { type: "Dense", units: 64, activation: "relu" };
// shown first, above the folded sections: what most runs change
const COMMON_FIELDS = ["dataset.name", "fit.epochs", "fit.batch_size", "compile.optimizer.name", "compile.optimizer.learning_rate"];

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

// ---- the three views --------------------------------------------------------------------------

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

function selectInEditor(textarea, start, end) {
  textarea.focus();
  textarea.setSelectionRange(start, end);
  // Scroll the selection into view: put the caret line near the top of the textarea.
  const line = textarea.value.slice(0, start).split("\n").length - 1;
  const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
  textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

/** JSON.parse, with the error's line and column when the engine gives a position. */
function parseJson(text) {
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

function setView(view, { focus = false } = {}) {
  state.view = view;
  for (const tab of document.querySelectorAll('[role="tab"][data-view]')) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected && focus) tab.focus();
  }
  $("json-view").hidden = view !== "json";
  $("yaml-view").hidden = view !== "yaml";
}

function renderSyncState() {
  if (state.invalid) {
    syncState.textContent = `${VIEW_NAMES[state.invalid.view]} has an error: the form keeps the last valid spec`;
    syncState.dataset.state = "invalid";
  } else {
    syncState.textContent = "✓ form, JSON and YAML in sync";
    syncState.dataset.state = "ok";
  }
}

/** Put the spec in every view except the one it came from. */
function syncViews(source) {
  if (source !== "json") editor.value = pretty(state.spec);
  if (source !== "yaml") {
    try {
      yamlEditor.value = toYaml(state.spec);
    } catch (err) {
      yamlEditor.value = `# could not write this spec as YAML: ${err.message}`;
    }
  }
  if (source !== "form" && state.schemaForm) state.schemaForm.setValue(state.spec);
  state.invalid = null;
  showTextError(null);
  if (state.schemaForm) state.schemaForm.setDisabled(false);
  renderSyncState();
}

function showTextError(invalid) {
  if (!invalid) {
    textError.hidden = true;
    textError.textContent = "";
    editor.removeAttribute("aria-invalid");
    yamlEditor.removeAttribute("aria-invalid");
    return;
  }
  const where = invalid.where ? ` (line ${invalid.where.line}, column ${invalid.where.column})` : "";
  textError.textContent = `${VIEW_NAMES[invalid.view]} not valid${where}: ${invalid.message}`;
  textError.hidden = false;
  (invalid.view === "json" ? editor : yamlEditor).setAttribute("aria-invalid", "true");
}

/** A text view was edited: take its spec if it parses, else hold the form until it does. */
function onTextInput(view) {
  const text = view === "json" ? editor.value : yamlEditor.value;
  const parsed = view === "json" ? parseJson(text) : parseYaml(text);
  let invalid = null;
  if (parsed.error !== undefined) invalid = { view, message: parsed.error, where: parsed.where };
  else if (!isObject(parsed.value)) invalid = { view, message: `the spec must be ${view === "json" ? "a JSON object { … }" : "a YAML mapping (key: value lines)"}`, where: null };
  if (invalid) {
    state.invalid = invalid;
    showTextError(invalid);
    if (state.schemaForm) {
      state.schemaForm.setDisabled(true, `Fix the ${VIEW_NAMES[view]} to keep editing here: the form shows the last valid spec.`);
    }
    renderSyncState();
    return;
  }
  state.spec = parsed.value;
  syncViews(view);
}

function onFormChange(value) {
  state.spec = value;
  syncViews("form");
}

// ---- errors -----------------------------------------------------------------------------------

function clearErrors() {
  showMessage(formError, null);
  nameErrors.replaceChildren();
  specErrors.replaceChildren();
  nameInput.removeAttribute("aria-invalid");
  editor.removeAttribute("aria-invalid");
  submitStatus.textContent = "";
  if (state.schemaForm) state.schemaForm.clearErrors();
}

/** Focus a spec field: in the form when it has one, else in the JSON text. */
function revealField(field) {
  const row = state.schemaForm && state.schemaForm.closestField(field);
  if (row && !state.invalid) {
    const input = row.querySelector("input, select, textarea");
    state.schemaForm.openAround(row);
    row.scrollIntoView({ block: "center" });
    if (input) input.focus({ preventScroll: true });
    return;
  }
  setView("json");
  const spot = locateField(editor.value, field);
  if (spot) selectInEditor(editor, spot.start, spot.end);
}

function fieldError(field, message, { showPath = false } = {}) {
  const item = el("li", { className: "field-error", dataset: { field } });
  if (showPath) {
    const findable = field !== "spec";
    const label = findable
      ? el("button", {
          type: "button",
          className: "link-button field-path",
          title: "Show this field",
          text: field,
          on: { click: () => revealField(field) },
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
  const inline = [];
  const other = [];
  for (const error of errors) {
    const field = normaliseField(error.field);
    const message = error.message || "is invalid";
    if (field === "name") nameList.append(fieldError(field, message));
    else if (field === "spec" || field.startsWith("spec.")) {
      specList.append(fieldError(field, message, { showPath: true }));
      if (field !== "spec") inline.push({ field, message });
    } else other.push(field ? `${field}: ${message}` : message);
  }
  if (nameList.childElementCount) {
    nameErrors.replaceChildren(nameList);
    nameInput.setAttribute("aria-invalid", "true");
  }
  if (specList.childElementCount) {
    specErrors.replaceChildren(el("p", { className: "error-title", text: "The spec was rejected:" }), specList);
  }
  if (state.schemaForm && inline.length) state.schemaForm.showErrors(inline);
  return other;
}

function showTextErrorOnSubmit() {
  const invalid = state.invalid;
  const where = invalid.where ? ` (line ${invalid.where.line}, column ${invalid.where.column})` : "";
  const engineSaysWhere = /line \d+/.test(invalid.message);
  const kind = VIEW_NAMES[invalid.view];
  specErrors.replaceChildren(
    el("ul", { className: "error-list" }, fieldError("spec", `Invalid ${kind}${engineSaysWhere ? "" : where}: ${invalid.message}`)),
  );
  setView(invalid.view);
  const textarea = invalid.view === "json" ? editor : yamlEditor;
  textarea.setAttribute("aria-invalid", "true");
  if (invalid.where && Number.isFinite(invalid.where.position)) {
    selectInEditor(textarea, invalid.where.position, invalid.where.position + 1);
  } else {
    textarea.focus();
  }
  submitStatus.textContent = `Nothing was sent: fix the ${kind} first.`;
}

// ---- submit -----------------------------------------------------------------------------------

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
  // the text view on screen is what the user sees: read it again in case an edit was missed
  if (!state.invalid) {
    const current = state.view === "json" ? editor.value : yamlEditor.value;
    const shown = state.view === "json" ? pretty(state.spec) : null;
    if (shown !== null && current !== shown) onTextInput("json");
  }
  if (state.invalid) {
    showTextErrorOnSubmit();
    return;
  }

  submitButton.disabled = true;
  submitStatus.textContent = "Starting…";
  try {
    const body = buildBody(nameInput.value.trim(), state.spec);
    body.priority = document.getElementById("run-priority").value;
    // every event, both channels: the Account page says where they go
    if (document.getElementById("notify-me").checked) body.notify = {};
    const run = await api("/runs", { method: "POST", body });
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
    if (!(state.schemaForm && state.schemaForm.revealFirstError())) {
      const firstError = document.querySelector(".field-errors .field-error");
      (firstError || formError).scrollIntoView({ block: "center" });
    }
  }
}

// ---- loading a spec ---------------------------------------------------------------------------

function setSpec(spec, origin) {
  clearErrors();
  state.spec = clone(spec);
  state.origin = origin;
  state.loadedText = pretty(state.spec);
  syncViews(null);
  resetButton.textContent = origin && origin.kind === "clone" ? `Reset spec to run #${origin.run.id}` : "Reset spec to preset";
}

function loadPreset(name) {
  const preset = presets.get(name);
  presetDescription.textContent = preset ? preset.description || "" : "";
  setSpec(preset ? preset.spec : {}, preset ? { kind: "preset", name } : null);
  if (!state.nameTouched) nameInput.value = preset ? preset.name : "";
  $("clone-note").hidden = true;
  const url = new URL(location.href);
  url.searchParams.delete("clone");
  if (preset) url.searchParams.set("preset", preset.name);
  else url.searchParams.delete("preset");
  history.replaceState(null, "", url);
}

/** Fill the form from a run; returns null, or why it could not (to show once a preset is in). */
async function loadClone(runId) {
  let run;
  try {
    run = await api(`/runs/${encodeURIComponent(runId)}`);
  } catch (err) {
    const missing = err instanceof ApiError && err.status === 404;
    return missing ? `There is no run ${runId} to clone.` : `Could not load run ${runId} to clone it: ${describeError(err)}`;
  }
  presetSelect.value = run.preset && presets.has(run.preset) ? run.preset : "";
  presetDescription.textContent = run.preset && presets.has(run.preset)
    ? `Cloned from a run of this preset; only what differs from it is sent as overrides.`
    : "";
  setSpec(run.spec, { kind: "clone", run });
  nameInput.value = `${run.name} (clone)`;
  state.nameTouched = true;
  const note = $("clone-note");
  note.replaceChildren(
    "Cloned from ",
    el("a", { href: `/runs/${encodeURIComponent(run.id)}`, text: `run #${run.id}` }),
    " ",
    el("span", { className: "clone-name", text: run.name }),
  );
  note.hidden = false;
  return null;
}

async function loadSchema() {
  try {
    const schema = await api("/spec/schema");
    state.schemaForm = new SchemaForm(formRoot, {
      schema,
      onChange: onFormChange,
      newItems: { "model.layers": NEW_LAYER },
      common: COMMON_FIELDS,
      suggest: (path) => (path.length === 4 && path[0] === "model" && path[1] === "layers" && path[3] === "type" ? KERAS_LAYERS : null),
    });
  } catch (err) {
    formRoot.replaceChildren(
      el("p", { className: "message error", role: "alert", text: `The form is unavailable (${describeError(err)}); edit the spec as JSON or YAML instead.` }),
    );
  } finally {
    formRoot.removeAttribute("aria-busy");
  }
}

async function init() {
  const params = new URLSearchParams(location.search);
  const wanted = params.get("preset");
  const cloneId = params.get("clone");
  let list = [];
  let failure = null;
  const [presetsResult] = await Promise.allSettled([api("/presets"), loadSchema()]);
  if (presetsResult.status === "fulfilled") list = presetsResult.value;
  else failure = presetsResult.reason;
  presetSelect.replaceChildren(el("option", { value: "", text: "None: write the whole spec" }));
  for (const preset of list) {
    presets.set(preset.name, preset);
    presetSelect.append(el("option", { value: preset.name, text: preset.name }));
  }
  presetSelect.disabled = false;
  const cloneFailure = cloneId ? await loadClone(cloneId) : null;
  if (cloneId && !cloneFailure) {
    if (failure) showMessage(formError, failure, { prefix: "Could not load presets: " });
    return;
  }
  const unknown = wanted && !presets.has(wanted);
  const initial = wanted && !unknown ? wanted : list.length ? list[0].name : "";
  presetSelect.value = initial;
  loadPreset(initial);
  // /new?dataset_upload=ID (the Datasets page): the preset's spec, trained on that upload
  const uploadId = Number(params.get("dataset_upload"));
  if (Number.isInteger(uploadId) && uploadId > 0) {
    state.spec = { ...state.spec, dataset: { name: "upload", upload_id: uploadId } };
    syncViews(null);
  }
  if (cloneFailure) {
    showMessage(formError, `${cloneFailure} Showing ${initial ? `the ${initial} preset` : "an empty spec"} instead.`);
  } else if (failure) {
    showMessage(formError, failure, { prefix: "Could not load presets (you can still write a whole spec): " });
  } else if (unknown) {
    showMessage(formError, `There is no preset named "${wanted}"; showing ${initial || "an empty spec"} instead.`);
  }
}

// ---- events -----------------------------------------------------------------------------------

const edited = () => Boolean(state.invalid) || pretty(state.spec) !== state.loadedText;

presetSelect.addEventListener("change", () => {
  const previous = state.origin && state.origin.kind === "preset" ? state.origin.name : state.origin && state.origin.kind === "clone" ? state.origin.run.preset || "" : "";
  if (edited() && !window.confirm("Replace your edited spec with this preset's spec?")) {
    presetSelect.value = presets.has(previous) ? previous : "";
    return;
  }
  loadPreset(presetSelect.value);
});

resetButton.addEventListener("click", () => {
  if (state.origin && state.origin.kind === "clone") setSpec(state.origin.run.spec, state.origin);
  else loadPreset(presetSelect.value);
});
nameInput.addEventListener("input", () => {
  state.nameTouched = true;
});
editor.addEventListener("input", () => onTextInput("json"));
yamlEditor.addEventListener("input", () => onTextInput("yaml"));
for (const textarea of [editor, yamlEditor]) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
}
for (const tab of document.querySelectorAll('[role="tab"][data-view]')) {
  tab.addEventListener("click", () => setView(tab.dataset.view));
  tab.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.preventDefault();
    setView(state.view === "json" ? "yaml" : "json", { focus: true });
  });
}
form.addEventListener("submit", (event) => {
  submit(event).catch((err) => showMessage(formError, describeError(err)));
});
// Coming back with the Back button restores the page from cache with a busy button.
window.addEventListener("pageshow", () => {
  submitButton.disabled = false;
});

init().catch((err) => showMessage(formError, describeError(err)));
