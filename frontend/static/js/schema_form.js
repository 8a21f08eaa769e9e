// A form generated from the spec's JSON Schema, editing a plain JSON value in place.
//
// Every field row carries data-path="spec.fit.epochs" (the API's error paths), so a 422 can be
// shown next to the field it names. Value edits update the value and call onChange; edits that
// change the form's structure (add, remove, reorder, switch a type) redraw the form.
//
// Layout: the `common` fields first, then one folded section (<details>) per part of the spec,
// opened by the user or by an error inside it. A field whose schema says where it applies
// ("x-applies-when": {"dataset.name": ["imdb", ...]}) is left out while its condition does not
// hold, unless it holds something other than its default or has an error; changing the field a
// condition reads resets the fields that stop applying to their defaults (the value is kept
// aside and comes back if they apply again).

import { el } from "./format.js";
import {
  analyse,
  clone,
  defaultFor,
  getAt,
  isObject,
  matches,
  rangeText,
  setAt,
  tagDefault,
} from "./schema.js";

const KERAS_LAYERS = [
  "Dense", "Dropout", "Flatten", "Activation", "BatchNormalization", "LayerNormalization",
  "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling2D",
  "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
  "Embedding", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Reshape", "SpatialDropout1D",
  "GaussianNoise", "ActivityRegularization",
];

const prettyName = (name) => {
  const text = String(name).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
};
const singular = (name) => String(name).replace(/ies$/, "y").replace(/s$/, "");
const idFor = (path) => `sf-${path.join("-").replace(/[^A-Za-z0-9_-]/g, "_")}`;
const sameJson = (a, b) => JSON.stringify(a) === JSON.stringify(b);
export const APPLIES_WHEN = "x-applies-when";

/** A field's own default (what the server assumes when it is left out). */
const defaultOf = (shape) => (shape.hasDefault ? shape.default : null);
const isDefault = (shape, value) => value === undefined || sameJson(value, defaultOf(shape)) || (value === null && !shape.hasDefault);

/** Every object property with an x-applies-when, as {path, shape, when}, through nested objects. */
function conditionalFields(shape, path = [], out = []) {
  if (!shape || shape.kind !== "object") return out;
  for (const prop of shape.properties) {
    const when = prop.shape.schema && prop.shape.schema[APPLIES_WHEN];
    if (isObject(when)) out.push({ path: [...path, prop.name], shape: prop.shape, when });
    conditionalFields(prop.shape, [...path, prop.name], out);
  }
  return out;
}

/** Text for a free-form JSON value: strings bare unless they would read as something else. */
export function jsonValueText(value) {
  if (typeof value === "string") {
    try {
      JSON.parse(value);
      return JSON.stringify(value); // "512", "true", "null": keep the quotes
    } catch {
      return value;
    }
  }
  return value === undefined ? "" : JSON.stringify(value);
}

/** The value typed in a free-form field: JSON when it parses, else the text as a string. */
export function parseJsonValue(text) {
  const trimmed = text.trim();
  if (trimmed === "") return "";
  try {
    return JSON.parse(trimmed);
  } catch {
    return trimmed;
  }
}

function truncate(text, length = 60) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** "Dense(512, relu)" for a layer; the tag for a callback. */
function itemSummary(value) {
  if (!isObject(value)) return "";
  const head = value.type ?? value.name ?? "";
  const args = Object.entries(value)
    .filter(([key, v]) => key !== "type" && key !== "name" && v !== null && typeof v !== "object")
    .slice(0, 3)
    .map(([, v]) => String(v));
  return truncate(args.length ? `${head}(${args.join(", ")})` : String(head));
}

export class SchemaForm {
  /**
   * root: the container; schema: the JSON Schema; onChange(value, {structural}) after each edit;
   * newItems: {"model.layers": {...}} what "Add" puts in a list at that path.
   * suggest(path): values a text field at that path offers (a datalist), or null.
   */
  constructor(root, { schema, onChange = () => {}, newItems = {}, suggest = () => null, common = [] }) {
    this.root = root;
    this.suggest = suggest; // (path) -> values a text field offers, or null
    this.datalists = new Map();
    this.schema = schema;
    this.shape = analyse(schema, schema);
    this.onChange = onChange;
    this.newItems = newItems;
    this.value = {};
    this.errors = new Map(); // "spec.fit.epochs" -> [messages]
    this.opened = new Set(); // sections unfolded (by the user, or to show an error), as last drawn
    this.disabled = false;
    this.common = common.map((path) => path.split(".")); // shown first, out of their sections
    this.commonKeys = new Set(common);
    this.conditional = conditionalFields(this.shape);
    this.conditionalByKey = new Map(this.conditional.map((field) => [field.path.join("."), field]));
    this.controls = new Set(this.conditional.flatMap(({ when }) => Object.keys(when)));
    this.stash = new Map(); // "dataset.maxlen" -> the value it had before it stopped applying
  }

  setValue(value) {
    this.value = clone(value);
    this.stash = new Map();
    this.render();
  }

  // ---- what applies ---------------------------------------------------------------------------

