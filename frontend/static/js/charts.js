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

// Keras 3 logs the rate as "learning_rate" (ReduceLROnPlateau, some scripts): the same curve
const ALIASES = new Map([
  ["learning_rate", "lr"],
  ["batch/learning_rate", "batch/lr"],
]);
const seriesKey = (key) => ALIASES.get(key) || key;

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
    // (plot) -> what a plot says when it is empty while others have curves
    this.missingText = null;
    this.granularity = "both"; // both | batch | epoch: which training curves are shown
    this.markers = { earlyStop: null, phases: [] };
    // (key, minStep, maxStep) -> Promise of a /metrics series: finer detail for a zoomed range
    this.fetchDetail = null;
  }

  /** Show per-batch curves, per-epoch curves, or both (validation is per epoch: always shown). */
  setGranularity(mode) {
    this.granularity = mode;
    if (!this.drawn) return;
    for (const plot of this.plots) {
      Plotly.restyle(plot.div, { visible: plot.traces.map((trace) => this.visible(trace.role)) });
    }
  }

  visible(role) {
    if (role === "epoch") return this.granularity !== "batch";
    if (role === "batch" || role === "low" || role === "high") return this.granularity !== "epoch";
    return true;
  }

  /** Early stop {stopped_epoch, best_epoch, monitor} and phases [{index, start_epoch}] on the curves. */
  setMarkers({ earlyStop, phases } = {}) {
    if (earlyStop !== undefined) this.markers.earlyStop = earlyStop;
    if (phases !== undefined) this.markers.phases = phases;
    if (!this.drawn) return;
    for (const plot of this.plots) {
      Plotly.relayout(plot.div, { shapes: this.markerShapes(), annotations: this.annotations(plot) });
    }
  }

  /** [{x, label, color, line}] in epoch units (epoch e ends at x = e). */
  markerList() {
    const list = [];
    for (const phase of this.markers.phases || []) {
      if (!(phase.start_epoch >= 1)) continue;
      list.push({ x: phase.start_epoch - 1, label: `phase ${(phase.index ?? 0) + 1}`, color: "#7c3aed", line: phase.start_epoch > 1, kind: "phase" });
    }
    const stop = this.markers.earlyStop;
    if (stop && stop.best_epoch) {
      list.push({ x: stop.best_epoch, label: `best (${stop.monitor || "monitor"})`, color: "#15803d", line: true, kind: "best" });
    }
    if (stop && stop.stopped_epoch) {
      list.push({ x: stop.stopped_epoch, label: "early stop", color: "#b91c1c", line: true, kind: "stop" });
    }
    return list;
  }

  markerShapes() {
    return this.markerList()
      .filter((marker) => marker.line)
      .map((marker) => ({
        type: "line",
        xref: "x",
        yref: "paper",
        x0: marker.x,
        x1: marker.x,
        y0: 0,
        y1: 1,
        name: marker.kind,
        line: { color: marker.color, width: 1.5, dash: marker.kind === "phase" ? "dash" : "dot" },
      }));
  }

  /** Wire zoom -> finer detail once the plot exists; double-click (autorange) goes back. */
  listen(plot) {
    if (plot.listening || typeof plot.div.on !== "function") return;
    plot.listening = true;
    plot.div.on("plotly_relayout", (event) => this.onRelayout(plot, event));
  }

  onRelayout(plot, event) {
    if (!event) return;
    if (event["xaxis.autorange"]) {
      if (plot.detail) {
        plot.detail = null;
        plot.detailToken = (plot.detailToken || 0) + 1;
        delete plot.div.dataset.detail;
        this.redrawPlot(plot);
      }
      return;
    }
    const range = event["xaxis.range"] || (event["xaxis.range[0]"] !== undefined ? [event["xaxis.range[0]"], event["xaxis.range[1]"]] : null);
    if (!range || !this.fetchDetail) return;
    const overview = this.series.get(plot.batchKey);
    if (!overview || !overview.downsampled) return; // every point is drawn already
    const toStep = (x) => (this.stepsPerEpoch ? x * this.stepsPerEpoch : x);
    const minStep = Math.max(1, Math.floor(toStep(Math.min(range[0], range[1]))));
    const maxStep = Math.ceil(toStep(Math.max(range[0], range[1])));
    if (!(maxStep > minStep)) return;
    const token = (plot.detailToken || 0) + 1;
    plot.detailToken = token;
    plot.div.dataset.detail = "loading";
    this.fetchDetail(plot.batchKey, minStep, maxStep)
      .then((series) => {
        if (plot.detailToken !== token || !series) return;
        plot.detail = { minStep, maxStep, series: this.toSeries(series) };
        plot.div.dataset.detail = `${minStep}-${maxStep}`;
        this.redrawPlot(plot);
      })
      .catch(() => {
        if (plot.detailToken === token) delete plot.div.dataset.detail;
      });
  }

  toSeries(data) {
    const steps = data.steps || [];
    return {
      steps: [...steps],
      values: [...(data.values || [])],
      min: data.downsampled ? [...(data.min || [])] : [],
      max: data.downsampled ? [...(data.max || [])] : [],
      downsampled: Boolean(data.downsampled),
      lastStep: steps.length ? steps[steps.length - 1] : -Infinity,
    };
  }

  /** The series a trace draws: a zoomed plot's batch traces use the finer detail. */
  seriesOf(plot, trace) {
    if (plot.detail && trace.key === plot.batchKey) return plot.detail.series;
    return this.series.get(trace.key);
  }

  redrawPlot(plot) {
    plot.hasData = this.hasData(plot);
    const data = plot.traces.map((trace) => this.buildTrace(plot, trace));
    Plotly.react(plot.div, data, this.layout(plot), { responsive: true, displaylogo: false });
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

  /** Load the /metrics answer and draw everything from scratch (or leave that to redraw()). */
  setHistory(seriesByKey, { draw = true } = {}) {
    for (const [name, data] of Object.entries(seriesByKey || {})) {
      const key = seriesKey(name);
      if (!this.series.has(key) || (key !== name && seriesByKey[key])) continue;
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
    if (draw) this.redraw();
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

  /** text: when no plot has data; missing(plot): when others have curves but this one not. */
  setEmptyText(text, missing = null) {
    this.emptyText = text;
    this.missingText = missing;
    if (this.drawn) for (const plot of this.plots) this.updateAnnotation(plot);
  }

  /** Whether any per-batch series has a point: without them every curve is per epoch. */
  get hasBatches() {
    return this.plots.some((plot) => this.series.get(plot.batchKey).steps.length > 0);
  }

  /** The x axis' unit: epochs once batches map onto them, or when there are no batches. */
  get xUnit() {
    return this.stepsPerEpoch || !this.hasBatches ? "epoch" : "batch";
  }

  emptyTextOf(plot) {
    const othersHaveData = this.plots.some((other) => other !== plot && this.hasData(other));
    return othersHaveData && this.missingText ? this.missingText(plot) : this.emptyText;
  }

  /** Stream points [key, step, value, wall_time]; only steps past the last drawn one count. */
  addPoints(points) {
    for (const [name, step, value, wallTime] of points) {
      const key = seriesKey(name);
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
    if (this.drawn && !redrawn) {
      for (const plot of this.plots) this.extend(plot, pending);
      // an empty plot beside curves that just began says what this run does not report
      for (const plot of this.plots) {
        if (!plot.hasData && plot.shownEmptyText !== this.emptyTextOf(plot)) this.updateAnnotation(plot);
      }
    }
    this.onProgress(pending);
  }

  extend(plot, pending) {
    const update = { x: [], y: [], customdata: [] };
    const indices = [];
    plot.traces.forEach((trace, index) => {
      const batch = pending.get(trace.key);
      if (!batch) return;
      // a zoomed plot shows a fixed range of detail: new batches join when the zoom is reset
      if (plot.detail && trace.key === plot.batchKey) return;
      if ((trace.role === "low" || trace.role === "high") && !this.series.get(trace.key).downsampled) return;
      indices.push(index);
      update.x.push(batch.steps.map((step) => this.x(trace.role, step)));
      update.y.push(batch.values);
      update.customdata.push(batch.steps);
    });
    if (!indices.length) return;
    Plotly.extendTraces(plot.div, update, indices);
    if (!plot.hasData) this.updateAnnotation(plot);
    else if (plot.div.layout && plot.div.layout.xaxis.title.text !== this.xUnit) {
      Plotly.relayout(plot.div, { "xaxis.title.text": this.xUnit });
    }
  }

  buildTrace(plot, trace) {
    const s = this.seriesOf(plot, trace);
    const xs = s.steps.map((step) => this.x(trace.role, step));
    const base = {
      x: xs,
      customdata: [...s.steps],
      type: "scatter",
      uid: trace.key,
      meta: trace.role,
      visible: this.visible(trace.role),
    };
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
    if (plot.hasData) {
      return this.markerList().map((marker) => ({
        x: marker.x,
        xref: "x",
        y: 1,
        yref: "paper",
        yanchor: "top",
        xanchor: "left",
        text: marker.label,
        showarrow: false,
        font: { size: 10, color: marker.color },
        bgcolor: "rgba(255, 255, 255, 0.8)",
      }));
    }
    return [
      {
        text: (plot.shownEmptyText = this.emptyTextOf(plot)),
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
      shapes: plot.hasData ? this.markerShapes() : [],
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
        title: { text: this.xUnit },
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
      shapes: plot.hasData ? this.markerShapes() : [],
      uirevision: plot.id, // keep the user's zoom while data streams in
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
    };
  }

  redraw() {
    const first = !this.drawn;
    this.drawn = true;
    const draw = (plot) => {
      plot.hasData = this.hasData(plot);
      const data = plot.traces.map((trace) => this.buildTrace(plot, trace));
      const render = Plotly.react(plot.div, data, this.layout(plot), { responsive: true, displaylogo: false });
      this.listen(plot);
      return render;
    };
    // The first time, the plots with data are drawn first and the empty ones after the next
    // paint: the curves the user came for show before plotly lays out the rest.
    const now = first ? this.plots.filter((plot) => this.hasData(plot)) : this.plots;
    const later = first ? this.plots.filter((plot) => !now.includes(plot)) : [];
    const renders = now.map(draw);
    if (later.length) requestAnimationFrame(() => setTimeout(() => later.forEach(draw), 0));
    if (!this.firstCurveMarked && now.some((plot) => plot.hasData)) {
      this.firstCurveMarked = true;
      // for bench/run_page.py: navigation -> the first curves drawn (a User Timing mark)
      Promise.all(renders).then(() => {
        performance.mark("fitboard:first-curve");
        document.documentElement.dataset.firstCurve = "drawn";
      });
    }
  }
}
