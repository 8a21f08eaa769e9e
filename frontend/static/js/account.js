// The account page: your API tokens (shown once), your password, your notifications, and for
// admins the users, the audit log and the notification deliveries.

import { api, describeError, showMessage } from "./api.js";
import { startAuditLog } from "./audit-log.js";
import { startDeliveryLog } from "./delivery-log.js";
import { loadNotifySettings, wireNotifySettings } from "./notify-settings.js";
import { el, timeElement } from "./format.js";
import { startWorkerTokens } from "./worker-tokens.js";

const $ = (id) => document.getElementById(id);
const errorBox = $("account-error");
let me = null;

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy it";
  }
}

function showSecret(box, valueNode, value) {
  valueNode.textContent = value;
  box.hidden = false;
}

// ---- tokens ----

async function loadTokens() {
  const { items } = await api("/auth/tokens");
  $("tokens-body").replaceChildren(
    ...items.map((token) =>
      el(
        "tr",
        { dataset: { tokenId: String(token.id) } },
        el("td", { text: token.name }),
        el("td", {}, el("code", { text: `${token.prefix}…` })),
        el("td", {}, timeElement(token.created_at)),
        el("td", {}, token.last_used_at ? timeElement(token.last_used_at) : el("span", { className: "muted", text: "never" })),
        el(
          "td",
          { className: "num" },
          el("button", {
            type: "button",
            className: "button danger",
            text: "Revoke",
            "aria-label": `Revoke token ${token.name}`,
            on: { click: () => revokeToken(token) },
          }),
        ),
      ),
    ),
  );
  $("tokens-empty").hidden = items.length > 0;
  $("tokens-table").hidden = items.length === 0;
}

async function revokeToken(token) {
  if (!window.confirm(`Revoke the token "${token.name}"? Scripts using it stop working.`)) return;
  try {
    await api(`/auth/tokens/${token.id}`, { method: "DELETE" });
    await loadTokens();
  } catch (err) {
    showMessage(errorBox, err);
  }
}

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage(errorBox, null);
  const name = $("token-name").value.trim();
  if (!name) {
    showMessage(errorBox, "Give the token a name, so you know later what uses it.");
    return;
  }
  try {
    const created = await api("/auth/tokens", { method: "POST", body: { name } });
    $("token-copy").textContent = "Copy";
    showSecret($("token-new"), $("token-value"), created.token);
    $("token-name").value = "";
    await loadTokens();
  } catch (err) {
    showMessage(errorBox, err);
  }
});
$("token-copy").addEventListener("click", (event) => copy($("token-value").textContent, event.currentTarget));

// ---- password ----

$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage(errorBox, null);
  const status = $("password-status");
  status.textContent = "";
  const current = $("current-password").value;
  const next = $("new-password").value;
  if (next !== $("repeat-password").value) {
    showMessage(errorBox, "The two new passwords differ.");
    return;
  }
  try {
    await api("/auth/password", { method: "POST", body: { current_password: current, new_password: next } });
    event.target.reset();
    status.textContent = "Password changed. Your other browsers were signed out.";
  } catch (err) {
    showMessage(errorBox, err);
  }
});

// ---- users (admins) ----

async function patchUser(user, changes, what) {
  showMessage(errorBox, null);
  try {
    const answer = await api(`/users/${user.id}`, { method: "PATCH", body: changes });
    if (answer.password) {
      $("user-secret-label").textContent =
        `New password of ${user.username} (signed out everywhere; their API tokens are revoked):`;
      $("user-secret-copy").textContent = "Copy";
      showSecret($("user-secret"), $("user-secret-value"), answer.password);
    }
  } catch (err) {
    showMessage(errorBox, err, { prefix: `Could not ${what}: ` });
  }
  await loadUsers();
}

function userRow(user) {
  const role = el(
    "select",
    { "aria-label": `Role of ${user.username}`, disabled: user.id === me.id },
    ["admin", "member", "viewer"].map((r) => el("option", { value: r, text: r, selected: r === user.role })),
  );
  role.addEventListener("change", () => patchUser(user, { role: role.value }, "change the role"));
  const toggle = el("button", {
    type: "button",
    className: user.is_active ? "button danger" : "button",
    text: user.is_active ? "Deactivate" : "Activate",
    disabled: user.id === me.id,
    on: { click: () => patchUser(user, { is_active: !user.is_active }, "change the state") },
  });
  const reset = el("button", {
    type: "button",
    className: "button",
    text: "Reset password",
    on: { click: () => patchUser(user, { reset_password: true }, "reset the password") },
  });
  return el(
    "tr",
    { dataset: { userId: String(user.id) } },
    el("td", { text: user.username }),
    el("td", {}, role),
    el("td", { className: user.is_active ? "" : "muted", text: user.is_active ? "active" : "deactivated" }),
    el("td", { className: "num actions-cell" }, reset, toggle),
  );
}

async function loadUsers() {
  try {
    const { items } = await api("/users");
    $("users-body").replaceChildren(...items.map(userRow));
  } catch (err) {
    showMessage(errorBox, err, { prefix: "Could not load the users: " });
  }
}

$("user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage(errorBox, null);
  const username = $("user-name").value.trim();
  if (!username) {
    showMessage(errorBox, "Enter a username.");
    return;
  }
  try {
    const made = await api("/users", { method: "POST", body: { username, role: $("user-role").value } });
    $("user-secret-label").textContent = `Password of ${made.user.username}:`;
    $("user-secret-copy").textContent = "Copy";
    showSecret($("user-secret"), $("user-secret-value"), made.password);
    $("user-name").value = "";
    await loadUsers();
  } catch (err) {
    showMessage(errorBox, err);
  }
});
$("user-secret-copy").addEventListener("click", (event) => copy($("user-secret-value").textContent, event.currentTarget));

async function start() {
  try {
    me = (await api("/auth/me")).user;
    $("account-who").textContent = `Signed in as ${me.username} (${me.role})`;
    await loadTokens();
    await loadNotifySettings(errorBox);
    if (me.role === "admin") {
      $("users-card").hidden = false;
      await loadUsers();
      await startWorkerTokens(errorBox, copy);
      await startAuditLog(errorBox);
      await startDeliveryLog(errorBox);
    }
  } catch (err) {
    showMessage(errorBox, `Could not load your account: ${describeError(err)}`);
  }
}

wireNotifySettings(errorBox);
start();
