// The audit log card of the account page (admins): newest first, filter by action and user,
// "Older entries" pages back with the `before` cursor.

import { api, showMessage } from "./api.js";
import { el, timeElement } from "./format.js";

const $ = (id) => document.getElementById(id);

export const ACTIONS = [
  "signin", "signin_failed", "signout", "password_changed", "password_reset", "token_created",
  "token_revoked", "user_created", "role_changed", "user_deactivated", "user_activated",
  "run_deleted", "dataset_deleted",
];

let cursor = null;

function target(event) {
  if (!event.target_type) return el("span", { className: "muted", text: "—" });
  const label = event.target_name || `#${event.target_id}`;
  const detail = event.action === "role_changed" ? ` (${event.details.from} → ${event.details.to})` : "";
  return el("span", { text: `${event.target_type} ${label}${detail}` });
}

function row(event) {
  const who = event.actor_id === null && event.actor_name
    ? el("span", { text: `${event.actor_name} (tried)` })
    : el("span", { text: event.actor_name || "—" });
  return el(
    "tr",
    { dataset: { auditId: String(event.id), action: event.action } },
    el("td", {}, timeElement(event.at)),
    el("td", {}, el("code", { text: event.action })),
    el("td", {}, who),
    el("td", {}, target(event)),
    el("td", { text: event.address || "—" }),
  );
}

async function load(errorBox, { more = false } = {}) {
  const params = new URLSearchParams({ limit: "50" });
  const action = $("audit-action").value;
  const user = $("audit-user").value.trim();
  if (action) params.set("action", action);
  if (user) params.set("user", user);
  if (more && cursor) params.set("before", String(cursor));
  try {
    const page = await api(`/audit?${params}`);
    const rows = page.items.map(row);
    if (more) $("audit-body").append(...rows);
    else $("audit-body").replaceChildren(...rows);
    cursor = page.next_before;
    $("audit-more").hidden = cursor === null;
    $("audit-empty").hidden = $("audit-body").children.length > 0;
  } catch (err) {
    showMessage(errorBox, err, { prefix: "Could not load the audit log: " });
  }
}

/** Show the card and its first page (call for admins only). */
export async function startAuditLog(errorBox) {
  $("audit-action").append(...ACTIONS.map((a) => el("option", { value: a, text: a })));
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    load(errorBox);
  });
  $("audit-more").addEventListener("click", () => load(errorBox, { more: true }));
  $("audit-card").hidden = false;
  await load(errorBox);
}
