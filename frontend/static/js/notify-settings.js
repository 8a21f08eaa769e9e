// The Account page's notification card: the events wanted for every run and sweep you launch,
// the webhook URL and its signing secret (shown once), and browser notifications on/off (the
// browser's permission is asked when it is switched on).

import { api, describeError, showMessage } from "./api.js";

const $ = (id) => document.getElementById(id);
const EVENTS = ["ended", "failed", "stalled"];

function show(settings) {
  for (const event of EVENTS) $(`notify-${event}`).checked = settings.events.includes(event);
  $("notify-webhook").value = settings.webhook_url || "";
  $("notify-browser").checked = settings.browser;
  $("notify-secret-state").textContent = settings.secret_set
    ? "Deliveries are signed with your secret (shown once when it was made)."
    : "A signing secret is made when you save a webhook URL.";
  if (settings.secret) showSecret(settings.secret);
}

function showSecret(secret) {
  $("notify-secret-value").textContent = secret;
  $("notify-secret-copy").textContent = "Copy";
  $("notify-secret").hidden = false;
}

/** Ask the browser's permission; false (and the box unticked) when it is refused. */
async function allowBrowser(errorBox) {
  if (!("Notification" in window)) {
    showMessage(errorBox, "This browser cannot show notifications.");
    return false;
  }
  const answer = Notification.permission === "granted"
    ? "granted"
    : await Notification.requestPermission();
  if (answer !== "granted") {
    showMessage(errorBox, "The browser refused notifications for this site: allow them in its site settings, then tick the box again.");
    return false;
  }
  return true;
}

async function save(errorBox) {
  showMessage(errorBox, null);
  $("notify-webhook").removeAttribute("aria-invalid");
  $("notify-status").textContent = "";
  const body = {
    webhook_url: $("notify-webhook").value.trim() || null,
    events: EVENTS.filter((event) => $(`notify-${event}`).checked),
    browser: $("notify-browser").checked,
  };
  try {
    show(await api("/notifications/settings", { method: "PUT", body }));
    $("notify-status").textContent = "Saved.";
  } catch (err) {
    if (err.errors && err.errors.some((e) => e.field === "webhook_url")) {
      $("notify-webhook").setAttribute("aria-invalid", "true");
    }
    showMessage(errorBox, err, { prefix: "Could not save your notifications: " });
  }
}

/** Wire the card's controls (at once, so no click goes to the browser's own form submit). */
export function wireNotifySettings(errorBox) {
  $("notify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    save(errorBox);
  });
  $("notify-browser").addEventListener("change", async (event) => {
    const box = event.currentTarget;
    if (box.checked && !(await allowBrowser(errorBox))) box.checked = false;
  });
  $("notify-secret-new").addEventListener("click", async () => {
    const sure = window.confirm("Make a new signing secret? Receivers that check the old one stop accepting deliveries until they have the new one.");
    if (!sure) return;
    try {
      showSecret((await api("/notifications/settings/secret", { method: "POST" })).secret);
    } catch (err) {
      showMessage(errorBox, err);
    }
  });
  $("notify-secret-copy").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    try {
      await navigator.clipboard.writeText($("notify-secret-value").textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy it";
    }
  });
}

/** Show the stored settings. */
export async function loadNotifySettings(errorBox) {
  try {
    show(await api("/notifications/settings"));
  } catch (err) {
    showMessage(errorBox, `Could not load your notifications: ${describeError(err)}`);
  }
}
