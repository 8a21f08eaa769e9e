// New sweep: a base (a preset, or a run: /sweeps/new?run=ID), parameter rows over the spec's
// fields (offered from the spec's JSON Schema), strategy, objective, trials, concurrency and
// pruner. The trial count is shown as you type and checked by the server's dry run
// (POST /sweeps/preview, the same checks as creating); a 422's fields go next to their inputs.

import { ApiError, api, describeError, showMessage } from "./api.js";
import { el } from "./format.js";
import { rangeText } from "./schema.js";
import { dimensionOf, sweepableFields, trialCount } from "./sweep-space.js";

const $ = (id) => document.getElementById(id);
const form = $("sweep-form");
const baseSelect = $("sweep-base");
const nameInput = $("sweep-name");
const overridesInput = $("sweep-overrides");
const rowsRoot = $("param-rows");
const formError = $("form-error");
const submitButton = $("submit-sweep");
const submitStatus = $("submit-status");
const preview = $("trial-preview");
const serverCheck = $("server-check");
const CHECK_DELAY_MS = 400;
const FIRST_FIELD = "compile.optimizer.learning_rate";

const state = { presets: new Map(), run: null, schema: null, fields: new Map(), rows: [], nameTouched: false, checkSeq: 0, checkTimer: null };

const round = (value) => Number(Number(value).toPrecision(3));

// ---- the base spec ----------------------------------------------------------------------------

function baseSpec() {
  if (baseSelect.value.startsWith("run:")) return state.run ? state.run.spec : {};
  const preset = state.presets.get(baseSelect.value);
  return preset ? preset.spec : {};
}

function renderBase() {
  const spec = baseSpec();
  $("base-spec").textContent = JSON.stringify(spec, null, 2);
  const preset = state.presets.get(baseSelect.value);
  $("base-description").textContent = state.run && baseSelect.value.startsWith("run:")
    ? `Every trial starts from run #${state.run.id}'s spec.`
    : preset ? preset.description || "" : "";
  state.fields = new Map(state.schema ? sweepableFields(state.schema, spec).map((f) => [f.path, f]) : []);
  $("spec-fields").replaceChildren(...[...state.fields.keys()].map((path) => el("option", { value: path })));
  if (!state.nameTouched) {
    nameInput.value = state.run && baseSelect.value.startsWith("run:") ? `${state.run.name} sweep` : `${baseSelect.value} sweep`;
  }
  for (const row of state.rows) describeRow(row);
}

// ---- parameter rows ---------------------------------------------------------------------------

function describeRow(row) {
  const field = state.fields.get(row.path.value.trim());
  row.integer = Boolean(field && field.type === "integer");
  row.step.hidden = !(row.integer && row.kind.value === "range");
  const parts = [];
  if (field) {
    parts.push(field.type === "enum" ? `one of ${field.options.map((o) => JSON.stringify(o)).join(", ")}` : field.type);
    if (field.free) parts.push("an argument the schema leaves open (its type read from the base value)");
    const limits = field.schema ? rangeText(field.schema) : "";
    if (limits) parts.push(limits);
    parts.push(`base value ${JSON.stringify(field.value)}`);
  } else if (row.path.value.trim()) {
    parts.push("not a numeric or enumerated field of the base spec");
  }
  row.hint.textContent = parts.join(" · ");
}

function showKind(row) {
  const choice = row.kind.value === "choice";
  row.values.hidden = !choice;
  row.low.hidden = choice;
  row.high.hidden = choice;
  describeRow(row);
}

/** A field was picked: start its space from the base value (a choice around it). */
function prefill(row) {
  const field = state.fields.get(row.path.value.trim());
  if (!field || row.values.value.trim() || row.low.value || row.high.value) return;
  row.kind.value = "choice";
  if (field.type === "enum") {
    row.values.value = field.options.map((o) => (typeof o === "string" ? o : JSON.stringify(o))).join(", ");
  } else if (typeof field.value === "number" && field.value > 0) {
    const v = field.value;
    const values = field.type === "integer" ? [Math.max(1, Math.round(v / 2)), v, v * 2] : [round(v / 3), v, round(v * 3)];
    row.values.value = [...new Set(values)].join(", ");
    row.low.value = String(values[0]);
    row.high.value = String(values[values.length - 1]);
  }
  showKind(row);
}

function removeRow(row) {
  state.rows = state.rows.filter((r) => r !== row);
  row.root.remove();
  changed();
}

