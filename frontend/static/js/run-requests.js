// The run page's first two requests, sent as early as the page can: run.html lists this module
// first and it imports only api.js, so it runs before the rest of the page's modules arrive.

import { api } from "./api.js";

const runId = (/^\/runs\/(\d+)\/?$/.exec(location.pathname) || [])[1];

function early(path) {
  if (!runId) return null;
  const request = api(path);
  request.catch(() => {}); // run.js awaits it and reports the error
  return request;
}

/** GET /runs/{id}: the run. */
export const runRequest = early(`/runs/${runId}`);
/** GET /runs/{id}/metrics: the curves' history, every key, downsampled. */
export const historyRequest = early(`/runs/${runId}/metrics?max_points=2000`);