  /** Does an x-applies-when hold for the value? (unknown when the field it reads is not set) */
  holds(when) {
    return Object.entries(when).every(([at, values]) => {
      const current = getAt(this.value, at.split("."));
      return current === undefined || current === null || !Array.isArray(values) || values.includes(current);
    });
  }

  hasErrorAt(field) {
    for (const key of this.errors.keys()) if (key === field || key.startsWith(`${field}.`)) return true;
    return false;
  }

  /** null: an unconditional field; else {applies, shown} for this conditional one. */
  applicability(path) {
    const field = this.conditionalByKey.get(path.join("."));
    if (!field) return null;
    const applies = this.holds(field.when);
    const shown = applies || !isDefault(field.shape, getAt(this.value, path)) || this.hasErrorAt(["spec", ...path].join("."));
    return { applies, shown, when: field.when };
  }

  /** After a field a condition reads changed: reset what stopped applying, restore what applies again. */
  applyConditions(changed) {
    for (const field of this.conditional) {
      if (!Object.hasOwn(field.when, changed)) continue;
      const parent = getAt(this.value, field.path.slice(0, -1));
      if (!isObject(parent)) continue;
      const key = field.path.join(".");
      const current = getAt(this.value, field.path);
      if (!this.holds(field.when)) {
        if (isDefault(field.shape, current)) continue;
        this.stash.set(key, clone(current));
        setAt(this.value, field.path, field.shape.hasDefault ? clone(field.shape.default) : undefined);
      } else if (this.stash.has(key)) {
        if (isDefault(field.shape, current)) setAt(this.value, field.path, this.stash.get(key));
        this.stash.delete(key);
      }
    }
  }

  /** Unfold the sections around a node (to show an error or a field in them). */
  openAround(node) {
    let at = node && node.parentElement;
    while (at && at !== this.root) {
      if (at.tagName === "DETAILS") at.open = true; // the next redraw reads it from the page
      at = at.parentElement;
    }
  }

  // ---- errors ---------------------------------------------------------------------------------

  /** Show errors next to their fields; returns the ones no field could take. */
  showErrors(errors) {
    this.errors = new Map();
    const unplaced = [];
    for (const { field: given, message } of errors) {
      const field = this.normalisePath(given);
      const target = this.closestField(field);
      if (!target) {
        unplaced.push({ field, message });
        continue;
      }
      const list = this.errors.get(field) || [];
      list.push(message);
      this.errors.set(field, list);
    }
    this.render();
    return unplaced;
  }