function addRow({ path = "", kind = "choice", values = "", low = "", high = "", step = "" } = {}) {
  const n = state.rows.length + 1;
  const input = (attrs) => el("input", { type: "number", step: "any", autocomplete: "off", ...attrs });
  const row = {
    path: el("input", { type: "text", list: "spec-fields", className: "param-path", autocomplete: "off", placeholder: "spec field, e.g. fit.batch_size", "aria-label": `Parameter ${n}: spec field`, value: path }),
    kind: el("select", { className: "param-kind", "aria-label": `Parameter ${n}: space` },
      el("option", { value: "choice", text: "choice" }),
      el("option", { value: "range", text: "range" }),
      el("option", { value: "log", text: "log range" })),
    values: el("input", { type: "text", className: "param-values", autocomplete: "off", placeholder: "values, comma-separated", "aria-label": `Parameter ${n}: values`, value: values }),
    low: input({ className: "param-low", placeholder: "low", "aria-label": `Parameter ${n}: low`, value: low }),
    high: input({ className: "param-high", placeholder: "high", "aria-label": `Parameter ${n}: high`, value: high }),
    step: input({ className: "param-step", min: "1", step: "1", placeholder: "step", "aria-label": `Parameter ${n}: step`, value: step }),
    hint: el("p", { className: "hint param-hint" }),
    errors: el("div", { className: "field-errors param-errors", "aria-live": "polite" }),
    integer: false,
  };
  row.kind.value = kind;
  const remove = el("button", { type: "button", className: "button small", text: "Remove", "aria-label": `Remove parameter ${n}`, on: { click: () => removeRow(row) } });
  row.root = el("div", { className: "param-row" },
    el("div", { className: "param-inputs" }, row.path, row.kind, row.values, row.low, row.high, row.step, remove),
    row.hint, row.errors);
  row.path.addEventListener("change", () => prefill(row));
  row.path.addEventListener("input", () => describeRow(row));
  row.kind.addEventListener("change", () => showKind(row));
  state.rows.push(row);
  rowsRoot.append(row.root);
  showKind(row);
  return row;
}

// ---- the body, the preview, the server's check ------------------------------------------------

const numberField = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));

function pruner() {
  const kind = $("sweep-pruner").value;
  $("pruner-median").hidden = kind !== "median";
  $("pruner-asha").hidden = kind !== "asha";
  if (kind === "median") return { kind, warmup_epochs: numberField("median-warmup"), min_trials: numberField("median-min-trials") };
  if (kind === "asha") return { kind, min_epochs: numberField("asha-min-epochs"), reduction_factor: numberField("asha-factor"), min_trials: numberField("asha-min-trials") };
  return null;
}

/** The POST body, or throws {field, message} for what cannot be sent at all. */
function buildBody() {
  const body = { name: nameInput.value.trim() };
  if (baseSelect.value.startsWith("run:")) body.spec = state.run.spec;
  else body.preset = baseSelect.value;
  const text = overridesInput.value.trim();
  if (text) {
    try {
      body.overrides = JSON.parse(text);
    } catch (err) {
      throw { field: "overrides", message: `not valid JSON: ${err.message}` };
    }
  }
  body.space = {};
  for (const row of state.rows) {
    const path = row.path.value.trim();
    if (path) body.space[path] = dimensionOf({ kind: row.kind.value, integer: row.integer, values: row.values.value, low: row.low.value, high: row.high.value, step: row.step.value });
  }
  body.strategy = $("sweep-strategy").value;
  body.objective = $("sweep-objective").value.trim();
  if ($("sweep-direction").value) body.direction = $("sweep-direction").value;
  const maxTrials = numberField("sweep-max-trials");
  if (maxTrials !== null) body.max_trials = maxTrials;
  body.max_concurrent = numberField("sweep-concurrency") ?? 1;
  const seed = numberField("sweep-seed");
  if (seed !== null) body.seed = seed;
  body.priority = $("sweep-priority").value;
  const p = pruner();
  if (p) body.pruner = p;
  return body;
}

function renderCount(body) {
  const found = trialCount(body.space, body.strategy, body.max_trials);
  preview.dataset.count = found.count === undefined ? "" : String(found.count);
  if (found.count === undefined) {
    preview.textContent = found.reason;
    return;
  }
  const capped = found.points !== undefined && found.points > found.count ? ` (of ${found.points} grid points)` : "";
  const grid = found.points !== undefined && !capped ? " (every grid point)" : "";
  preview.textContent = `${found.count} trial${found.count === 1 ? "" : "s"}${capped || grid}, ${body.max_concurrent} at once.`;
}

function changed() {
  clearErrors();
  let body;
  try {
    body = buildBody();
  } catch (problem) {
    showErrors([problem]);
    preview.textContent = "";
    return;
  }
  renderCount(body);
  clearTimeout(state.checkTimer);
  const seq = ++state.checkSeq;
  serverCheck.textContent = "";
  state.checkTimer = setTimeout(() => check(body, seq), CHECK_DELAY_MS);
}

async function check(body, seq) {
  if (!Object.keys(body.space).length || !body.name || !baseSelect.value) return;
  try {
    const found = await api("/sweeps/preview", { method: "POST", body });
    if (seq !== state.checkSeq) return;
    serverCheck.dataset.state = "ok";
    serverCheck.textContent = `✓ Checked by the server: ${found.trials} trial${found.trials === 1 ? "" : "s"}, ${found.direction} ${body.objective}.`;
  } catch (err) {
    if (seq !== state.checkSeq) return;
    serverCheck.dataset.state = "invalid";
    serverCheck.textContent = `The server would refuse this sweep: ${describeError(err)}`;
    if (err instanceof ApiError && err.errors.length) showErrors(err.errors);
  }
}

// ---- errors -----------------------------------------------------------------------------------

