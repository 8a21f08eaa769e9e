// Reading a pydantic JSON Schema for the spec form: $ref, nullable anyOf, unions, defaults.
//
// analyse() turns a schema node into a "shape" the form knows how to draw:
//   {kind, schema, nullable, title, description, default, ...}
// kind: object | map | list | scalarList | tagged | union | enum | const | number | integer |
//       boolean | string | json

export const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
export const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

const META_KEYS = ["title", "description", "default"];

/** Follow a local "#/$defs/Name" reference; the referring node's title/description/default win. */
export function deref(root, node) {
  let current = node || {};
  const seen = new Set();
  while (current && typeof current.$ref === "string") {
    if (seen.has(current.$ref)) break;
    seen.add(current.$ref);
    const target = current.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((at, part) => (at ? at[decodeURIComponent(part)] : undefined), root);
    const { $ref, ...rest } = current;
    current = { ...(target || {}), ...rest };
  }
  return current;
}

function meta(node) {
  const out = {};
  for (const key of META_KEYS) if (key in node) out[key] = node[key];
  return out;
}

const isNullSchema = (node) => node && (node.type === "null" || (Array.isArray(node.type) && node.type.length === 1 && node.type[0] === "null"));

/** The shape of one schema node (see the module comment). */
export function analyse(root, node) {
  const s = deref(root, node);
  const base = {
    schema: s,
    nullable: false,
    title: s.title,
    description: s.description,
    hasDefault: "default" in s,
    default: s.default,
  };

  const alternatives = s.anyOf || (s.oneOf && !s.discriminator ? s.oneOf : null);
  if (Array.isArray(alternatives)) {
    const resolved = alternatives.map((alt) => deref(root, alt));
    const nonNull = resolved.filter((alt) => !isNullSchema(alt));
    const nullable = nonNull.length < resolved.length;
    const { anyOf, oneOf, ...outer } = s;
    if (nonNull.length === 1) {
      // title, description and default live on the anyOf; constraints on the branch
      const inner = analyse(root, { ...nonNull[0], ...outer });
      return { ...inner, nullable: nullable || inner.nullable, hasDefault: base.hasDefault || inner.hasDefault };
    }
    const branches = nonNull.map((alt) => analyse(root, alt));
    if (branches.length && branches.every((b) => b.kind === "scalarList")) {
      // e.g. a list of class labels given as integers or as names
      return { ...base, kind: "scalarList", item: { kind: "auto" }, nullable, minItems: s.minItems ?? s.minLength };
    }
    return { ...base, kind: "union", nullable, branches };
  }

  if (Array.isArray(s.oneOf) && s.discriminator) {
    const prop = s.discriminator.propertyName;
    const branches = s.oneOf.map((alt) => {
      const shape = analyse(root, alt);
      const tagSchema = shape.schema.properties ? deref(root, shape.schema.properties[prop]) : {};
      const tag = tagSchema.const ?? (tagSchema.enum ? tagSchema.enum[0] : shape.title);
      return { ...shape, tag: String(tag) };
    });
    return { ...base, kind: "tagged", prop, branches };
  }

  if ("const" in s) return { ...base, kind: "const", value: s.const };
  if (Array.isArray(s.enum)) return { ...base, kind: "enum", options: s.enum };

  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  if (Array.isArray(s.type) && s.type.includes("null")) base.nullable = true;
  switch (type) {
    case "integer":
    case "number":
      return { ...base, kind: type };
    case "boolean":
      return { ...base, kind: "boolean" };
    case "string":
      return { ...base, kind: "string" };
    case "array": {
      const item = analyse(root, s.items || {});
      const scalar = ["enum", "number", "integer", "string", "boolean", "const"].includes(item.kind);
      return {
        ...base,
        kind: scalar ? "scalarList" : "list",
        item,
        minItems: s.minItems,
        maxItems: s.maxItems,
      };
    }
    case "object":
    case undefined: {
      if (type === undefined && !s.properties && !s.additionalProperties) return { ...base, kind: "json" };
      const properties = Object.entries(s.properties || {}).map(([name, prop]) => ({
        name,
        required: (s.required || []).includes(name),
        shape: analyse(root, prop),
      }));
      const extra = s.additionalProperties;
      const extraShape = extra === true || extra === undefined ? { kind: "json" } : extra ? analyse(root, extra) : null;
      if (!properties.length) return { ...base, kind: "map", value: extraShape || { kind: "json" } };
      return { ...base, kind: "object", properties, extra: extra ? extraShape : null };
    }
    default:
      return { ...base, kind: "json" };
  }
}