  clearErrors() {
    if (!this.errors.size) return;
    this.errors = new Map();
    for (const node of this.root.querySelectorAll(".sf-error")) node.remove();
    for (const node of this.root.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  /**
   * Drop the union tag pydantic puts in error paths: "spec.callbacks.0.EarlyStopping.patience"
   * -> "spec.callbacks.0.patience" (the object at spec.callbacks.0 has type "EarlyStopping").
   */
  normalisePath(field) {
    const parts = String(field).split(".");
    const out = [parts[0]];
    for (let i = 1; i < parts.length; i += 1) {
      const at = getAt(this.value, out.slice(1));
      const segment = parts[i];
      const isTag = isObject(at) && !Object.hasOwn(at, segment) && Object.values(at).some((v) => v === segment);
      if (!isTag) out.push(segment);
    }
    return out.join(".");
  }

  /** The field row for a dotted path, or for the nearest enclosing path that has one. */
  closestField(field) {
    const parts = String(field).split(".");
    while (parts.length > 1) {
      const found = this.root.querySelector(`[data-path="${CSS.escape(parts.join("."))}"]`);
      if (found) return found;
      parts.pop();
    }
    return null;
  }

  placeErrors() {
    for (const [field, messages] of this.errors) {
      const row = this.closestField(field);
      if (!row) continue;
      const slot = row.querySelector(":scope > .sf-errors") || row;
      for (const message of messages) {
        const where = row.dataset.path === field ? "" : `${field.slice(row.dataset.path.length + 1)}: `;
        slot.append(el("p", { className: "sf-error", dataset: { field }, role: "alert", text: where + message }));
      }
      const input = row.querySelector(":scope > .sf-control input, :scope > .sf-control select, :scope > .sf-control textarea");
      if (input) input.setAttribute("aria-invalid", "true");
      row.classList.add("has-error");
      this.openAround(row);
    }
  }

  /** Scroll to and focus the first field with an error. */
  revealFirstError() {
    const first = this.root.querySelector(".sf-error");
    if (!first) return false;
    this.openAround(first);
    const row = first.closest("[data-path]");
    const input = row && row.querySelector("input, select, textarea");
    first.scrollIntoView({ block: "center" });
    if (input) input.focus({ preventScroll: true });
    return true;
  }

  setDisabled(disabled, message = "") {
    this.disabled = disabled;
    this.root.classList.toggle("is-disabled", disabled);
    this.root.toggleAttribute("inert", disabled);
    const note = this.root.parentElement && this.root.parentElement.querySelector(".sf-disabled-note");
    if (note) {
      note.textContent = message;
      note.hidden = !disabled;
    }
  }

  // ---- editing --------------------------------------------------------------------------------

  set(path, value, { structural = false } = {}) {
    if (path.length === 0) this.value = value;
    else setAt(this.value, path, value);
    const key = path.join(".");
    if (this.controls.has(key)) {
      // e.g. the dataset: other fields appear or go, and those that no longer apply are reset
      this.applyConditions(key);
      structural = true;
    }
    const field = ["spec", ...path].join(".");
    if (this.errors.has(field)) {
      this.errors.delete(field);
      if (!structural) {
        const row = this.root.querySelector(`[data-path="${CSS.escape(field)}"]`);
        if (row) {
          row.classList.remove("has-error");
          for (const node of row.querySelectorAll(":scope > .sf-errors > .sf-error")) node.remove();
          for (const node of row.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
        }
      }
    }
    if (structural) this.render();
    this.onChange(this.value, { structural });
  }

  /** Redraw everything, keeping the focused control and the folded sections. */
  render() {
    const active = document.activeElement;
    const focusKey = active && this.root.contains(active) ? active.dataset.focus : null;
    const scrollY = window.scrollY;
    // what is unfolded on screen now: a details element's "toggle" event comes a task after the
    // click, so a redraw in between (a preset chosen at once) must not wait for it
    for (const shown of this.root.querySelectorAll("details.sf-section[data-section]")) {
      if (shown.open) this.opened.add(shown.dataset.section);
      else this.opened.delete(shown.dataset.section);
    }
    this.datalists = new Map();
    const form = this.renderRoot();
    this.root.replaceChildren(form, ...[...this.datalists.values()].map(({ node }) => node));
    this.placeErrors();
    if (focusKey) {
      const again = this.root.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
    window.scrollTo({ top: scrollY });
  }

  renderRoot() {
    const shape = this.shape;
    if (shape.kind !== "object") return this.renderField(shape, [], { label: "Spec" });
    const sections = [this.commonBlock()];
    const loose = [];
    for (const prop of shape.properties) {
      if (prop.shape.kind === "const") continue; // spec_version: kept as it is, nothing to choose
      const value = this.value[prop.name];
      const isSection = prop.shape.kind === "object" || prop.shape.kind === "list" || prop.shape.kind === "tagged";
      if (isSection) sections.push(this.section(prop, value));
      else loose.push(prop);
    }
    if (loose.length) {
      const body = this.propertyRows(loose, []);
      sections.push(this.sectionShell("other", "Runtime and outputs", body));
    }
    return el("div", { className: "sf-root" }, sections);
  }

  /** The common fields, in the order given, before the folded sections. */
  commonBlock() {
    const rows = [];
    for (const path of this.common) {
      let shape = this.shape;
      let prop = null;
      for (const name of path) {
        prop = shape && shape.kind === "object" ? shape.properties.find((p) => p.name === name) : null;
        if (!prop) break;
        shape = prop.shape;
      }
      if (!prop) continue;
      // out of its section a field's name may not say enough: "Name" of dataset is "Dataset"
      const label = prop.name === "name" && path.length > 1 ? prettyName(path[path.length - 2]) : prettyName(prop.name);
      rows.push(this.renderField(prop.shape, path, { label, required: prop.required, name: prop.name }));
    }
    return rows.length ? el("div", { className: "sf-common", dataset: { section: "common" } }, rows) : null;
  }

  /**
   * Rows for these properties of the object at path: the common ones are drawn first instead,
   * those that do not apply are left out (and named in a note), those that do not apply but hold
   * a value are drawn with a warning.
   */
  propertyRows(properties, path) {
    const rows = [];
    const hidden = [];
    let hiddenWhen = null;
    for (const prop of properties) {
      const propPath = [...path, prop.name];
      if (this.commonKeys.has(propPath.join("."))) continue;
      const applicability = this.applicability(propPath);
      if (applicability && !applicability.shown) {
        hidden.push(prettyName(prop.name));
        hiddenWhen = applicability.when;
        continue;
      }
      const row = this.renderProperty(prop, path);
      if (applicability && !applicability.applies) {
        row.classList.add("sf-not-applicable");
        row.append(el("p", { className: "sf-hint sf-warning", text: `Does not apply when ${this.conditionText(applicability.when)}: clear it, or the run may be refused.` }));
      }
      rows.push(row);
    }
    if (hidden.length) {
      const text = `Not shown, as they do not apply when ${this.conditionText(hiddenWhen)}: ${hidden.join(", ")}.`;
      rows.push(el("p", { className: "sf-hint sf-hidden-note", dataset: { hidden: hidden.join(",") }, text }));
    }
    return rows;
  }

  /** "dataset.name is digits" for {"dataset.name": [...]}, read from the value. */
  conditionText(when) {
    return Object.keys(when)
      .map((at) => `${at} is ${String(getAt(this.value, at.split(".")))}`)
      .join(" and ");
  }

  /** The id of a datalist offering these values (one per distinct list). */
  datalist(values) {
    const key = values.join("\u0000");
    if (!this.datalists.has(key)) {
      const id = `sf-options-${this.datalists.size + 1}`;
      const node = el("datalist", { id }, values.map((value) => el("option", { value })));
      this.datalists.set(key, { id, node });
    }
    return this.datalists.get(key).id;
  }

  sectionShell(key, title, body) {
    return el(
      "details",
      { className: "sf-section", dataset: { section: key }, open: this.opened.has(key) },
      el("summary", {}, el("span", { className: "sf-section-title", text: title })),
      el("div", { className: "sf-section-body" }, body),
    );
  }

  section(prop, value) {
    const path = [prop.name];
    const title = prettyName(prop.name);
    if (prop.shape.kind === "object" && !prop.shape.nullable) {
      const body = this.objectBody(prop.shape, path, value);
      return this.sectionShell(prop.name, title, [el("div", { className: "sf-group", dataset: { path: `spec.${prop.name}` } }, body, el("div", { className: "sf-errors" }))]);
    }
    return this.sectionShell(prop.name, title, [this.renderProperty(prop, [])]);
  }

  renderProperty(prop, parentPath) {
    const path = [...parentPath, prop.name];
    return this.renderField(prop.shape, path, { label: prettyName(prop.name), required: prop.required, name: prop.name });
  }

  /** One field of any kind: label, control, hint, error slot. */
  renderField(shape, path, { label, required = false, name = "" } = {}) {
    const value = getAt(this.value, path);
    switch (shape.kind) {
      case "object":
        return this.objectField(shape, path, value, label);
      case "map":
        return this.row(shape, path, label, this.kvEditor(shape.value, path, value, { noun: "entry" }), { block: true });
      case "list":
        return this.listField(shape, path, value, label, name);
      case "tagged":
        return this.taggedField(shape, path, value, label);
      case "union":
        return this.unionField(shape, path, value, label);
      case "const":
        if (shape.nullable) {
          // one allowed value or nothing: e.g. validation_data "test" | null
          const focus = ["spec", ...path].join(".");
          const options = [["", "not set", null], [JSON.stringify(shape.value), String(shape.value), shape.value]];
          return this.row(shape, path, label, this.selectControl(path, value, options, focus, focus));
        }
        return this.row(shape, path, label, el("code", { text: JSON.stringify(shape.value) }));
      default:
        return this.row(shape, path, label, this.scalarControl(shape, path, value, { label, required }));
    }
  }

  row(shape, path, label, control, { block = false, extraHint = "" } = {}) {
    const id = idFor(path);
    const hint = [shape.description, rangeText(shape.schema || {}), extraHint].filter(Boolean).join(" · ");
    const labelNode = control.matches && control.matches("input, select, textarea")
      ? el("label", { className: "sf-label", for: id, text: label })
      : el("span", { className: "sf-label", id: `${id}-label`, text: label });
    if (control.matches && control.matches("input, select, textarea")) control.id = id;
    return el(
      "div",
      { className: `sf-field${block ? " sf-block" : ""}`, dataset: { path: ["spec", ...path].join("."), kind: shape.kind } },
      labelNode,
      el("div", { className: "sf-control" }, control),
      hint ? el("p", { className: "sf-hint", title: hint, text: hint }) : null,
      el("div", { className: "sf-errors" }),
    );
  }

  // ---- scalars --------------------------------------------------------------------------------

  scalarControl(shape, path, value, { label, required }) {
    const focus = ["spec", ...path].join(".");
    const name = focus;
    const unset = value === null || value === undefined;
    const defaultText = shape.hasDefault && shape.default !== null ? `default ${JSON.stringify(shape.default)}` : "";
    // cleared: null where the schema allows it, else no key (the server's default, or its
    // "field required" next to this field)
    const emptyValue = () => (shape.nullable ? null : undefined);
    switch (shape.kind) {
      case "number":
      case "integer": {
        const s = shape.schema;
        const input = el("input", {
          type: "number",
          name,
          inputmode: shape.kind === "integer" ? "numeric" : "decimal",
          step: shape.kind === "integer" ? "1" : "any",
          min: typeof s.minimum === "number" ? s.minimum : typeof s.exclusiveMinimum === "number" && shape.kind === "integer" ? s.exclusiveMinimum + 1 : null,
          max: typeof s.maximum === "number" ? s.maximum : typeof s.exclusiveMaximum === "number" && shape.kind === "integer" ? s.exclusiveMaximum - 1 : null,
          placeholder: unset ? (shape.nullable ? "not set" : defaultText) : null,
          dataset: { focus },
        });
        input.value = typeof value === "number" ? String(value) : "";
        input.addEventListener("input", () => {
          const text = input.value.trim();
          if (text === "") {
            // a half-typed number ("1e", "-") reads as empty: keep the value until it parses
            if (input.validity.badInput) return;
            this.set(path, emptyValue());
            return;
          }
          const number = Number(text);
          if (Number.isFinite(number)) this.set(path, number);
        });
        return input;
      }
      case "boolean": {
        if (shape.nullable) return this.selectControl(path, value, [["", "not set", null], ["true", "true", true], ["false", "false", false]], focus, name);
        const input = el("input", { type: "checkbox", name, dataset: { focus } });
        input.checked = value === undefined ? Boolean(shape.default) : Boolean(value);
        input.addEventListener("change", () => this.set(path, input.checked));
        return input;
      }
      case "enum": {
        const options = shape.options.map((option) => [JSON.stringify(option), String(option), option]);
        if (shape.nullable) options.unshift(["", "not set", null]);
        else if (value === undefined) options.unshift(["", `default (${shape.default ?? "none"})`, undefined]);
        return this.selectControl(path, value, options, focus, name);
      }
      case "scalarList":
        return this.scalarListControl(shape, path, value, focus, name);
      case "string": {
        const input = el("input", {
          type: "text",
          name,
          autocomplete: "off",
          spellcheck: "false",
          placeholder: unset ? (shape.nullable ? "not set" : defaultText) : null,
          dataset: { focus },
        });
        input.value = typeof value === "string" ? value : "";
        const options = this.suggest(path);
        if (options) input.setAttribute("list", this.datalist(options));
        input.addEventListener("input", () => {
          this.set(path, input.value === "" && !required ? emptyValue() : input.value);
        });
        return input;
      }
      default:
        return this.jsonControl(path, value, focus, name);
    }
  }

  selectControl(path, value, options, focus, name) {
    const select = el("select", { name, dataset: { focus } });
    const same = (v) => (v === undefined ? value === undefined : JSON.stringify(v) === JSON.stringify(value));
    options.forEach(([, text], index) => select.append(el("option", { value: String(index), text })));
    let chosen = Math.max(0, options.findIndex(([, , v]) => same(v)));
    if (value !== undefined && value !== null && !options.some(([, , v]) => same(v))) {
      // a value the schema does not list (older spec): keep it selectable
      select.append(el("option", { value: String(options.length), text: `${String(value)} (not in the list)` }));
      options.push([JSON.stringify(value), String(value), value]);
      chosen = options.length - 1;
    }
    select.value = String(chosen);
    select.addEventListener("change", () => this.set(path, options[Number(select.value)][2]));
    return select;
  }

  scalarListControl(shape, path, value, focus, name) {
    const item = shape.item || {};
    if (item.kind === "enum") {
      // each allowed value as a checkbox, kept in the schema's order
      const current = Array.isArray(value) ? value : [];
      const box = el("div", { className: "sf-checks", role: "group" });
      for (const option of item.options) {
        const input = el("input", { type: "checkbox", name, value: String(option), dataset: { focus: `${focus}:${option}` } });
        input.checked = current.includes(option);
        input.addEventListener("change", () => {
          const now = Array.isArray(getAt(this.value, path)) ? getAt(this.value, path) : [];
          const next = item.options.filter((o) => (o === option ? input.checked : now.includes(o)));
          this.set(path, next);
        });
        box.append(el("label", { className: "sf-check" }, input, ` ${option}`));
      }
      return box;
    }
    const input = el("input", {
      type: "text",
      name,
      autocomplete: "off",
      spellcheck: "false",
      placeholder: value === null || value === undefined ? (shape.nullable ? "not set" : "comma-separated") : null,
      dataset: { focus },
    });
    input.value = Array.isArray(value) ? value.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ") : "";
    input.addEventListener("input", () => {
      const parts = input.value.split(",").map((p) => p.trim()).filter(Boolean);
      if (!parts.length) {
        this.set(path, shape.nullable ? null : []);
        return;
      }
      const numeric = item.kind === "number" || item.kind === "integer" || (item.kind === "auto" && parts.every((p) => p !== "" && Number.isFinite(Number(p))));
      this.set(path, parts.map((p) => (numeric && Number.isFinite(Number(p)) ? Number(p) : item.kind === "boolean" ? p === "true" : p)));
    });
    return input;
  }

  jsonControl(path, value, focus, name) {
    const input = el("input", { type: "text", className: "mono", name, autocomplete: "off", spellcheck: "false", dataset: { focus } });
    input.value = value === undefined ? "" : jsonValueText(value);
    input.addEventListener("input", () => this.set(path, input.value.trim() === "" ? null : parseJsonValue(input.value)));
    return input;
  }

  // ---- objects, maps --------------------------------------------------------------------------

  objectBody(shape, path, value) {
    const current = isObject(value) ? value : {};
    // the tag of a tagged object is its type select
    const properties = shape.properties.filter((prop) => !(prop.shape.kind === "const" && (prop.name === "type" || prop.name === "name")));
    const rows = this.propertyRows(properties, path);
    if (shape.extra) {
      const known = new Set(shape.properties.map((p) => p.name));
      rows.push(
        el(
          "div",
          { className: "sf-field sf-block sf-extra", dataset: { kind: "extra" } },
          el("span", { className: "sf-label", text: "Arguments" }),
          el("div", { className: "sf-control" }, this.kvEditor(shape.extra, path, current, { skip: known, noun: "argument" })),
        ),
      );
    }
    return el("div", { className: "sf-object-body" }, rows);
  }

  objectField(shape, path, value, label) {
    const field = ["spec", ...path].join(".");
    const present = isObject(value);
    const legend = el("legend", { className: "sf-legend" });
    if (shape.nullable) {
      const toggle = el("input", { type: "checkbox", dataset: { focus: `${field}:use` }, "aria-label": `Use ${label}` });
      toggle.checked = present;
      toggle.addEventListener("change", () => this.set(path, toggle.checked ? defaultFor({ ...shape, hasDefault: false }) : null, { structural: true }));
      legend.append(el("label", { className: "sf-check" }, toggle, ` ${label}`));
    } else {
      legend.textContent = label;
    }
    const hint = shape.description ? el("p", { className: "sf-hint", title: shape.description, text: shape.description }) : null;
    return el(
      "fieldset",
      { className: `sf-object${present ? "" : " is-unset"}`, dataset: { path: field, kind: "object" } },
      legend,
      hint,
      present ? this.objectBody(shape, path, value) : null,
      el("div", { className: "sf-errors" }),
    );
  }

  /** Key/value rows; values are JSON (bare words are strings). Keys in `skip` are not shown. */
  kvEditor(valueShape, path, value, { skip = new Set(), noun = "entry" } = {}) {
    const field = ["spec", ...path].join(".");
    const current = isObject(value) ? value : {};
    const rows = el("div", { className: "sf-kv-rows" });
    const entries = Object.entries(current).filter(([key]) => !skip.has(key));

    const readRows = () => {
      const pairs = [];
      const seen = new Set();
      let duplicate = null;
      for (const row of rows.children) {
        const key = row.querySelector(".sf-kv-key").value.trim();
        const text = row.querySelector(".sf-kv-value").value;
        if (!key) continue;
        if (seen.has(key) || skip.has(key)) duplicate = key;
        seen.add(key);
        pairs.push([key, parseJsonValue(text)]);
      }
      return { pairs, duplicate };
    };
    const write = () => {
      const { pairs, duplicate } = readRows();
      status.textContent = duplicate ? `"${duplicate}" is given twice; only the last one counts.` : "";
      const base = isObject(getAt(this.value, path)) ? getAt(this.value, path) : {};
      const next = {};
      for (const [key, v] of Object.entries(base)) if (skip.has(key)) next[key] = v;
      for (const [key, v] of pairs) next[key] = v;
      this.set(path, next);
    };
    const addRow = (key, v, index) => {
      const keyInput = el("input", {
        type: "text",
        className: "sf-kv-key mono",
        value: key,
        placeholder: "name",
        autocomplete: "off",
        spellcheck: "false",
        "aria-label": `${prettyName(noun)} name`,
        dataset: { focus: `${field}:key:${index}` },
      });
      const valueInput = el("input", {
        type: "text",
        className: "sf-kv-value mono",
        placeholder: "value (JSON or text)",
        autocomplete: "off",
        spellcheck: "false",
        "aria-label": key ? `Value of ${key}` : `${prettyName(noun)} value`,
        dataset: { focus: `${field}:value:${index}` },
      });
      valueInput.value = v === undefined ? "" : jsonValueText(v);
      keyInput.addEventListener("input", write);
      valueInput.addEventListener("input", write);
      const remove = el("button", {
        type: "button",
        className: "icon-button",
        title: `Remove ${noun}`,
        "aria-label": key ? `Remove ${noun} ${key}` : `Remove ${noun}`,
        dataset: { action: "remove-entry" },
        text: "✕",
      });
      remove.addEventListener("click", () => {
        row.remove();
        write();
      });
      const row = el("div", { className: "sf-kv-row", dataset: { path: key ? `${field}.${key}` : undefined } }, keyInput, el("span", { className: "muted", text: "=" }), valueInput, remove, el("div", { className: "sf-errors" }));
      rows.append(row);
      return row;
    };
    entries.forEach(([key, v], index) => addRow(key, v, index));
    const status = el("p", { className: "sf-hint sf-kv-status", role: "status" });
    const add = el("button", { type: "button", className: "button small", dataset: { action: "add-entry" }, text: `+ Add ${noun}` });
    add.addEventListener("click", () => {
      const row = addRow("", undefined, rows.children.length);
      row.querySelector(".sf-kv-key").focus();
    });
    return el("div", { className: "sf-kv", dataset: { path: field } }, rows, el("div", { className: "sf-kv-foot" }, add, status));
  }

  // ---- lists ----------------------------------------------------------------------------------

  listField(shape, path, value, label, name) {
    const field = ["spec", ...path].join(".");
    const items = Array.isArray(value) ? value : null;
    const noun = singular(name || label.toLowerCase()).replace(/_/g, " ");
    const newItem = () => {
      const template = this.newItems[path.join(".")];
      if (template) return clone(template);
      if (shape.item.kind === "tagged") return tagDefault(shape.item, shape.item.branches[0]);
      return defaultFor(shape.item);
    };
    const list = el("ol", { className: "sf-items" });
    (items || []).forEach((item, index) => list.append(this.listItem(shape, path, items, index, noun)));
    const add = el("button", {
      type: "button",
      className: "button small",
      dataset: { action: "add", focus: `${field}:add` },
      text: `+ Add ${noun}`,
    });
    add.addEventListener("click", () => {
      const now = Array.isArray(getAt(this.value, path)) ? getAt(this.value, path) : [];
      this.set(path, [...now, newItem()], { structural: true });
      const added = this.root.querySelector(`[data-path="${CSS.escape(`${field}.${now.length}`)}"] input, [data-path="${CSS.escape(`${field}.${now.length}`)}"] select`);
      if (added) added.focus();
    });
    const foot = [add];
    if (shape.nullable && items !== null) {
      const clear = el("button", { type: "button", className: "link-button", dataset: { action: "unset" }, text: `No ${label.toLowerCase()}` });
      clear.addEventListener("click", () => this.set(path, null, { structural: true }));
      if (!items.length) foot.push(clear);
    }
    const empty = items && items.length ? null : el("p", { className: "sf-empty muted", text: items === null ? "Not set." : `No ${noun}s.` });
    const hint = [shape.description, shape.minItems ? `at least ${shape.minItems}` : ""].filter(Boolean).join(" · ");
    return el(
      "div",
      { className: "sf-field sf-block sf-list", dataset: { path: field, kind: "list" } },
      el("div", { className: "sf-list-head" }, el("span", { className: "sf-label", text: label }), items ? el("span", { className: "muted sf-count", text: `${items.length}` }) : null),
      hint ? el("p", { className: "sf-hint", title: hint, text: hint }) : null,
      el("div", { className: "sf-errors" }),
      list,
      empty,
      el("div", { className: "sf-list-foot" }, foot),
    );
  }

  listItem(shape, path, items, index, noun) {
    const itemPath = [...path, index];
    const field = ["spec", ...itemPath].join(".");
    const item = items[index];
    const move = (to) => {
      const next = [...items];
      const [moved] = next.splice(index, 1);
      next.splice(to, 0, moved);
      this.moveErrors(path, index, to);
      this.set(path, next, { structural: true });
      const button = this.root.querySelector(`[data-focus="${CSS.escape(`${["spec", ...path, to].join(".")}:${to < index ? "up" : "down"}`)}"]`);
      const fallback = this.root.querySelector(`[data-path="${CSS.escape(["spec", ...path, to].join("."))}"] .sf-item-title`);
      if (button && !button.disabled) button.focus();
      else if (fallback) fallback.focus();
    };
    const button = (action, text, title, disabled, handler) => {
      const node = el("button", {
        type: "button",
        className: "icon-button",
        title,
        "aria-label": `${title} (${noun} ${index + 1})`,
        disabled,
        dataset: { action, focus: `${field}:${action}` },
        text,
      });
      node.addEventListener("click", handler);
      return node;
    };
    const title = el("span", { className: "sf-item-title", tabindex: "-1" }, el("span", { className: "sf-item-index", text: `${index + 1}` }), " ", el("span", { className: "sf-item-summary", text: itemSummary(item) }));
    const head = el(
      "div",
      { className: "sf-item-head" },
      title,
      el(
        "div",
        { className: "sf-item-actions" },
        button("up", "↑", "Move up", index === 0, () => move(index - 1)),
        button("down", "↓", "Move down", index === items.length - 1, () => move(index + 1)),
        button("remove", "✕", "Remove", false, () => {
          const next = items.filter((_, i) => i !== index);
          this.dropErrors(path, index);
          this.set(path, next, { structural: true });
        }),
      ),
    );
    let body;
    const itemShape = shape.item;
    if (itemShape.kind === "tagged") body = this.taggedBody(itemShape, itemPath, item, `${noun} type`);
    else if (itemShape.kind === "object") body = this.objectBody(itemShape, itemPath, item);
    else body = this.renderField(itemShape, itemPath, { label: prettyName(noun) });
    // live summary: retitle the item as its fields change, without a redraw
    body.addEventListener("input", () => {
      title.querySelector(".sf-item-summary").textContent = itemSummary(getAt(this.value, itemPath));
    });
    body.addEventListener("change", () => {
      title.querySelector(".sf-item-summary").textContent = itemSummary(getAt(this.value, itemPath));
    });
    return el("li", { className: "sf-item", dataset: { path: field, index: String(index) } }, head, body, el("div", { className: "sf-errors" }));
  }

  /** Errors follow an item that moves (they were shown for the spec as submitted). */
  moveErrors(path, from, to) {
    const prefix = ["spec", ...path].join(".");
    const order = [...Array(Math.max(from, to) + 1).keys()];
    const [moved] = order.splice(from, 1);
    order.splice(to, 0, moved);
    const renamed = new Map();
    for (const [field, messages] of this.errors) {
      const match = field.startsWith(`${prefix}.`) ? /^(\d+)(.*)$/.exec(field.slice(prefix.length + 1)) : null;
      if (match && Number(match[1]) < order.length) {
        renamed.set(`${prefix}.${order.indexOf(Number(match[1]))}${match[2]}`, messages);
      } else {
        renamed.set(field, messages);
      }
    }
    this.errors = renamed;
  }

  dropErrors(path, index) {
    const prefix = ["spec", ...path].join(".");
    const renamed = new Map();
    for (const [field, messages] of this.errors) {
      const match = field.startsWith(`${prefix}.`) ? /^(\d+)(.*)$/.exec(field.slice(prefix.length + 1)) : null;
      if (!match) renamed.set(field, messages);
      else if (Number(match[1]) > index) renamed.set(`${prefix}.${Number(match[1]) - 1}${match[2]}`, messages);
      else if (Number(match[1]) < index) renamed.set(field, messages);
    }
    this.errors = renamed;
  }

  // ---- unions ---------------------------------------------------------------------------------

  taggedBody(shape, path, value, label) {
    const field = ["spec", ...path].join(".");
    const current = isObject(value) ? shape.branches.find((b) => b.tag === value[shape.prop]) : null;
    const select = el("select", { name: `${field}.${shape.prop}`, "aria-label": prettyName(label), dataset: { focus: `${field}:tag` } });
    for (const branch of shape.branches) select.append(el("option", { value: branch.tag, text: branch.tag }));
    if (!current) select.prepend(el("option", { value: "", text: value ? `unknown: ${String(value[shape.prop])}` : "choose…" }));
    select.value = current ? current.tag : "";
    select.addEventListener("change", () => {
      const branch = shape.branches.find((b) => b.tag === select.value);
      if (branch) this.set(path, tagDefault(shape, branch), { structural: true });
    });
    const tagRow = el(
      "div",
      { className: "sf-field", dataset: { path: `${field}.${shape.prop}`, kind: "tag" } },
      el("label", { className: "sf-label", for: idFor([...path, shape.prop]), text: prettyName(label) }),
      el("div", { className: "sf-control" }, select),
      current && current.description ? el("p", { className: "sf-hint", title: current.description, text: current.description }) : null,
      el("div", { className: "sf-errors" }),
    );
    select.id = idFor([...path, shape.prop]);
    return el("div", { className: "sf-tagged" }, tagRow, current ? this.objectBody(current, path, value) : null);
  }

  taggedField(shape, path, value, label) {
    const field = ["spec", ...path].join(".");
    if (shape.nullable) {
      const choices = [["", "not set"], ...shape.branches.map((b) => [b.tag, b.tag])];
      const select = el("select", { name: field, dataset: { focus: `${field}:tag` } });
      for (const [v, text] of choices) select.append(el("option", { value: v, text }));
      select.value = isObject(value) && shape.branches.some((b) => b.tag === value[shape.prop]) ? value[shape.prop] : "";
      select.addEventListener("change", () => {
        const branch = shape.branches.find((b) => b.tag === select.value);
        this.set(path, branch ? tagDefault(shape, branch) : null, { structural: true });
      });
      const current = isObject(value) ? shape.branches.find((b) => b.tag === value[shape.prop]) : null;
      const row = this.row(shape, path, label, select, { block: Boolean(current) });
      if (current) row.append(el("div", { className: "sf-nested" }, this.objectBody(current, path, value)));
      return row;
    }
    return el("div", { className: "sf-field sf-block", dataset: { path: field, kind: "tagged" } }, this.taggedBody(shape, path, value, label), el("div", { className: "sf-errors" }));
  }

  unionField(shape, path, value, label) {
    const field = ["spec", ...path].join(".");
    const labels = shape.branches.map((branch) => {
      if (branch.kind === "const") return String(branch.value);
      if (branch.kind === "object") return (branch.title || "object").replace(/Spec$/, "");
      if (branch.kind === "map") return "per-key values";
      if (branch.kind === "string") return "name";
      return branch.kind;
    });
    let index = value === null || value === undefined ? -1 : shape.branches.findIndex((b) => matches(b, value));
    const select = el("select", { name: `${field}:variant`, "aria-label": `${label}: kind`, dataset: { focus: `${field}:variant` } });
    if (shape.nullable || index === -1) select.append(el("option", { value: "-1", text: shape.nullable ? "not set" : "choose…" }));
    labels.forEach((text, i) => select.append(el("option", { value: String(i), text })));
    if (index === -1 && value !== null && value !== undefined) {
      select.append(el("option", { value: "json", text: "other (JSON)" }));
    }
    select.value = index === -1 && value !== null && value !== undefined ? "json" : String(index);
    select.addEventListener("change", () => {
      const chosen = Number(select.value);
      this.set(path, chosen < 0 ? (shape.nullable ? null : undefined) : defaultFor(shape.branches[chosen]), { structural: true });
    });
    const branch = index >= 0 ? shape.branches[index] : null;
    let inner = null;
    if (branch && branch.kind === "object") inner = el("div", { className: "sf-nested" }, this.objectBody(branch, path, value));
    else if (branch && branch.kind === "map") inner = el("div", { className: "sf-nested" }, this.kvEditor(branch.value, path, value, { noun: "entry" }));
    else if (branch && branch.kind !== "const") inner = this.scalarControl(branch, path, value, { label, required: true });
    else if (index === -1 && value !== null && value !== undefined) inner = this.jsonControl(path, value, `${field}:json`, field);
    const control = el("div", { className: "sf-union" }, select, inner && !inner.classList.contains("sf-nested") ? inner : null);
    const row = this.row(shape, path, label, control, { block: Boolean(inner && inner.classList.contains("sf-nested")) });
    if (inner && inner.classList.contains("sf-nested")) row.append(inner);
    return row;
  }
}

export { KERAS_LAYERS };
