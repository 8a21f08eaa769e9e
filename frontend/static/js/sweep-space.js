// The New sweep form's pure parts: which spec fields a sweep can vary (from the spec's JSON
// Schema and the base spec), a parameter row's space as the API writes it, and the trial count.

import { analyse, isObject, matches } from "./schema.js";

/** A spec path as the sweeps API writes it: ["model", "layers", 1, "rate"] -> model.layers[1].rate */
export function pathText(parts) {
  let out = "";
  for (const part of parts) out += typeof part === "number" ? `[${part}]` : out ? `.${part}` : part;
  return out;
}

/**
 * Every numeric, enumerated or boolean field the base spec has, in the order of the schema:
 * [{path, type: "number" | "integer" | "enum", options, value, schema}].
 */
export function sweepableFields(schema, spec) {
  const out = [];
  // keys the schema leaves open (a Keras layer's arguments, a template's params): by their value
  const free = (value, parts, known) => {
    for (const [name, item] of Object.entries(value)) {
      if (known.has(name)) continue;
      const path = pathText([...parts, name]);
      if (typeof item === "boolean") out.push({ path, type: "enum", options: [true, false], value: item, schema: null });
      else if (typeof item === "number") out.push({ path, type: Number.isInteger(item) ? "integer" : "number", value: item, schema: null, free: true });
    }
  };
  const walk = (shape, value, parts) => {
    if (!shape) return;
    switch (shape.kind) {
      case "number":
      case "integer":
        out.push({ path: pathText(parts), type: shape.kind, value, schema: shape.schema });
        return;
      case "enum":
        out.push({ path: pathText(parts), type: "enum", options: shape.options, value, schema: shape.schema });
        return;
      case "boolean":
        out.push({ path: pathText(parts), type: "enum", options: [true, false], value, schema: shape.schema });
        return;
      case "object":
        if (!isObject(value)) return;
        for (const { name, shape: prop } of shape.properties) {
          if (name in value && prop.kind !== "const") walk(prop, value[name], [...parts, name]);
        }
        if (shape.extra) free(value, parts, new Set(shape.properties.map((p) => p.name)));
        return;
      case "map":
        if (isObject(value)) free(value, parts, new Set());
        return;
      case "tagged": {
        if (!isObject(value)) return;
        const branch = shape.branches.find((b) => b.tag === String(value[shape.prop]));
        walk(branch, value, parts);
        return;
      }
      case "union":
        walk(shape.branches.find((b) => matches(b, value)), value, parts);
        return;
      case "list":
        if (Array.isArray(value)) value.forEach((item, i) => walk(shape.item, item, [...parts, i]));
        return;
      default:
    }
  };
  walk(analyse(schema, schema), spec, []);
  return out;
}

/** "0.01, 0.001, relu, true" -> [0.01, 0.001, "relu", true]: JSON where it parses, else text. */
export function parseChoices(text) {
  return String(text)
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "")
    .map((item) => {
      try {
        return JSON.parse(item);
      } catch {
        return item;
      }
    });
}

const numberOrNull = (text) => (String(text).trim() === "" ? null : Number(text));

/**
 * One row of the form as the API's space entry: {choice}, {uniform}, {log_uniform}, {int, step}
 * or {int_log}. row: {kind: "choice" | "range" | "log", integer, values, low, high, step}.
 */
export function dimensionOf(row) {
  if (row.kind === "choice") return { choice: parseChoices(row.values) };
  const bounds = [numberOrNull(row.low), numberOrNull(row.high)];
  if (row.kind === "log") return row.integer ? { int_log: bounds } : { log_uniform: bounds };
  if (!row.integer) return { uniform: bounds };
  const step = numberOrNull(row.step);
  return step === null || step === 1 ? { int: bounds } : { int: bounds, step };
}

/** How many values a dimension has on a grid; null when it is not gridable (or incomplete). */
export function gridValues(dimension) {
  if (dimension.choice) return dimension.choice.length;
  if (dimension.int) {
    const [low, high] = dimension.int;
    const step = dimension.step ?? 1;
    if (![low, high, step].every(Number.isFinite) || high < low || step < 1) return null;
    return Math.floor((high - low) / step) + 1;
  }
  return null;
}

/**
 * The trial count of a sweep: {count} or {reason} when it cannot be said yet.
 * Grid: the product of each dimension's values, capped by max_trials; otherwise max_trials.
 */
export function trialCount(space, strategy, maxTrials) {
  const entries = Object.entries(space);
  if (!entries.length) return { reason: "Add a parameter to search." };
  if (strategy !== "grid") {
    return maxTrials ? { count: maxTrials } : { reason: `The ${strategy} strategy needs a number of max trials.` };
  }
  let points = 1;
  for (const [path, dimension] of entries) {
    const values = gridValues(dimension);
    if (values === null) {
      return { reason: `A grid needs choices or whole-number ranges: ${path} is ${dimension.int ? "incomplete" : "a continuous range"}.` };
    }
    points *= values;
  }
  return { count: maxTrials ? Math.min(maxTrials, points) : points, points };
}
