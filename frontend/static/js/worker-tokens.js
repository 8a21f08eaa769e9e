// The account page's worker tokens (admins): create one (shown once), list, revoke.

import { api, showMessage } from "./api.js";
import { el, timeElement } from "./format.js";

const $ = (id) => document.getElementById(id);

export async function startWorkerTokens(errorBox, copy) {
  $("worker-tokens-card").hidden = false;

  async function load() {
    const { items } = await api("/worker-tokens");
    $("worker-tokens-body").replaceChildren(
      ...items.map((token) =>
        el(
          "tr",
          { dataset: { workerTokenId: String(token.id) } },
          el("td", { text: token.name }),
          el("td", {}, el("code", { text: `${token.prefix}…` })),
          el("td", { text: token.last_host || "—" }),
          el("td", {}, token.last_used_at ? timeElement(token.last_used_at) : el("span", { className: "muted", text: "never" })),
          el(
            "td",
            {},
            el("button", {
              type: "button",
              className: "button danger",
              text: "Revoke",
              "aria-label": `Revoke worker token ${token.name}`,
              on: { click: () => revoke(token) },
            }),
          ),
        ),
      ),
    );
    $("worker-tokens-empty").hidden = items.length > 0;
    $("worker-tokens-table").hidden = items.length === 0;
  }

  async function revoke(token) {
    if (!window.confirm(`Revoke the worker token "${token.name}"? Its worker takes no new run.`)) return;
    try {
      await api(`/worker-tokens/${token.id}`, { method: "DELETE" });
      await load();
    } catch (err) {
      showMessage(errorBox, err);
    }
  }

  $("worker-token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("worker-token-name").value.trim();
    if (!name) {
      showMessage(errorBox, "Give the worker token a name, e.g. the host it is for.");
      return;
    }
    try {
      const created = await api("/worker-tokens", { method: "POST", body: { name } });
      $("worker-token-copy").textContent = "Copy";
      $("worker-token-value").textContent = created.token;
      $("worker-token-new").hidden = false;
      $("worker-token-name").value = "";
      await load();
    } catch (err) {
      showMessage(errorBox, err);
    }
  });
  $("worker-token-copy").addEventListener("click", (event) =>
    copy($("worker-token-value").textContent, event.currentTarget),
  );
  await load();
}
