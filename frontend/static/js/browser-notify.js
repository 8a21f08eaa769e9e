// Browser notifications while a Fitboard tab is open: when the Account page's switch is on and
// the browser allows it, poll GET /notifications/recent every 10 s and show each new one. The
// cursor is shared by the site's tabs (localStorage), and each notification's tag is its id,
// so two open tabs do not show it twice.

import { api } from "./api.js";

const POLL_MS = 10_000;
const CURSOR = "fitboard.notify.after";

/** The Slack-formatted text as plain text: <url|label> links to their label, entities back. */
function plain(text) {
  return text
    .replace(/<[^|>]*\|([^>]*)>/g, "$1")
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&amp;", "&");
}

function show(item) {
  const title = `Fitboard: ${item.subject_type} ${item.event}`;
  const note = new Notification(title, { body: plain(item.text), tag: `fitboard-${item.id}` });
  note.addEventListener("click", () => {
    window.focus();
    location.assign(item.link);
  });
  // what the page (and its tests) can listen to
  window.dispatchEvent(new CustomEvent("fitboard:notification", { detail: item }));
}

async function poll() {
  const stored = localStorage.getItem(CURSOR);
  const query = stored === null ? "" : `?after=${encodeURIComponent(stored)}`;
  const page = await api(`/notifications/recent${query}`);
  // another tab may have shown some meanwhile
  const seen = Number(localStorage.getItem(CURSOR) ?? -1);
  for (const item of page.items) if (item.id > seen) show(item);
  localStorage.setItem(CURSOR, String(Math.max(page.latest_id, seen)));
}

export async function startBrowserNotifications() {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const settings = await api("/notifications/settings");
    if (!settings.browser) return;
  } catch {
    return; // not signed in, or the server is away: the page says so itself
  }
  const loop = async () => {
    try {
      await poll();
    } catch (err) {
      console.warn(`notifications: ${err && err.message ? err.message : err}`);
    }
    setTimeout(loop, POLL_MS);
  };
  loop();
}
