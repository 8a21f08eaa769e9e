// What kind a run is (managed, sweep trial, a script's run, a RemoteMonitor stream), and the
// run page's header lines that differ by kind: each says what the run has, or that it has none.

const REMOTE_MONITOR_TAG = "remote-monitor"; // backend/external/service.py

/** managed | trial | script | remote-monitor: what the page can expect this run to report. */
export function runKind(run) {
  if (run.source === "external") return (run.tags || []).includes(REMOTE_MONITOR_TAG) ? "remote-monitor" : "script";
  return run.sweep_id ? "trial" : "managed";
}

export const isExternal = (run) => run.source === "external";
export const isEmptyObject = (value) => !value || (typeof value === "object" && Object.keys(value).length === 0);

/** The Preset line: a worker's run names its preset; a script's run says what it sent. */
export function presetText(run) {
  const kind = runKind(run);
  if (kind === "remote-monitor") return "none: Keras' RemoteMonitor sends no spec";
  if (kind === "script") return isEmptyObject(run.spec) ? "none: the script sent no spec" : "none: the script sent its own spec (below)";
  return run.preset || "custom spec";
}

export function workerText(run) {
  if (isExternal(run)) return runKind(run) === "remote-monitor" ? "none: trained elsewhere, reported by RemoteMonitor" : "none: trained by a script elsewhere";
  const attempt = run.attempt > 1 ? `attempt ${run.attempt}` : "";
  return [run.worker_host, attempt].filter(Boolean).join(" · ") || "—";
}

/** "compile.optimizer.learning_rate = 0.01 · fit.batch_size = 64" */
export function trialParamsText(params) {
  return Object.entries(params || {})
    // four significant digits: 0.001235, 64 (the resolved spec below holds the exact value)
    .map(([path, value]) => `${path} = ${typeof value === "number" ? String(Number(value.toPrecision(4))) : JSON.stringify(value)}`)
    .join(" · ");
}
