// The sign-in form: POST /auth/login sets the session cookie, then back to where you were.

import { api, showMessage } from "./api.js";

const $ = (id) => document.getElementById(id);
const form = $("login-form");
const errorBox = $("login-error");

/** Only a path on this site: never an absolute or protocol-relative URL (open redirects). */
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

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
    await api("/auth/login", { method: "POST", body: { username, password } });
    location.assign(nextPage());
  } catch (err) {
    showMessage(errorBox, err);
    $("login-password").select();
    button.disabled = false;
  }
});
