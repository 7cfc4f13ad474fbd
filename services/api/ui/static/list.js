// The incident list: newest first, filters, paging over the cursor, "New incident", live updates.

import { api } from "./api.js";
import { clear, el, setText, severityName, timeElement } from "./render.js";
import { $, announce, handleFailure, state } from "./ui.js";

const PAGE_SIZE = 50;

function filters() {
  const chosen = {};
  const status = $("filter-status").value;
  const acknowledged = $("filter-acknowledged").value;
  const severity = $("filter-severity").value;
  if (status) chosen.status = status;
  if (acknowledged) chosen.acknowledged = acknowledged;
  if (severity) chosen.severity = severity;
  return chosen;
}

function matchesFilters(incident) {
  const chosen = filters();
  return (
    (!chosen.status || chosen.status === incident.status) &&
    (!chosen.acknowledged || chosen.acknowledged === incident.acknowledged) &&
    (!chosen.severity || chosen.severity === incident.severity)
  );
}

export async function loadList() {
  setText($("list-error"), "");
  try {
    const page = await api.list({ ...filters(), limit: PAGE_SIZE });
    state.list = { items: page.items, nextCursor: page.next_cursor };
  } catch (error) {
    handleFailure(error, $("list-error"));
    return;
  }
  renderList();
}

export async function loadMore() {
  if (!state.list.nextCursor) return;
  try {
    const page = await api.list({ ...filters(), limit: PAGE_SIZE, cursor: state.list.nextCursor });
    const known = new Set(state.list.items.map((i) => i.id));
    const added = page.items.filter((i) => !known.has(i.id));
    state.list.items.push(...added);
    state.list.nextCursor = page.next_cursor;
    renderList();
    const first = added.length ? document.querySelector(`#incident-list li[data-id="${added[0].id}"] a`) : null;
    (first || $("list-title")).focus();
    announce(`${added.length} more incidents loaded.`);
  } catch (error) {
    handleFailure(error, $("list-error"));
  }
}

function badge(kind, text) {
  return el("span", { class: `badge ${kind}` }, text);
}

// Shows "Critical"; a screen reader hears "Severity: Critical".
function severityBadge(severity) {
  const known = ["critical", "error", "warning", "info"].includes(severity) ? severity : "other";
  return el(
    "span",
    { class: `badge severity ${known}`, "data-severity": severity },
    el("span", { class: "visually-hidden" }, "Severity: "),
    severityName(severity),
  );
}

function incidentRow(incident) {
  const resolved = incident.status === "resolved";
  const acknowledged = incident.acknowledged === "yes";
  const meta = el(
    "p",
    { class: "meta" },
    el("span", {}, `#${incident.id}`),
    badge(resolved ? "resolved" : "open", resolved ? "Resolved" : "Unresolved"),
    badge(acknowledged ? "acked" : "unacked", acknowledged ? "Acknowledged" : "Not acknowledged"),
    incident.severity ? severityBadge(incident.severity) : null,
    el("span", {}, "opened ", timeElement(incident.created_at)),
  );
  const link = el("a", { href: `#/incidents/${incident.id}`, class: "title" }, incident.message);
  return el("li", { "data-id": incident.id, class: resolved ? "incident resolved" : "incident" }, link, meta);
}

function renderList() {
  const list = $("incident-list");
  const focusedId = document.activeElement?.closest?.("#incident-list li")?.dataset.id;
  clear(list);
  for (const incident of state.list.items) list.append(incidentRow(incident));
  $("list-empty").hidden = state.list.items.length > 0;
  $("load-more").hidden = !state.list.nextCursor;
  if (focusedId) document.querySelector(`#incident-list li[data-id="${focusedId}"] a`)?.focus();
}

export function applyToList(type, incident) {
  const items = state.list.items;
  const index = items.findIndex((i) => i.id === incident.id);
  if (type === "incident.deleted" || !matchesFilters(incident)) {
    if (index >= 0) items.splice(index, 1);
  } else if (index >= 0) {
    if (items[index].version > incident.version) return;
    items[index] = { ...items[index], ...incident };
  } else {
    const lowest = items.length ? items[items.length - 1].id : Infinity;
    if (state.list.nextCursor && incident.id < lowest) return; // beyond the pages loaded so far
    items.push(incident);
    items.sort((a, b) => b.id - a.id);
  }
  renderList();
}

export function toggleNewForm(open) {
  $("new-form").hidden = !open;
  $("new-incident").setAttribute("aria-expanded", String(open));
  setText($("new-error"), "");
  if (open) $("new-message").focus();
  else $("new-incident").focus();
}

export async function onCreate(event) {
  event.preventDefault();
  const message = $("new-message").value;
  if (!message.trim()) {
    setText($("new-error"), "Enter a message.");
    $("new-message").focus();
    return;
  }
  if (state.busy) return;
  state.busy = true;
  try {
    const created = await api.create(message);
    $("new-message").value = "";
    $("new-form").hidden = true;
    $("new-incident").setAttribute("aria-expanded", "false");
    announce(`Incident ${created.ID} created.`);
    window.location.hash = `#/incidents/${created.ID}`;
  } catch (error) {
    handleFailure(error, $("new-error"));
  } finally {
    state.busy = false;
  }
}
