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
