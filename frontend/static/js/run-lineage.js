// Run page: Resume and Fork (dialogs), and the lineage line (forked from / forks). run.js
// announces every render of the header with a "fitboard:run" event carrying the run.

import { api, showMessage } from "./api.js";
import { el } from "./format.js";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["succeeded", "failed", "cancelled", "pruned"]);
let current = null;

function runLink(id, name) {
  return el("a", { href: `/runs/${encodeURIComponent(id)}`, text: name ? `${name} (#${id})` : `run #${id}` });
}

function renderLineage(run) {
  const parts = [];
  if (run.forked_from) {
    const from = run.forked_from;
    parts.push(el("span", { id: "lineage-parent" }, "Forked from ", runLink(from.run_id, from.name), ` at epoch ${from.epoch}`));
  }
  if (run.forks && run.forks.length) {
    if (parts.length) parts.push(" · ");
    const links = [];
    for (const fork of run.forks) {
      if (links.length) links.push(", ");
      links.push(runLink(fork.run_id, fork.name), ` (epoch ${fork.epoch})`);
    }
    parts.push(el("span", { id: "lineage-children" }, `${run.forks.length === 1 ? "Fork" : "Forks"}: `, ...links));
  }
  $("run-lineage").replaceChildren(...parts);
  $("run-lineage-row").hidden = parts.length === 0;
}

function renderButtons(run) {
  const worker = run.source !== "external";
  const checkpoints = run.checkpoints || [];
  $("resume-button").hidden = !run.resumable;
  $("fork-button").hidden = !(worker && FINISHED.has(run.status) && checkpoints.length > 0);
}

document.addEventListener("fitboard:run", (event) => {
  current = event.detail;
  renderLineage(current);
  renderButtons(current);
});

for (const button of document.querySelectorAll("[data-close-dialog]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}

// ---- resume ---------------------------------------------------------------------------------

$("resume-button").addEventListener("click", () => {
  const run = current;
  const epochs = (run.spec && run.spec.fit && run.spec.fit.epochs) || 1;
  const newest = Math.max(0, ...(run.checkpoints || []), (run.forked_from || {}).epoch || 0);
  // a run that trained all its epochs needs more to go on
  $("resume-epochs").value = String(newest >= epochs ? epochs + Math.max(1, epochs) : epochs);
  $("resume-epochs").min = String(Math.max(epochs, newest + 1));
  $("resume-dialog-text").textContent =
    `It goes back to the queue as attempt ${(run.attempt || 1) + 1} and trains on from its checkpoint of epoch ${newest}: ` +
    "same run, its curves continue; what it recorded after that checkpoint is dropped.";
  showMessage($("resume-error"), null);
  $("resume-dialog").showModal();
});

$("resume-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("confirm-resume");
  button.disabled = true;
  showMessage($("resume-error"), null);
  try {
    const epochs = Number($("resume-epochs").value);
    await api(`/runs/${current.id}/resume`, { method: "POST", body: { epochs } });
    location.reload(); // a new attempt: its curves and events are drawn afresh
  } catch (err) {
    showMessage($("resume-error"), err, { prefix: "Could not resume: " });
    button.disabled = false;
  }
});

// ---- fork -----------------------------------------------------------------------------------

$("fork-button").addEventListener("click", () => {
  const run = current;
  const checkpoints = [...(run.checkpoints || [])].sort((a, b) => b - a);
  $("fork-epoch").replaceChildren(
    ...checkpoints.map((epoch, index) => el("option", { value: String(epoch), text: index === 0 ? `${epoch} (newest)` : String(epoch) })),
  );
  $("fork-name").value = `${run.name} (fork)`.slice(0, 200);
  const epochs = (run.spec && run.spec.fit && run.spec.fit.epochs) || 1;
  const rate = run.spec && run.spec.compile && run.spec.compile.optimizer && run.spec.compile.optimizer.learning_rate;
  const example = { fit: { epochs: Math.max(epochs, checkpoints[0] || 0) + 2 } };
  if (rate) example.compile = { optimizer: { learning_rate: rate } };
  $("fork-overrides").value = JSON.stringify(example, null, 2);
  showMessage($("fork-error"), null);
  $("fork-dialog").showModal();
});

$("fork-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage($("fork-error"), null);
  let overrides = null;
  const text = $("fork-overrides").value.trim();
  if (text) {
    try {
      overrides = JSON.parse(text);
    } catch (err) {
      showMessage($("fork-error"), `The spec changes are not JSON: ${err.message}`);
      return;
    }
    if (!overrides || typeof overrides !== "object" || Array.isArray(overrides)) {
      showMessage($("fork-error"), "The spec changes must be a JSON object, like {\"fit\": {\"epochs\": 8}}.");
      return;
    }
  }
  const button = $("confirm-fork");
  button.disabled = true;
  try {
    const body = { name: $("fork-name").value, from_epoch: Number($("fork-epoch").value) };
    if (overrides) body.overrides = overrides;
    const fork = await api(`/runs/${current.id}/fork`, { method: "POST", body });
    location.assign(`/runs/${encodeURIComponent(fork.id)}`);
  } catch (err) {
    showMessage($("fork-error"), err, { prefix: "Could not fork: " });
    button.disabled = false;
  }
});
