// The sweeps list: newest first, with progress and the best objective; refreshed every 5 s.

import { api, showMessage } from "./api.js";
import { el, formatMetric, statusBadge, timeElement } from "./format.js";

const LIMIT = 50;
let offset = 0;

function row(sweep) {
  const p = sweep.progress;
  return el(
    "tr",
    { dataset: { sweepId: String(sweep.id) } },
    el("td", {}, el("a", { href: `/sweeps/${sweep.id}`, text: sweep.name })),
    el("td", {}, statusBadge(sweep.status)),
    el("td", { text: sweep.strategy }),
    el("td", { text: `${sweep.objective} (${sweep.direction})` }),
    el("td", { className: "num", text: `${p.done} / ${p.total}` }),
    el("td", { className: "num", text: String(p.running) }),
    el("td", { className: "num", text: String(p.queued) }),
    el("td", { className: "num", text: String(p.pruned) }),
    el("td", { className: "num", text: sweep.best ? formatMetric(sweep.best.objective) : "—" }),
    el("td", {}, timeElement(sweep.created_at)),
  );
}

async function load() {
  const table = document.getElementById("sweeps-table");
  try {
    const page = await api(`/sweeps?limit=${LIMIT}&offset=${offset}`);
    document.getElementById("sweeps-body").replaceChildren(...page.items.map(row));
    document.getElementById("sweeps-empty").hidden = page.total > 0;
    const last = Math.min(offset + page.items.length, page.total);
    document.getElementById("sweeps-range").textContent =
      page.total ? `${offset + 1}–${last} of ${page.total}` : "";
    document.getElementById("sweeps-prev").disabled = offset === 0;
    document.getElementById("sweeps-next").disabled = last >= page.total;
    showMessage(document.getElementById("sweeps-error"), null);
  } catch (err) {
    showMessage(document.getElementById("sweeps-error"), err);
  } finally {
    table.setAttribute("aria-busy", "false");
  }
}

document.getElementById("sweeps-prev").addEventListener("click", () => {
  offset = Math.max(0, offset - LIMIT);
  load();
});
document.getElementById("sweeps-next").addEventListener("click", () => {
  offset += LIMIT;
  load();
});
load();
setInterval(() => {
  if (!document.hidden) load();
}, 5000);
