// "Other metrics": every per-epoch metric the main plots do not draw (auc, top-k accuracy,
// their val_ twins…), one trace per key in one extra plot, from history and then live.
// The same plot, with another filter and axis, draws the "System" panel (sys/* series).

const DRAWN = new Set(["loss", "accuracy", "val_loss", "val_accuracy", "lr", "learning_rate"]);
const PALETTE = ["#1f77b4", "#e6550d", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"];

/** A per-epoch key that none of the main plots draws. */
export function isOtherMetric(key) {
  return typeof key === "string" && key !== "" && !key.startsWith("batch/") && !key.startsWith("sys/") && !DRAWN.has(key);
}

/** A system metric (CPU, memory, GPU), sampled every 2 s; its step is seconds. */
export function isSystemMetric(key) {
  return typeof key === "string" && key.startsWith("sys/");
}

export class OtherMetrics {
  constructor({ card, div, accept = isOtherMetric, xTitle = "epoch" }) {
    this.card = card;
    this.div = div;
    this.accept = accept;
    this.xTitle = xTitle;
    this.series = new Map(); // key -> {steps, values}
    this.frame = null;
  }

  setHistory(seriesByKey) {
    for (const [key, data] of Object.entries(seriesByKey || {})) {
      if (!this.accept(key)) continue;
      this.series.set(key, { steps: [...(data.steps || [])], values: [...(data.values || [])] });
    }
    this.schedule();
  }

  /** Stream points [key, step, value, wall]; steps already drawn are skipped. */
  addPoints(points) {
    let changed = false;
    for (const [key, step, value] of points || []) {
      if (!this.accept(key)) continue;
      const s = this.series.get(key) || { steps: [], values: [] };
      this.series.set(key, s);
      if (s.steps.length && !(step > s.steps[s.steps.length - 1])) continue;
      s.steps.push(step);
      s.values.push(value);
      changed = true;
    }
    if (changed) this.schedule();
  }

  schedule() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.draw();
    });
  }

  draw() {
    const keys = [...this.series.keys()].filter((key) => this.series.get(key).steps.length > 0).sort();
    this.card.hidden = keys.length === 0;
    if (!keys.length || !window.Plotly) return;
    const data = keys.map((key, index) => {
      const s = this.series.get(key);
      return {
        x: [...s.steps],
        y: [...s.values],
        customdata: [...s.steps],
        uid: key,
        name: key.replace(/[<>&]/g, ""),
        type: "scatter",
        mode: "lines+markers",
        line: { width: 2, color: PALETTE[index % PALETTE.length], dash: key.startsWith("val_") ? "dash" : "solid" },
        marker: { size: 6 },
        hovertemplate: `${this.xTitle} %{customdata}: %{y:.4f}<extra>${key.replace(/[<>&]/g, "")}</extra>`,
      };
    });
    const layout = {
      margin: { l: 60, r: 16, t: 32, b: 40 },
      hovermode: "closest",
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
      xaxis: { title: { text: this.xTitle }, zeroline: false, rangemode: "tozero" },
      yaxis: { zeroline: false },
      uirevision: this.div.id,
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 },
    };
    Plotly.react(this.div, data, layout, { responsive: true, displaylogo: false });
  }
}
