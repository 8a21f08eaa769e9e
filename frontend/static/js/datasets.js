// Datasets page: the uploads (GET /datasets) and a form that uploads one (multipart POST);
// a 422 shows next to the field it names.

import { API, ApiError, api, authHeaders, describeError, showMessage } from "./api.js";
import { el, formatCount, timeElement } from "./format.js";

const $ = (id) => document.getElementById(id);
const form = $("upload-form");
const FIELDS = ["file", "name", "kind", "target_column", "text_column"];

function fieldError(name) {
  return form.querySelector(`[data-error-for="${name}"]`);
}

function clearErrors() {
  for (const name of FIELDS) {
    const node = fieldError(name);
    node.textContent = "";
    node.hidden = true;
  }
  showMessage($("upload-error"), null);
}

/** "target_column", "body.target_column", "form.name"… -> the form field it names, if any. */
function formField(field) {
  if (!field) return null;
  const last = String(field).split(".").pop();
  return FIELDS.includes(last) ? last : null;
}

function showErrors(err) {
  const items = err instanceof ApiError && err.errors.length ? err.errors : [];
  const general = [];
  for (const item of items) {
    const name = formField(item.field);
    if (name) {
      const node = fieldError(name);
      node.textContent = node.textContent ? `${node.textContent} ${item.message}` : String(item.message || "");
      node.hidden = false;
    } else {
      general.push(item.message || "");
    }
  }
  if (!items.length) showMessage($("upload-error"), err, { prefix: "Could not upload: " });
  else if (general.length) showMessage($("upload-error"), `Could not upload: ${general.join("; ")}`);
}

function syncKind() {
  const csv = $("upload-kind").value === "csv";
  for (const node of form.querySelectorAll("[data-csv-only]")) node.hidden = !csv;
}

function shapeText(shape) {
  return Array.isArray(shape) && shape.length ? `(${shape.join(", ")}${shape.length === 1 ? "," : ""})` : "—";
}

function classesText(item) {
  const names = Array.isArray(item.class_names) ? item.class_names : [];
  const shown = names.slice(0, 6).join(", ");
  const more = names.length > 6 ? `, … (${names.length})` : "";
  return `${formatCount(item.num_classes)}${names.length ? `: ${shown}${more}` : ""}`;
}

function render(items) {
  const table = $("datasets-table");
  $("datasets-empty").hidden = items.length > 0;
  table.hidden = items.length === 0;
  table.tBodies[0].replaceChildren(
    ...items.map((item) =>
      el(
        "tr",
        { dataset: { id: String(item.id) } },
        el("td", { className: "name-cell" }, el("span", { text: item.name }), el("div", { className: "muted", text: item.filename || "" })),
        el("td", {}, el("span", { className: "tag", text: item.kind })),
        el("td", { className: "num", text: formatCount(item.num_examples) }),
        el("td", { className: "name-cell", text: classesText(item) }),
        el("td", { className: "mono", text: shapeText(item.input_shape) }),
        el("td", {}, timeElement(item.created_at)),
        el("td", {}, el("a", { className: "button small", href: `/new?dataset_upload=${encodeURIComponent(item.id)}`, text: "New run with this dataset" })),
      ),
    ),
  );
}

async function load() {
  try {
    const { items } = await api("/datasets");
    showMessage($("datasets-error"), null);
    render(items || []);
  } catch (err) {
    showMessage($("datasets-error"), err, { prefix: "Could not load the datasets: " });
  }
}

async function upload(event) {
  event.preventDefault();
  clearErrors();
  const file = $("upload-file").files[0];
  if (!file) {
    fieldError("file").textContent = "Choose a file to upload.";
    fieldError("file").hidden = false;
    return;
  }
  const body = new FormData();
  body.append("file", file);
  body.append("name", $("upload-name").value);
  body.append("kind", $("upload-kind").value);
  if ($("upload-kind").value === "csv") {
    if ($("upload-target").value.trim()) body.append("target_column", $("upload-target").value);
    if ($("upload-text").value.trim()) body.append("text_column", $("upload-text").value);
  }
  const button = $("upload-submit");
  button.disabled = true;
  $("upload-status").textContent = "Uploading…";
  try {
    let response;
    try {
      response = await fetch(`${API}/datasets`, { method: "POST", body, headers: { Accept: "application/json", ...authHeaders("POST") } });
    } catch (err) {
      throw new ApiError({ status: 0, detail: `Could not reach the Fitboard server (${err.message}).`, code: "network_error" });
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (!response.ok) {
      const detail = answer && typeof answer.detail === "string" ? answer.detail : `The server answered ${response.status}`;
      throw new ApiError({ status: response.status, detail, code: answer && answer.code, errors: answer && answer.errors });
    }
    $("upload-status").textContent = `Uploaded ${answer && answer.name ? answer.name : "the dataset"}.`;
    form.reset();
    syncKind();
    await load();
  } catch (err) {
    $("upload-status").textContent = "";
    showErrors(err);
  } finally {
    button.disabled = false;
  }
}

$("upload-kind").addEventListener("change", syncKind);
form.addEventListener("submit", upload);
syncKind();
load().catch((err) => showMessage($("datasets-error"), describeError(err)));
