// The run page's live log: the tail of the training process's output, then new lines as they
// are written (SSE, resumable by byte offset). Auto-scrolls unless the reader scrolled up.

import { API, api, describeError } from "./api.js";

const MAX_LINES = 500;
const TAIL_BYTES = 65536;

export class LogPanel {
  constructor({ output, status, jump, error }) {
    this.output = output;
    this.status = status;
    this.jump = jump;
    this.error = error;
    this.lines = [];
    this.partial = "";
    this.dropped = false; // older lines were left out
    this.source = null;
    this.output.addEventListener("scroll", () => {
      if (this.atBottom()) this.jump.hidden = true;
    });
    this.jump.addEventListener("click", () => this.scrollToEnd());
  }

  atBottom() {
    const node = this.output;
    return node.scrollHeight - node.scrollTop - node.clientHeight < 24;
  }

  scrollToEnd() {
    this.output.scrollTop = this.output.scrollHeight;
    this.jump.hidden = true;
  }

  setStatus(text, kind = "") {
    this.status.textContent = text;
    this.status.dataset.state = kind;
  }

  showError(text) {
    this.error.textContent = text || "";
    this.error.hidden = !text;
  }

  /** Add text; a line is complete at "\n", and "\r" rewrites the line like a terminal. */
  append(text, { startsMidLine = false } = {}) {
    if (!text) return;
    const follow = this.atBottom();
    let pieces = (this.partial + text).split("\n");
    if (startsMidLine && pieces.length > 1) {
      pieces = pieces.slice(1); // the tail began inside a line
      this.dropped = true;
    }
    this.partial = pieces.pop();
    for (const line of pieces) {
      const trimmed = line.replace(/\r+$/, "");
      this.lines.push(trimmed.slice(trimmed.lastIndexOf("\r") + 1));
    }
    if (this.lines.length > MAX_LINES) {
      this.lines.splice(0, this.lines.length - MAX_LINES);
      this.dropped = true;
    }
    const shown = this.partial ? [...this.lines, this.partial] : this.lines;
    this.output.textContent = (this.dropped ? `… earlier lines left out: showing the last ${MAX_LINES}\n` : "") + shown.join("\n");
    this.output.dataset.lines = String(shown.length);
    if (follow) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  /** Read the tail, then (for a run that is not finished) follow the file live. */
  async start(runId, { live, queued = false }) {
    let chunk;
    try {
      chunk = await api(`/runs/${runId}/log?offset=-${TAIL_BYTES}`);
    } catch (err) {
      this.showError(`Could not read the training log: ${describeError(err)}`);
      this.setStatus("");
      return;
    }
    this.showError(null);
    this.append(chunk.text, { startsMidLine: chunk.offset > 0 });
    if (live) {
      this.follow(runId, chunk.next_offset);
      if (!chunk.size) this.setStatus(queued ? "waiting for a worker to start the run…" : "waiting for output…", "waiting");
    } else {
      this.finish(chunk.size);
    }
  }

  finish(size) {
    if (!this.lines.length && !this.partial) {
      this.output.textContent = "";
      this.setStatus(size ? "" : "This run's training process wrote no log on this server.", "empty");
    } else {
      this.setStatus("complete", "done");
    }
  }

  follow(runId, offset) {
    const source = new EventSource(`${API}/runs/${runId}/log/stream?offset=${encodeURIComponent(offset)}`);
    this.source = source;
    source.addEventListener("log", (event) => {
      let text = "";
      try {
        text = JSON.parse(event.data).text || "";
      } catch {
        return;
      }
      this.setStatus("● live", "live");
      this.append(text);
    });
    source.addEventListener("end", () => {
      source.close();
      this.source = null;
      this.finish(this.lines.length || this.partial ? 1 : 0);
    });
    source.onopen = () => {
      if (this.lines.length || this.partial) this.setStatus("● live", "live");
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        this.setStatus("");
        this.showError("The live log stopped: the server closed the stream. Reload the page to resume.");
      } else {
        this.setStatus("reconnecting…", "reconnecting");
      }
    };
  }
}
