// Training curves: history from /metrics, then live points from the stream, drawn with Plotly.
//
// Per-batch series use the global batch number as their step and per-epoch series the epoch
// number; both are drawn against epochs (batch step / steps per epoch) so they line up.

const COLORS = {
  train: [31, 119, 180],
  val: [230, 85, 13],
  lr: [44, 160, 44],
};

const rgba = ([r, g, b], alpha) => `rgba(${r}, ${g}, ${b}, ${alpha})`;

/** The three plots on the run page: which series go where. */
export const PLOTS = [
  { id: "loss-plot", title: "loss", batchKey: "batch/loss", epochKey: "loss", valKey: "val_loss", color: COLORS.train },
  {
    id: "accuracy-plot",
    title: "accuracy",
    batchKey: "batch/accuracy",
    epochKey: "accuracy",
    valKey: "val_accuracy",
    color: COLORS.train,
  },
  { id: "lr-plot", title: "learning rate", batchKey: "batch/lr", epochKey: "lr", valKey: null, color: COLORS.lr },
];

export const ALL_KEYS = PLOTS.flatMap((p) => [p.batchKey, p.epochKey, p.valKey]).filter(Boolean);

function emptySeries() {
  return { steps: [], values: [], min: [], max: [], downsampled: false, lastStep: -Infinity };
}

/** Trace layout of one plot: [band low, band high, per batch, per epoch, validation?]. */
function traceSpecs(plot) {
  const specs = [
    { key: plot.batchKey, role: "low" },
    { key: plot.batchKey, role: "high" },
    { key: plot.batchKey, role: "batch" },
    { key: plot.epochKey, role: "epoch" },
  ];
  if (plot.valKey) specs.push({ key: plot.valKey, role: "val" });
  return specs;
}

export class TrainingCharts {
  constructor({ onProgress = () => {} } = {}) {
    this.series = new Map(ALL_KEYS.map((key) => [key, emptySeries()]));
    this.pending = new Map(); // key -> {steps, values, walls}
    this.stepsPerEpoch = null;
    this.stepsPerEpochExact = false;
    this.frame = null;
    this.drawn = false;
    this.onProgress = onProgress;
    this.plots = PLOTS.map((plot) => ({ ...plot, div: document.getElementById(plot.id), traces: traceSpecs(plot) }));
    this.emptyText = "Waiting for the first batch…";
  }

  /** Batch steps on the epoch axis; while steps per epoch is unknown, raw batch numbers. */
  x(role, step) {
    if (role === "epoch" || role === "val") return step;
    return this.stepsPerEpoch ? step / this.stepsPerEpoch : step;
  }

  get lastBatchStep() {
    const s = this.series.get("batch/loss");
    return Number.isFinite(s.lastStep) ? s.lastStep : 0;
  }

  get epochsDone() {
    const s = this.series.get("loss");
    return Number.isFinite(s.lastStep) ? s.lastStep : 0;
  }

  latest(key) {
    const s = this.series.get(key);
    return s && s.values.length ? s.values[s.values.length - 1] : undefined;
  }

  /** Load the /metrics answer and draw everything from scratch. */
  setHistory(seriesByKey) {
    for (const [key, data] of Object.entries(seriesByKey || {})) {
      if (!this.series.has(key)) continue;
      const steps = data.steps || [];
      this.series.set(key, {
        steps: [...steps],
        values: [...(data.values || [])],
        min: data.downsampled ? [...(data.min || [])] : [],
        max: data.downsampled ? [...(data.max || [])] : [],
        downsampled: Boolean(data.downsampled),
        lastStep: steps.length ? steps[steps.length - 1] : -Infinity,
      });
    }
    this.redraw();
  }

  /** Known from train_begin (exact) or guessed from history; a change redraws everything. */
  setStepsPerEpoch(steps, { exact = false } = {}) {
    if (!(steps > 0)) return false;
    this.stepsPerEpochExact = this.stepsPerEpochExact || exact;
    if (steps === this.stepsPerEpoch) return false;
    this.stepsPerEpoch = steps;
    if (!this.drawn) return false;
    this.redraw();
    return true;
  }

  setEmptyText(text) {
    this.emptyText = text;
    if (this.drawn) for (const plot of this.plots) this.updateAnnotation(plot);
  }

  /** Stream points [key, step, value, wall_time]; only steps past the last drawn one count. */
  addPoints(points) {
    for (const [key, step, value, wallTime] of points) {
      const s = this.series.get(key);
      if (!s || !(step > s.lastStep)) continue;
      const queued = this.pending.get(key) || { steps: [], values: [], walls: [] };
      if (queued.steps.length && !(step > queued.steps[queued.steps.length - 1])) continue;
      queued.steps.push(step);
      queued.values.push(value);
      queued.walls.push(wallTime);
      this.pending.set(key, queued);
    }
    if (this.pending.size && this.frame === null) {
      this.frame = requestAnimationFrame(() => this.flush());
    }
  }

