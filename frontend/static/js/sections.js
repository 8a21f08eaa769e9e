// Run page sections that only render what they are given: model summary, artifacts.

import { el, formatBytes, formatCount, timeElement } from "./format.js";

/** The layer table; `empty` is the placeholder it replaces. */
export function renderModelSummary(table, empty, summary) {
  if (!summary || !Array.isArray(summary.layers)) return;
  const shape = (value) => {
    if (Array.isArray(value) && value.every((v) => !Array.isArray(v))) {
      return `(${value.map((v) => (v === null ? "None" : v)).join(", ")}${value.length === 1 ? "," : ""})`;
    }
    return typeof value === "string" ? value : JSON.stringify(value);
  };
  table.tBodies[0].replaceChildren(
    ...summary.layers.map((layer) =>
      el(
        "tr",
        {},
        el("td", { text: layer.name }),
        el("td", { text: layer.class_name ?? layer.class ?? "" }),
        el("td", { className: "mono", text: shape(layer.output_shape) }),
        el("td", { className: "num", text: formatCount(layer.params) }),
      ),
    ),
  );
  const total = summary.total_params;
  const trainable = summary.trainable_params;
  const frozen = summary.non_trainable_params ?? (typeof total === "number" && typeof trainable === "number" ? total - trainable : null);
  const foot = [["Total params", total], ["Trainable params", trainable], ["Non-trainable params", frozen]];
  table.tFoot.replaceChildren(
    ...foot.map(([label, value]) =>
      el("tr", {}, el("th", { scope: "row", colspan: "3", text: label }), el("td", { className: "num", text: formatCount(value) })),
    ),
  );
  table.hidden = false;
  empty.hidden = true;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Download links for a run's files; only http(s) links are made. */
export function renderArtifacts(list, items, { finished, external = false }) {
  if (!items.length) {
    let text = finished
      ? "This run saved no artifacts."
      : "No artifacts yet: the trained model and its history are saved when training ends.";
    if (external) text = "None: a script's run keeps its model and files where it trained.";
    list.replaceChildren(
      el("li", {
        className: "muted",
        text,
      }),
    );
    return;
  }
  list.replaceChildren(
    ...items.map((item) => {
      const href = safeUrl(item.url);
      const name = href
        ? el("a", { href, download: item.name, text: item.name })
        : el("span", { text: item.name });
      return el(
        "li",
        { dataset: { kind: item.kind || "" } },
        name,
        el("span", { className: "tag", text: item.kind || "file" }),
        el("span", { className: "muted", text: formatBytes(item.size_bytes) }),
        timeElement(item.created_at),
      );
    }),
  );
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The `samples` event: a few training images per class; the section stays hidden without any. */
export function renderSamples(section, grid, sub, data) {
  const classes = data && Array.isArray(data.classes) ? data.classes : [];
  const format = data && data.format === "png" ? "png" : null;
  const cells = [];
  for (const item of classes) {
    const images = (Array.isArray(item.images) ? item.images : []).filter((b64) => typeof b64 === "string" && BASE64.test(b64));
    if (!format || !images.length) continue;
    const name = item.name ?? item.index ?? "";
    cells.push(
      el(
        "figure",
        { className: "sample-class", dataset: { index: String(item.index ?? "") } },
        el("div", { className: "sample-images" }, ...images.map((b64) => el("img", { src: `data:image/png;base64,${b64}`, alt: `class ${name}` }))),
        el("figcaption", { className: "sample-label", text: String(name) }),
      ),
    );
  }
  grid.replaceChildren(...cells);
  const shape = data && Array.isArray(data.image_shape) ? data.image_shape.join("×") : "";
  sub.textContent = cells.length ? `training images per class${shape ? ` · ${shape}` : ""}` : "";
  section.hidden = cells.length === 0;
}

/** "run #N" (a link) or "VGG16 (imagenet)" for model.base; hidden when there is none. */
export function renderBase(row, node, base) {
  if (!base || typeof base !== "object") {
    row.hidden = true;
    return;
  }
  const parts = [];
  const runId = Number(base.from_run);
  if (Number.isInteger(runId) && runId > 0) {
    parts.push(el("a", { href: `/runs/${runId}`, text: `run #${runId}` }));
  } else if (base.application) {
    parts.push(`${base.application} (${base.weights || "random weights"})`);
  } else {
    row.hidden = true;
    return;
  }
  if (base.trainable) parts.push(el("span", { className: "muted", text: " · trainable" }));
  node.replaceChildren(...parts);
  row.hidden = false;
}
