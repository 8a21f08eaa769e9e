// The sign-in form: POST /auth/login sets the session cookie, then back to where you were.

import { api, showMessage } from "./api.js";

const $ = (id) => document.getElementById(id);
const form = $("login-form");
const errorBox = $("login-error");

/**
 * Only a path on this site (open redirects): a browser drops tabs and newlines inside a URL and
 * reads "\\" as "/", so "/\t/evil" or "/\\evil" would lead to another host; those are refused,
 * and whatever is left must still resolve to this origin.
 */
export function safeNext(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")) return "/";
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return "/";
  const url = new URL(value, location.origin);
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}

const wanted = new URLSearchParams(location.search).get("next");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage(errorBox, null);
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!username || !password) {
    showMessage(errorBox, "Enter your username and password.");
    return;
  }
  const button = $("login-submit");
  button.disabled = true;
  try {
    const me = await api("/auth/login", {
      method: "POST",
      body: { username, password, next: wanted },
    });
    // the server checked `next` too; checked again here in case an older server echoes it
    location.assign(safeNext(me.next));
  } catch (err) {
    showMessage(errorBox, err);
    $("login-password").select();
    button.disabled = false;
  }
});