  /** One extendTraces per plot per frame, however many events arrived in between. */
  flush() {
    this.frame = null;
    if (!this.pending.size) return;
    const pending = this.pending;
    this.pending = new Map();
    for (const [key, batch] of pending) {
      const s = this.series.get(key);
      s.steps.push(...batch.steps);
      s.values.push(...batch.values);
      if (s.downsampled) {
        s.min.push(...batch.values);
        s.max.push(...batch.values);
      }
      s.lastStep = batch.steps.at(-1);
    }
    const epochEnded = pending.get("loss");
    let redrawn = false;
    if (!this.stepsPerEpochExact && epochEnded && this.lastBatchStep > 0) {
      // An epoch just ended live: its last batch step over its number is the epoch length.
      const steps = Math.round(this.lastBatchStep / epochEnded.steps.at(-1));
      redrawn = this.setStepsPerEpoch(steps, { exact: true });
    }
    if (this.drawn && !redrawn) for (const plot of this.plots) this.extend(plot, pending);
    this.onProgress(pending);
  }

  extend(plot, pending) {
    const update = { x: [], y: [], customdata: [] };
    const indices = [];
    plot.traces.forEach((trace, index) => {
      const batch = pending.get(trace.key);
      if (!batch) return;
      if ((trace.role === "low" || trace.role === "high") && !this.series.get(trace.key).downsampled) return;
      indices.push(index);
      update.x.push(batch.steps.map((step) => this.x(trace.role, step)));
      update.y.push(batch.values);
      update.customdata.push(batch.steps);
    });
    if (!indices.length) return;
    Plotly.extendTraces(plot.div, update, indices);
    if (!plot.hasData) this.updateAnnotation(plot);
  }

  buildTrace(plot, trace) {
    const s = this.series.get(trace.key);
    const xs = s.steps.map((step) => this.x(trace.role, step));
    const base = { x: xs, customdata: [...s.steps], type: "scatter", uid: trace.key, meta: trace.role };
    const color = trace.role === "val" ? COLORS.val : plot.color;
    const yFormat = plot.title === "learning rate" ? ".3~e" : ".4f";
    if (trace.role === "low" || trace.role === "high") {
      return {
        ...base,
        uid: `${trace.key}:${trace.role}`,
        y: s.downsampled ? [...(trace.role === "low" ? s.min : s.max)] : [],
        x: s.downsampled ? xs : [],
        customdata: s.downsampled ? base.customdata : [],
        mode: "lines",
        line: { width: 0, color: rgba(color, 0) },
        fill: trace.role === "high" ? "tonexty" : "none",
        fillcolor: rgba(color, 0.18),
        hoverinfo: "skip",
        showlegend: false,
        name: trace.role === "low" ? "batch min" : "batch max",
      };
    }
    if (trace.role === "batch") {
      return {
        ...base,
        y: [...s.values],
        name: s.downsampled ? "train per batch (mean, min–max band)" : "train per batch",
        mode: "lines",
        line: { width: 1, color: rgba(color, 0.4) },
        hovertemplate: `batch %{customdata}: %{y:${yFormat}}<extra>per batch</extra>`,
      };
    }
    return {
      ...base,
      y: [...s.values],
      name: trace.role === "val" ? "validation" : plot.valKey ? "train per epoch" : "per epoch",
      // A learning rate holds for a whole epoch: a line between epoch ends would mislead.
      mode: plot.valKey ? "lines+markers" : "markers",
      line: { width: 2, color: rgba(color, 1) },
      marker: { size: 6 },
      hovertemplate: `epoch %{customdata}: %{y:${yFormat}}<extra>${trace.role === "val" ? "validation" : "train"}</extra>`,
    };
  }

  hasData(plot) {
    return plot.traces.some((trace) => this.series.get(trace.key).steps.length > 0);
  }

  annotations(plot) {
    if (plot.hasData) return [];
    return [
      {
        text: this.emptyText,
        xref: "paper",
        yref: "paper",
        x: 0.5,
        y: 0.5,
        showarrow: false,
        font: { size: 14, color: "#6b7280" },
      },
    ];
  }

  updateAnnotation(plot) {
    plot.hasData = this.hasData(plot);
    Plotly.relayout(plot.div, {
      annotations: this.annotations(plot),
      "xaxis.visible": plot.hasData,
      "yaxis.visible": plot.hasData,
    });
  }

  layout(plot) {
    return {
      margin: { l: 60, r: 16, t: 32, b: 40 },
      hovermode: "closest",
      showlegend: true,
      // filled traces would flip the legend; keep it in trace order
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 }, traceorder: "normal" },
      xaxis: {
        visible: plot.hasData, // empty axes would show made-up ranges
        title: { text: this.stepsPerEpoch ? "epoch" : "batch" },
        zeroline: false,
        rangemode: "tozero",
      },
      yaxis: {
        visible: plot.hasData,
        title: { text: plot.title },
        zeroline: false,
        // learning rates decay by factors: a log axis shows each step the same size
        type: plot.valKey ? "linear" : "log",
        exponentformat: plot.valKey ? "none" : "power",
      },
      annotations: this.annotations(plot),
      uirevision: plot.id, // keep the user's zoom while data streams in
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
    };
  }

  redraw() {
    for (const plot of this.plots) {
      plot.hasData = this.hasData(plot);
      const data = plot.traces.map((trace) => this.buildTrace(plot, trace));
      Plotly.react(plot.div, data, this.layout(plot), { responsive: true, displaylogo: false });
    }
    this.drawn = true;
  }
}
