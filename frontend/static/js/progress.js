// Training speed from live batch points, for the ETA.

const WINDOW_S = 60;

/** Batches per second over the last minute of worker wall time (not the browser's clock). */
export class RateMeter {
  constructor() {
    this.samples = []; // [wall_time seconds, global batch step]
  }

  add(wallTime, step) {
    if (!Number.isFinite(wallTime) || !Number.isFinite(step)) return;
    const last = this.samples.at(-1);
    if (last && (wallTime <= last[0] || step <= last[1])) return;
    this.samples.push([wallTime, step]);
    while (this.samples.length > 2 && wallTime - this.samples[0][0] > WINDOW_S) this.samples.shift();
  }

  /** Batches per second, or null until there is a second of data to go on. */
  get rate() {
    if (this.samples.length < 2) return null;
    const [t0, s0] = this.samples[0];
    const [t1, s1] = this.samples.at(-1);
    return t1 - t0 >= 1 ? (s1 - s0) / (t1 - t0) : null;
  }

  /** Seconds left for `remainingSteps` batches at the current rate, or null. */
  eta(remainingSteps) {
    const rate = this.rate;
    if (!rate || rate <= 0) return null;
    return Math.max(0, remainingSteps) / rate;
  }
}
