// hookd's console: live updates of deliveries by Server-Sent Events, and the Resend
// button without leaving the page. Text goes in with textContent only, never as HTML.
"use strict";

function liveSource(element) {
  const query = element.dataset.live;
  if (query === undefined || !window.EventSource) return null;
  return new EventSource("/ui/live?" + query);
}

function setField(root, name, value) {
  const cell = root.querySelector('[data-field="' + name + '"]');
  if (cell) cell.textContent = value === null || value === undefined ? "" : String(value);
  return cell;
}

function showStatus(root, delivery) {
  const cell = setField(root, "status", delivery.status_word);
  if (cell) {
    cell.className = "status status-" + delivery.status;
    cell.dataset.status = delivery.status;
  }
}

function newRow(table, delivery) {
  const row = document.createElement("tr");
  row.dataset.id = String(delivery.id);
  const cells = [
    ["a", "/ui/deliveries/" + delivery.id, String(delivery.id)],
    ["status", null, delivery.status_word],
    [null, null, delivery.event],
    ["a", "/ui/endpoints/" + encodeURIComponent(delivery.endpoint_id), delivery.endpoint_id],
    ["attempts", null, String(delivery.attempts)],
    ["last_status_code", null, delivery.last_status_code === null ? "" : String(delivery.last_status_code)],
    [null, null, delivery.created_at],
  ];
  for (const [kind, href, text] of cells) {
    const cell = document.createElement("td");
    if (kind === "a") {
      const link = document.createElement("a");
      link.href = href;
      link.textContent = text;
      cell.appendChild(link);
    } else {
      cell.textContent = text;
      if (kind) cell.dataset.field = kind;
    }
    row.appendChild(cell);
  }
  showStatus(row, delivery);
  table.tBodies[0].prepend(row);
}

function watchTable(table) {
  const source = liveSource(table);
  if (!source) return;
  source.addEventListener("delivery", (message) => {
    const delivery = JSON.parse(message.data);
    const row = table.querySelector('tr[data-id="' + delivery.id + '"]');
    if (!row) {
      newRow(table, delivery);
      return;
    }
    showStatus(row, delivery);
    setField(row, "attempts", delivery.attempts);
    setField(row, "last_status_code", delivery.last_status_code);
  });
}

function attemptItem(attempt) {
  const item = document.createElement("li");
  item.className = "attempt";
  const parts = [
    ["number", "#" + attempt.number],
    ["code", attempt.status_code === null ? "\u2014" : String(attempt.status_code)],
    ["duration", Math.round(attempt.duration_ms) + " ms"],
    ["started", attempt.started_at],
  ];
  if (attempt.error) parts.push(["error-text", attempt.error_kind + ": " + attempt.error]);
  for (const [name, text] of parts) {
    const span = document.createElement("span");
    span.className = name;
    span.textContent = text;
    item.appendChild(span);
  }
  if (attempt.response_excerpt) {
    const pre = document.createElement("pre");
    pre.className = "excerpt";
    pre.textContent = attempt.response_excerpt;
    item.appendChild(pre);
  }
  return item;
}

function watchDelivery(section) {
  const source = liveSource(section);
  if (!source) return;
  source.addEventListener("delivery", (message) => {
    const delivery = JSON.parse(message.data);
    showStatus(section, delivery);
    setField(section, "attempts", delivery.attempts);
    setField(section, "next_attempt_at", delivery.next_attempt_at);
    const list = section.querySelector("#attempts");
    if (list && Array.isArray(delivery.attempt_log)) {
      list.replaceChildren(...delivery.attempt_log.map(attemptItem));
    }
  });
}

// The Resend button posts the same form (its CSRF token included) and stays on the page:
// the live stream shows what the retry does.
function resendInPlace(form) {
  form.addEventListener("submit", (submit) => {
    submit.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    }).finally(() => {
      if (button) button.disabled = false;
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("deliveries");
  if (table) watchTable(table);
  const section = document.getElementById("delivery");
  if (section) watchDelivery(section);
  const retry = document.getElementById("retry");
  if (retry) resendInPlace(retry);
});
