// Fetch helpers for /api/v1 and the one error shape every page shows.

export const API = "/api/v1";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The session's CSRF token, from the cookie the sign-in set (readable by this page only). */
export function csrfToken() {
  const found = document.cookie.split("; ").find((part) => part.startsWith("fitboard_csrf="));
  return found ? decodeURIComponent(found.slice("fitboard_csrf=".length)) : "";
}

/** Headers a request of this method needs: X-CSRF-Token on anything that changes state. */
export function authHeaders(method = "GET") {
  const token = csrfToken();
  return !SAFE_METHODS.has(method.toUpperCase()) && token ? { "X-CSRF-Token": token } : {};
}

/** Not signed in (any more): go to the sign-in page, and come back here after. */
export function toLogin() {
  if (location.pathname === "/login") return;
  const next = location.pathname + location.search + location.hash;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/** An API call that did not succeed: HTTP status plus the server's {detail, code, errors}. */
export class ApiError extends Error {
  constructor({ status, detail, code, errors }) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.code = code;
    this.errors = Array.isArray(errors) ? errors : [];
  }
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): fall back to the status line below.
  }
  let detail = body && body.detail;
  if (Array.isArray(detail)) {
    // FastAPI's default validation shape, in case a route bypasses the app's handler.
    detail = detail.map((item) => item.msg || String(item)).join("; ");
  } else if (detail && typeof detail !== "string") {
    detail = JSON.stringify(detail);
  }
  return new ApiError({
    status: response.status,
    detail: detail || `The server answered ${response.status} ${response.statusText}`.trim(),
    code: (body && body.code) || `http_${response.status}`,
    errors: body && body.errors,
  });
}

/** Call the API; resolves to the parsed JSON body, rejects with ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: { Accept: "application/json", ...authHeaders(method) } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError({
      status: 0,
      detail: `Could not reach the Fitboard server (${err.message}).`,
      code: "network_error",
    });
  }
  if (response.status === 401 && path !== "/auth/login") toLogin();
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

/** A readable one-liner for any error an API call can throw. */
export function describeError(err) {
  if (err instanceof ApiError) return err.detail;
  return `Unexpected error: ${err && err.message ? err.message : String(err)}`;
}

/**
 * Show an error in a message box (role="alert"); pass null to clear it.
 * The text always goes in as text, never as HTML.
 */
export function showMessage(box, err, { prefix = "" } = {}) {
  if (!box) return;
  if (err == null) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = prefix + (typeof err === "string" ? err : describeError(err));
  box.hidden = false;
}

/**
 * Read a run's event stream from the start until an event named `wanted` (resolves to its
 * parsed data) or one of `stopAt` (resolves to null), within timeoutMs. Used once, to learn
 * train_begin for a run that was already training when the page opened.
 */
export async function findEarlyEvent(runId, wanted, { stopAt = [], timeoutMs = 4000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(`${API}/runs/${runId}/stream?after=0`, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok || !response.body) return null;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (event === wanted) return JSON.parse(data.join("\n"));
        if (stopAt.includes(event)) return null;
      }
    }
  } catch {
    return null; // best effort: the caller falls back to an estimate
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