function clearErrors() {
  showMessage(formError, null);
  for (const box of form.querySelectorAll(".field-errors")) box.replaceChildren();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Where an API field path is shown: a parameter row, a labelled field, or the form's box. */
function placeFor(field) {
  const path = String(field || "").replace(/^body\.?/, "");
  if (path.startsWith("space.")) {
    const row = state.rows.find((r) => `space.${r.path.value.trim()}` === path);
    if (row) return { box: row.errors, input: row.path };
  }
  let top = path.split(/[.[]/)[0];
  if (top === "spec") top = "preset";
  const box = top ? form.querySelector(`.field-errors[data-field="${top}"]`) : null;
  return box ? { box, input: form.querySelector(`[name="${top === "preset" ? "base" : top}"]`) } : null;
}

function showErrors(errors) {
  const loose = [];
  for (const error of errors) {
    const place = placeFor(error.field);
    const message = error.message || "is invalid";
    if (!place) {
      loose.push(error.field ? `${error.field}: ${message}` : message);
      continue;
    }
    place.box.append(el("p", { className: "field-error", dataset: { field: String(error.field) }, text: message }));
    if (place.input) place.input.setAttribute("aria-invalid", "true");
    if (place.box.closest("details")) place.box.closest("details").open = true;
  }
  if (loose.length) showMessage(formError, loose.join("; "));
}

async function submit(event) {
  event.preventDefault();
  clearTimeout(state.checkTimer);
  state.checkSeq += 1;
  clearErrors();
  let body;
  try {
    body = buildBody();
  } catch (problem) {
    showErrors([problem]);
    return;
  }
  // every event, both channels: the Account page says where they go
  if (document.getElementById("notify-me").checked) body.notify = {};
  submitButton.disabled = true;
  submitStatus.textContent = "Creating the trials…";
  try {
    const sweep = await api("/sweeps", { method: "POST", body });
    submitStatus.textContent = "Sweep started, opening it…";
    location.assign(`/sweeps/${encodeURIComponent(sweep.id)}`);
  } catch (err) {
    submitButton.disabled = false;
    submitStatus.textContent = "";
    if (err instanceof ApiError && err.errors.length) {
      showErrors(err.errors);
      submitStatus.textContent = "Nothing was started: fix the fields marked and submit again.";
      const first = form.querySelector(".field-error");
      if (first) first.scrollIntoView({ block: "center" });
    } else {
      showMessage(formError, err, { prefix: "Could not start the sweep: " });
    }
  }
}

// ---- loading ----------------------------------------------------------------------------------

async function loadRun(runId) {
  try {
    state.run = await api(`/runs/${encodeURIComponent(runId)}`);
  } catch (err) {
    const missing = err instanceof ApiError && err.status === 404;
    showMessage(formError, missing ? `There is no run ${runId} to sweep from.` : `Could not load run ${runId}: ${describeError(err)}`);
    return;
  }
  baseSelect.prepend(el("option", { value: `run:${state.run.id}`, text: `Run #${state.run.id}: ${state.run.name}` }));
  baseSelect.value = `run:${state.run.id}`;
  const note = $("from-run-note");
  note.replaceChildren("Sweeping from ", el("a", { href: `/runs/${encodeURIComponent(state.run.id)}`, text: `run #${state.run.id}` }), " ", el("span", { text: state.run.name }));
  note.hidden = false;
}

async function init() {
  const params = new URLSearchParams(location.search);
  const [presets, schema] = await Promise.allSettled([api("/presets"), api("/spec/schema")]);
  if (schema.status === "fulfilled") state.schema = schema.value;
  else showMessage(formError, schema.reason, { prefix: "The spec fields are not offered (type their paths): " });
  const list = presets.status === "fulfilled" ? presets.value : [];
  baseSelect.replaceChildren(...list.map((p) => el("option", { value: p.name, text: `Preset: ${p.name}` })));
  for (const preset of list) state.presets.set(preset.name, preset);
  const wanted = params.get("preset");
  if (wanted && state.presets.has(wanted)) baseSelect.value = wanted;
  if (params.get("run")) await loadRun(params.get("run"));
  baseSelect.disabled = false;
  renderBase();
  const first = addRow({ path: state.fields.has(FIRST_FIELD) ? FIRST_FIELD : "" });
  prefill(first);
  if (presets.status === "rejected") showMessage(formError, presets.reason, { prefix: "Could not load presets: " });
  changed();
}

baseSelect.addEventListener("change", () => {
  renderBase();
  changed();
});
nameInput.addEventListener("input", () => {
  state.nameTouched = true;
});
$("add-param").addEventListener("click", () => {
  addRow().path.focus();
  changed();
});
$("sweep-pruner").addEventListener("change", pruner);
// any edit re-counts the trials and asks the server again (debounced)
form.addEventListener("input", changed);
form.addEventListener("change", changed);
form.addEventListener("submit", (event) => {
  submit(event).catch((err) => showMessage(formError, describeError(err)));
});
window.addEventListener("pageshow", () => {
  submitButton.disabled = false;
});

init().catch((err) => showMessage(formError, describeError(err)));
