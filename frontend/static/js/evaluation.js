// Evaluation on the run page: confusion matrix heatmap and the classification report table.

import { el, formatCount } from "./format.js";

// Light for few samples, dark for many (plotly.js's named "Blues" runs the other way).
const BLUES = [
  [0, "#f7fbff"],
  [0.125, "#deebf7"],
  [0.25, "#c6dbef"],
  [0.375, "#9ecae1"],
  [0.5, "#6baed6"],
  [0.625, "#4292c6"],
  [0.75, "#2171b5"],
  [0.875, "#08519c"],
  [1, "#08306b"],
];
const SUMMARY_ROWS = ["accuracy", "macro avg", "weighted avg"];

function fixed3(value) {
  if (value === undefined) return "";
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(3) : "—";
}

/** Row-normalised copy of a matrix: each row sums to 1 (rows with no samples stay 0). */
export function normaliseRows(matrix) {
  return matrix.map((row) => {
    const total = row.reduce((sum, v) => sum + v, 0);
    return row.map((v) => (total ? v / total : 0));
  });
}

/** Draw the confusion matrix: x = predicted, y = true, each cell annotated. */
export function drawConfusionMatrix(div, evaluation, mode = "counts") {
  const names = evaluation.class_names.map(String);
  const counts = evaluation.confusion_matrix;
  const normalised = normaliseRows(counts);
  const z = mode === "normalized" ? normalised : counts;
  const text = mode === "normalized" ? normalised.map((row) => row.map((v) => v.toFixed(2))) : counts.map((row) => row.map(String));
  const trace = {
    type: "heatmap",
    x: names,
    y: names,
    z,
    text,
    texttemplate: "%{text}",
    customdata: counts,
    hovertemplate:
      "true %{y}, predicted %{x}<br>%{customdata} samples" +
      (mode === "normalized" ? " (%{z:.1%} of the row)" : "") +
      "<extra></extra>",
    colorscale: BLUES,
    zmin: 0,
    zmax: mode === "normalized" ? 1 : undefined,
    xgap: 1,
    ygap: 1,
    colorbar: { thickness: 12, title: { text: mode === "normalized" ? "share" : "count" } },
  };
  const layout = {
    margin: { l: 90, r: 10, t: 10, b: 70 },
    xaxis: { title: { text: "Predicted" }, type: "category", tickangle: names.some((n) => n.length > 3) ? -30 : 0 },
    yaxis: { title: { text: "True" }, type: "category", autorange: "reversed" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
  };
  Plotly.react(div, [trace], layout, { responsive: true, displaylogo: false });
}

function reportRow(label, metrics, { summary = false } = {}) {
  return el(
    "tr",
    { className: summary ? "summary-row" : null, dataset: { label } },
    el("th", { scope: "row", text: label }),
    el("td", { className: "num", text: fixed3(metrics.precision) }),
    el("td", { className: "num", text: fixed3(metrics.recall) }),
    el("td", { className: "num", text: fixed3(metrics["f1-score"]) }),
    el("td", { className: "num", text: metrics.support === undefined ? "" : formatCount(metrics.support) }),
  );
}

/** Fill the report table: classes in class_names order, then accuracy, macro and weighted avg. */
export function fillReportTable(table, evaluation) {
  const report = evaluation.report || {};
  const classes = evaluation.class_names.map(String).filter((name) => name in report);
  // Classes the report has but class_names lacks still get a row.
  for (const key of Object.keys(report)) {
    if (!classes.includes(key) && !SUMMARY_ROWS.includes(key)) classes.push(key);
  }
  const rows = classes.map((name) => reportRow(name, report[name]));
  if (typeof report.accuracy === "number") {
    const support = report["macro avg"] ? report["macro avg"].support : undefined;
    rows.push(reportRow("accuracy", { "f1-score": report.accuracy, support }, { summary: true }));
  }
  for (const key of ["macro avg", "weighted avg"]) {
    if (report[key]) rows.push(reportRow(key, report[key], { summary: true }));
  }
  table.tBodies[0].replaceChildren(...rows);
}

/**
 * The slider above the heatmap for runs evaluated at every epoch (spec evaluation.every_epoch):
 * one position per evaluated epoch, oldest first, and the final evaluation last. While the
 * slider sits on its last position it follows new epochs (and the final evaluation) as they
 * arrive; moved back, it stays where the user put it.
 */
export class EpochEvaluations {
  constructor({ root, slider, label, fetchEpoch, onShow, onError }) {
    this.root = root;
    this.slider = slider;
    this.label = label;
    this.fetchEpoch = fetchEpoch;
    this.onShow = onShow;
    this.onError = onError;
    this.epochs = []; // [{epoch, split, accuracy}] ascending
    this.final = null; // the final evaluation, once there is one
    this.cache = new Map(); // epoch -> evaluation
    this.index = -1;
    this.request = 0;
    slider.addEventListener("input", () => this.select(Number(slider.value)));
  }

  get entries() {
    return [...this.epochs.map((e) => ({ kind: "epoch", ...e })), ...(this.final ? [{ kind: "final" }] : [])];
  }

  /** Epochs listed by GET /evaluation/epochs (history when the page opens). */
  setEpochs(items) {
    for (const item of items) this.addEpoch(item, { show: false });
    this.refresh({ follow: true });
  }

  /** One epoch's summary, from the list or a live `epoch_evaluation` event. */
  addEpoch(item, { show = true } = {}) {
    if (!item || !Number.isInteger(item.epoch)) return;
    const following = this.following();
    this.cache.delete(item.epoch); // a re-sent epoch replaces the stored one
    const at = this.epochs.findIndex((e) => e.epoch >= item.epoch);
    if (at >= 0 && this.epochs[at].epoch === item.epoch) this.epochs[at] = item;
    else if (at >= 0) this.epochs.splice(at, 0, item);
    else this.epochs.push(item);
    if (show) this.refresh({ follow: following });
  }

  /** The final evaluation: always the last position. */
  setFinal(evaluation) {
    const following = this.following();
    this.final = evaluation;
    this.refresh({ follow: following });
  }

  following() {
    return this.index < 0 || this.index >= this.entries.length - 1;
  }

  refresh({ follow }) {
    const count = this.entries.length;
    // a slider only where there is something to choose: epochs were evaluated
    this.root.hidden = this.epochs.length === 0;
    this.slider.max = String(Math.max(0, count - 1));
    if (count === 0) return;
    const index = follow ? count - 1 : Math.min(this.index, count - 1);
    if (index !== this.index || follow) this.select(index);
  }

  /** Show the entry at a slider position (fetching an epoch's matrix once). */
  async select(index) {
    const entry = this.entries[index];
    if (!entry) return;
    this.index = index;
    this.slider.value = String(index);
    this.slider.setAttribute("aria-valuetext", this.describe(entry));
    this.label.textContent = this.describe(entry);
    const request = ++this.request;
    if (entry.kind === "final") {
      this.onShow(this.final, { epoch: null, of: this.epochs.length });
      return;
    }
    let evaluation = this.cache.get(entry.epoch);
    if (!evaluation) {
      try {
        evaluation = await this.fetchEpoch(entry.epoch);
      } catch (err) {
        if (request === this.request) this.onError(err);
        return;
      }
      this.cache.set(entry.epoch, evaluation);
    }
    if (request === this.request) this.onShow(evaluation, { epoch: entry.epoch, of: this.epochs.length });
  }

  describe(entry) {
    if (entry.kind === "final") return "Final evaluation";
    const accuracy = typeof entry.accuracy === "number" ? ` · accuracy ${entry.accuracy.toFixed(3)}` : "";
    return `Epoch ${entry.epoch}${accuracy}`;
  }
}
