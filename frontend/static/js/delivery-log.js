// The Account page's notification deliveries card (admins): each webhook notification, newest
// first, with every attempt's answer or error; "Older entries" pages back with `before`.

import { api, showMessage } from "./api.js";
import { el, timeElement } from "./format.js";

const $ = (id) => document.getElementById(id);
let cursor = null;

function attempts(item) {
  if (!item.attempts.length) return el("span", { className: "muted", text: "not tried yet" });
  return el(
    "div",
    {},
    item.attempts.map((a) =>
      el(
        "span",
        { className: "attempt-line", dataset: { ok: String(a.ok) } },
        `#${a.number} `,
        timeElement(a.at),
        ` ${a.ok ? `${a.status_code} ok` : a.error || "failed"} (${a.duration_ms} ms)`,
      ),
    ),
  );
}

function row(item) {
  const about = `${item.subject_type} ${item.subject_id} “${item.subject_name}” ${item.event}`;
  return el(
    "tr",
    { dataset: { notificationId: String(item.id), state: item.webhook_state } },
    el("td", {}, timeElement(item.created_at)),
    el("td", { text: item.username || `#${item.user_id}` }),
    el("td", {}, el("a", { href: item.link, text: about })),
    el("td", {}, el("code", { text: item.webhook_state })),
    el("td", {}, attempts(item)),
  );
}

async function load(errorBox, { more = false } = {}) {
  const params = new URLSearchParams({ limit: "50" });
  if (more && cursor) params.set("before", String(cursor));
  try {
    const page = await api(`/notifications/deliveries?${params}`);
    const rows = page.items.map(row);
    if (more) $("deliveries-body").append(...rows);
    else $("deliveries-body").replaceChildren(...rows);
    cursor = page.next_before;
    $("deliveries-more").hidden = cursor === null;
    $("deliveries-empty").hidden = $("deliveries-body").children.length > 0;
  } catch (err) {
    showMessage(errorBox, err, { prefix: "Could not load the notification deliveries: " });
  }
}

/** Show the card and its first page (call for admins only). */
export async function startDeliveryLog(errorBox) {
  $("deliveries-more").addEventListener("click", () => load(errorBox, { more: true }));
  $("deliveries-card").hidden = false;
  await load(errorBox);
}
