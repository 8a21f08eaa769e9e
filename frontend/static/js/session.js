// Who is signed in, shown at the right of the top bar, with a link to the account page and
// a sign-out button. Every page loads it next to its own script.

import { api, describeError } from "./api.js";
import { startBrowserNotifications } from "./browser-notify.js";
import { el } from "./format.js";

async function signOut(button) {
  button.disabled = true;
  try {
    await api("/auth/logout", { method: "POST" });
  } catch (err) {
    // signed out already (or the server is away): the sign-in page is where to go either way
    console.warn(`sign-out: ${describeError(err)}`);
  }
  location.assign("/login");
}

async function showUser() {
  const bar = document.querySelector(".topbar");
  if (!bar) return;
  let box = document.getElementById("nav-user");
  if (!box) {
    box = el("div", { id: "nav-user", className: "nav-user" });
    bar.append(box);
  }
  let me;
  try {
    me = await api("/auth/me");
  } catch {
    return; // a 401 already went to the sign-in page
  }
  const { user, auth } = me;
  const account = el("a", {
    href: "/account",
    className: "nav-user-name",
    title: `Your account (${user.role})`,
    text: user.display_name || user.username,
    "aria-current": location.pathname === "/account" ? "page" : false,
  });
  const role = el("span", { className: "nav-user-role", text: user.role });
  const parts = [account, role];
  if (auth === "session") {
    const button = el("button", { type: "button", className: "nav-signout", id: "sign-out", text: "Sign out" });
    button.addEventListener("click", () => signOut(button));
    parts.push(button);
  }
  box.replaceChildren(...parts);
  document.body.dataset.role = user.role;
}

showUser();
startBrowserNotifications();