/** Does value fit this shape (to pick the union branch a value belongs to)? */
export function matches(shape, value) {
  switch (shape.kind) {
    case "const":
      return value === shape.value;
    case "enum":
      return shape.options.includes(value);
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "integer":
      return Number.isInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "list":
    case "scalarList":
      return Array.isArray(value);
    case "map":
      return isObject(value);
    case "object":
      return (
        isObject(value) &&
        shape.properties.every(({ name, shape: prop }) => prop.kind !== "const" || !(name in value) || value[name] === prop.value) &&
        (shape.extra || Object.keys(value).every((key) => shape.properties.some((p) => p.name === key)))
      );
    case "tagged":
      return isObject(value) && shape.branches.some((b) => b.tag === value[shape.prop]);
    case "union":
      return shape.branches.some((b) => matches(b, value));
    default:
      return true;
  }
}

/** A new value for a shape: its default, or the smallest value that has the right form. */
export function defaultFor(shape) {
  if (shape.hasDefault && !(shape.default === null && !shape.nullable)) return clone(shape.default);
  switch (shape.kind) {
    case "const":
      return clone(shape.value);
    case "enum":
      return shape.options[0];
    case "number":
    case "integer": {
      const s = shape.schema;
      if (typeof s.minimum === "number") return s.minimum;
      if (typeof s.exclusiveMinimum === "number") return shape.kind === "integer" ? s.exclusiveMinimum + 1 : s.exclusiveMinimum + 0.1;
      return 0;
    }
    case "boolean":
      return false;
    case "string":
      return "";
    case "list":
    case "scalarList":
      return [];
    case "map":
      return {};
    case "object": {
      const out = {};
      for (const { name, required, shape: prop } of shape.properties) {
        if (required || prop.hasDefault || prop.kind === "const") out[name] = defaultFor(prop);
      }
      return out;
    }
    case "tagged":
      return tagDefault(shape, shape.branches[0]);
    case "union":
      return defaultFor(shape.branches[0]);
    default:
      return null;
  }
}

/** A new member of a discriminated union, with its tag set. */
export function tagDefault(shape, branch) {
  return { ...defaultFor(branch), [shape.prop]: branch.tag };
}

/** "≥ 1 · ≤ 10000" from minimum/maximum and their exclusive forms. */
export function rangeText(schema) {
  const parts = [];
  if (typeof schema.minimum === "number") parts.push(`≥ ${schema.minimum}`);
  if (typeof schema.exclusiveMinimum === "number") parts.push(`> ${schema.exclusiveMinimum}`);
  if (typeof schema.maximum === "number") parts.push(`≤ ${schema.maximum}`);
  if (typeof schema.exclusiveMaximum === "number") parts.push(`< ${schema.exclusiveMaximum}`);
  return parts.join(", ");
}

// ---- paths into the value -------------------------------------------------------------------

export function getAt(value, path) {
  return path.reduce((at, key) => (at === null || at === undefined ? undefined : at[key]), value);
}

/** Set (or, with undefined, delete) the value at path; parents must exist. */
export function setAt(value, path, next) {
  const parent = getAt(value, path.slice(0, -1));
  const key = path[path.length - 1];
  if (parent === null || typeof parent !== "object") return;
  if (next === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else {
    parent[key] = next;
  }
}

/** Flatten a spec into dotted paths and leaf values (lists of scalars stay one value). */
export function flatten(value, prefix = "", out = new Map()) {
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (!keys.length && prefix) out.set(prefix, value);
    for (const key of keys) flatten(value[key], prefix ? `${prefix}.${key}` : key, out);
  } else if (Array.isArray(value) && value.some((item) => item !== null && typeof item === "object")) {
    value.forEach((item, index) => flatten(item, `${prefix}.${index}`, out));
    if (!value.length) out.set(prefix, value);
  } else {
    out.set(prefix, value);
  }
  return out;
}
