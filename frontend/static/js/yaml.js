// The spec as YAML: js-yaml (MIT, vendored in /static/vendor) with the YAML 1.2 core schema,
// so every value is one JSON can hold (no dates, no "yes" booleans).

import { CORE_SCHEMA, dump, load } from "../vendor/js-yaml.mjs";

/** Block-style YAML of a JSON value, keys in their order, no line folding. */
export function toYaml(value) {
  return dump(value, { schema: CORE_SCHEMA, lineWidth: -1, noRefs: true, noCompatMode: true, indent: 2 });
}

/** {value} or {error, where: {line, column, position}} (1-based line and column). */
export function parseYaml(text) {
  try {
    return { value: load(text, { schema: CORE_SCHEMA }) };
  } catch (err) {
    const mark = err && err.mark;
    return {
      error: (err && (err.reason || err.message)) || String(err),
      where: mark ? { line: mark.line + 1, column: mark.column + 1, position: mark.position } : null,
    };
  }
}
