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
export function renderArtifacts(list, items, { finished }) {
  if (!items.length) {
    list.replaceChildren(
      el("li", {
        className: "muted",
        text: finished
          ? "This run saved no artifacts."
          : "No artifacts yet: the trained model and its history are saved when training ends.",
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
