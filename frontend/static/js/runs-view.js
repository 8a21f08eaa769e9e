// The runs page's view (search, filters, sort, offset): to and from the URL, and as an API query.
// Pure functions: the URL holds the whole view, so a link shares it and Back/Forward restore it.

export const PAGE_SIZE = 50;
export const DEFAULT_SORT = "-created_at";
// URL parameter order; every one but sort and offset narrows the list
export const FILTERS = ["q", "status", "dataset", "preset", "tag", "launcher", "from", "to"];

export function blankView() {
  return { q: "", status: "", dataset: "", preset: "", tag: "", launcher: "", from: "", to: "", sort: DEFAULT_SORT, offset: 0 };
}

export function viewFromUrl(search = location.search) {
  const params = new URLSearchParams(search);
  const view = blankView();
  for (const key of FILTERS) view[key] = (params.get(key) || "").trim();
  view.sort = params.get("sort") || DEFAULT_SORT;
  const offset = Number.parseInt(params.get("offset") || "0", 10);
  view.offset = Number.isFinite(offset) && offset > 0 ? offset : 0;
  return view;
}

/** The page's path and query for a view: only what differs from the defaults. */
export function urlOf(view) {
  const params = new URLSearchParams();
  for (const key of FILTERS) if (view[key]) params.set(key, view[key]);
  if (view.sort !== DEFAULT_SORT) params.set("sort", view.sort);
  if (view.offset > 0) params.set("offset", String(view.offset));
  const search = params.toString();
  return search ? `/?${search}` : "/";
}

/** A date input's day as the instant it starts in the viewer's zone, shifted by `days`. */
function localDayStart(day, days = 0) {
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(y, m - 1, d + days);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/**
 * GET /runs for a view; the date range is in the viewer's days, "to" included. `paramPaths`:
 * the spec paths whose values the rows show.
 */
export function apiQuery(view, paramPaths = []) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(view.offset) });
  for (const key of ["q", "status", "dataset", "preset", "tag", "launcher"]) if (view[key]) params.set(key, view[key]);
  if (view.sort !== DEFAULT_SORT) params.set("sort", view.sort);
  const after = view.from && localDayStart(view.from);
  const before = view.to && localDayStart(view.to, 1);
  if (after) params.set("created_after", after);
  if (before) params.set("created_before", before);
  if (paramPaths.length) params.set("with_params", paramPaths.join(","));
  return `/runs?${params}`;
}

export function hasFilters(view) {
  return FILTERS.some((key) => view[key]);
}
