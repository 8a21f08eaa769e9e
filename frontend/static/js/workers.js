// Workers & queue: every worker and GPU as a tile (free, or busy with which run), and the queue
// in the order it will start, with priority buttons and cancel; refreshed every 3 s.

import { api, showMessage } from "./api.js";
import { el, formatBytes, timeElement } from "./format.js";

const PRIORITIES = ["low", "normal", "high"];
const REFRESH_MS = 3000;
let me = null;

function runLink(runId, name) {
  return el("a", { href: `/runs/${runId}`, text: name || `run ${runId}` });
}

function gpuTile(gpu, names) {
  const busy = gpu.run_id != null;
  const usage = [];
  if (gpu.util_pct != null) usage.push(`${Math.round(gpu.util_pct)}% util`);
  if (gpu.memory_used_mb != null && gpu.memory_mb) {
    usage.push(`${formatBytes(gpu.memory_used_mb * 2 ** 20)} / ${formatBytes(gpu.memory_mb * 2 ** 20)}`);
  } else if (gpu.memory_mb) {
    usage.push(formatBytes(gpu.memory_mb * 2 ** 20));
  }
  return el(
    "li",
    { className: `gpu-tile ${busy ? "busy" : "free"}`, dataset: { gpu: String(gpu.index) } },
    el("span", { className: "gpu-name", text: `GPU ${gpu.index} · ${gpu.name || "GPU"}` }),
    busy
      ? el("span", { className: "gpu-state" }, "busy: ", runLink(gpu.run_id, names.get(gpu.run_id)))
      : el("span", { className: "gpu-state", text: "free" }),
    usage.length ? el("span", { className: "gpu-usage muted", text: usage.join(" · ") }) : null,
  );
}

function workerTile(worker) {
  const names = new Map(worker.running.map((r) => [r.run_id, r.run_name]));
  const facts = [
    worker.cpus != null ? `${worker.cpus} CPUs` : null,
    worker.ram_mb != null ? formatBytes(worker.ram_mb * 2 ** 20) : null,
    worker.concurrency != null ? `${worker.running.length} / ${worker.concurrency} slots busy` : null,
    worker.version ? `v${worker.version}` : null,
    worker.queue ? `queue ${worker.queue}` : null,
    worker.pool ? `pool ${worker.pool}` : null,
  ].filter(Boolean);
  const onGpu = new Set(worker.gpus.map((g) => g.run_id).filter((id) => id != null));
  const cpuRuns = worker.running.filter((r) => !onGpu.has(r.run_id));
  return el(
    "article",
    { className: `worker-tile ${worker.online ? "online" : "offline"}`, dataset: { worker: worker.name } },
    el(
      "header",
      { className: "worker-head" },
      el("strong", { className: "worker-name", text: worker.name }),
      el("span", { className: `badge ${worker.online ? "badge-running" : "badge-unknown"}`, text: worker.online ? "online" : "offline" }),
    ),
    el("p", { className: "muted worker-facts", text: facts.join(" · ") }),
    el("p", { className: "muted worker-seen" }, "last report ", timeElement(worker.last_seen_at)),
    worker.gpus.length
      ? el("ul", { className: "gpu-tiles" }, worker.gpus.map((g) => gpuTile(g, names)))
      : el("p", { className: "muted", text: "no GPU" }),
    cpuRuns.length
      ? el("p", { className: "worker-runs" }, "trains ", cpuRuns.flatMap((r, i) => [i ? ", " : "", runLink(r.run_id, r.run_name)]))
      : null,
  );
}

function mayChange(item) {
  if (!me) return false;
  return me.role === "admin" || (me.role === "member" && item.launched_by_id === me.id);
}

async function act(path, body) {
  try {
    await api(path, { method: "POST", body });
    showMessage(document.getElementById("page-error"), null);
  } catch (err) {
    showMessage(document.getElementById("page-error"), err);
  }
  await load();
}

function actions(item) {
  const cell = el("td", { className: "queue-actions" });
  if (!mayChange(item)) return cell;
  const rank = PRIORITIES.indexOf(item.priority);
  const button = (label, title, enabled, handler) =>
    el("button", {
      type: "button",
      className: "button small",
      text: label,
      title,
      "aria-label": `${title}: ${item.name}`,
      disabled: !enabled,
      on: { click: handler },
    });
  cell.append(
    button("Up", "Raise priority", rank < PRIORITIES.length - 1, () =>
      act(`/runs/${item.run_id}/priority`, { priority: PRIORITIES[rank + 1] })),
    button("Down", "Lower priority", rank > 0, () =>
      act(`/runs/${item.run_id}/priority`, { priority: PRIORITIES[rank - 1] })),
  );
  if (me.role === "admin") {
    cell.append(button("Top", "Move to top", true, () => act(`/runs/${item.run_id}/move-to-top`)));
  }
  const cancel = button("Cancel", "Cancel run", true, () => act(`/runs/${item.run_id}/cancel`));
  cancel.classList.add("danger");
  cell.append(cancel);
  return cell;
}

/** What a queued run asks for: "2 × A100 · pool research", or "—" for any slot. */
function asked(item) {
  const parts = [];
  if (item.gpus) parts.push(item.gpu_type ? `${item.gpus} × ${item.gpu_type}` : String(item.gpus));
  if (item.pool) parts.push(`pool ${item.pool}`);
  return parts.join(" · ") || "—";
}

function queueRow(item) {
  return el(
    "tr",
    { dataset: { runId: String(item.run_id) } },
    el("td", { className: "num", text: String(item.position) }),
    el("td", { className: "name-cell" }, runLink(item.run_id, item.name)),
    el("td", {}, el("span", { className: `priority priority-${item.priority}`, text: item.moved_to_top ? `${item.priority} · top` : item.priority })),
    el("td", { text: item.launched_by || "—" }),
    el("td", { className: "num queue-gpus", text: asked(item) }),
    el("td", {}, timeElement(item.queued_since)),
    el("td", { className: "queue-waiting", text: item.waiting }),
    actions(item),
  );
}

async function load() {
  const table = document.getElementById("queue-table");
  try {
    const [fleet, queue] = await Promise.all([api("/workers"), api("/queue")]);
    document.getElementById("fleet").replaceChildren(...fleet.items.map(workerTile));
    document.getElementById("fleet-empty").hidden = fleet.items.length > 0;
    document.getElementById("queue-body").replaceChildren(...queue.items.map(queueRow));
    document.getElementById("queue-empty").hidden = queue.total > 0;
    document.getElementById("queue-count").textContent =
      queue.total > queue.items.length ? `first ${queue.items.length} of ${queue.total}` : `${queue.total} queued`;
    document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showMessage(document.getElementById("page-error"), null);
  } catch (err) {
    showMessage(document.getElementById("page-error"), err);
  } finally {
    table.setAttribute("aria-busy", "false");
  }
}

async function start() {
  try {
    me = (await api("/auth/me")).user;
  } catch {
    me = null; // read-only: no buttons
  }
  await load();
  setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
}

start();
