// A run's event log from its start, read once through the stream: every event but the metric
// points, each stamped with the worker's clock of the metric points sent just before it.

import { API } from "./api.js";

/** Events before (and including) untilId; metrics are read only for their time. */
export async function readEventLog(runId, { untilId = Infinity, timeoutMs = 30000 } = {}) {
  const events = [];
  if (!(untilId > 0)) return { events, complete: true };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let lastWall = null; // seconds since the epoch, worker clock
  try {
    const response = await fetch(`${API}/runs/${runId}/stream?after=0`, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok || !response.body) throw new Error(`the event log answered ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { events, complete: false };
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message";
        let id = null;
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("id:")) id = Number(line.slice(3).trim());
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (kind === "end") return { events, complete: true };
        if (!data.length) continue;
        let parsed = {};
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          continue;
        }
        if (kind === "metrics") {
          for (const point of parsed.points || []) {
            const wall = point[3];
            if (Number.isFinite(wall) && (lastWall === null || wall > lastWall)) lastWall = wall;
          }
        } else {
          events.push({ id, kind, data: parsed, wall: lastWall });
        }
        if (id !== null && id >= untilId) return { events, complete: true };
      }
    }
  } catch (err) {
    if (err.name === "AbortError") return { events, complete: false };
    throw err;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
