// Tags and notes in the run page's header, edited in place and saved with PATCH /runs/{id}.

import { ApiError, api, describeError } from "./api.js";
import { el } from "./format.js";

/** "a, b,, a" -> ["a", "b"]: trimmed, no empties, no repeats, in the order typed. */
export function parseTags(text) {
  const seen = new Set();
  const tags = [];
  for (const raw of String(text).split(",")) {
    const tag = raw.trim();
    if (tag && !seen.has(tag)) {
      seen.add(tag);
      tags.push(tag);
    }
  }
  return tags;
}

export class Annotations {
  /** nodes: {tags, notes, edit, form, tagsInput, notesInput, cancel, status, error}. */
  constructor(nodes, { runId, onSaved = () => {} }) {
    this.nodes = nodes;
    this.runId = runId;
    this.onSaved = onSaved;
    this.run = null;
    nodes.edit.addEventListener("click", () => this.open());
    nodes.cancel.addEventListener("click", () => this.close());
    nodes.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    nodes.form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) this.save();
    });
  }

  render(run) {
    this.run = run;
    const tags = Array.isArray(run.tags) ? run.tags : [];
    this.nodes.tags.replaceChildren(
      ...(tags.length ? tags.map((tag) => el("li", { className: "tag run-tag", text: tag })) : [el("li", { className: "muted", text: "no tags" })]),
    );
    const notes = typeof run.notes === "string" ? run.notes.trim() : "";
    this.nodes.notes.textContent = notes || "No notes.";
    this.nodes.notes.classList.toggle("muted", !notes);
  }

  open() {
    const run = this.run || {};
    this.nodes.tagsInput.value = (Array.isArray(run.tags) ? run.tags : []).join(", ");
    this.nodes.notesInput.value = typeof run.notes === "string" ? run.notes : "";
    this.showError(null);
    this.nodes.status.textContent = "";
    this.nodes.form.hidden = false;
    this.nodes.edit.hidden = true;
    this.nodes.tagsInput.focus();
  }

  close() {
    this.nodes.form.hidden = true;
    this.nodes.edit.hidden = false;
    this.showError(null);
  }

  showError(text) {
    this.nodes.error.textContent = text || "";
    this.nodes.error.hidden = !text;
  }

  async save() {
    const body = { tags: parseTags(this.nodes.tagsInput.value), notes: this.nodes.notesInput.value };
    const submit = this.nodes.form.querySelector('button[type="submit"]');
    submit.disabled = true;
    this.nodes.status.textContent = "Saving…";
    this.showError(null);
    try {
      const run = await api(`/runs/${this.runId}`, { method: "PATCH", body });
      this.nodes.status.textContent = "";
      this.close();
      this.onSaved(run);
    } catch (err) {
      this.nodes.status.textContent = "";
      if (err instanceof ApiError && (err.status === 405 || (err.status === 404 && err.code !== "not_found"))) {
        this.showError("Tags and notes cannot be saved yet: this server does not offer PATCH /api/v1/runs/{id}.");
      } else {
        this.showError(`Could not save tags and notes: ${describeError(err)}`);
      }
    } finally {
      submit.disabled = false;
    }
  }
}
