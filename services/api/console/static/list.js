// The incident list: open incidents most severe first by default, filters in the URL, search, paging over
// the cursor, acknowledge from a row, bulk actions, "New incident", live updates.

import { api, ApiError, isAbort } from "./api.js";
import {
  ackText,
  clear,
  el,
  lastChangeText,
  linkOrText,
  openText,
  SEVERITY_RANK,
  setText,
  severityName,
  timeElement,
  withEvent,
} from "./render.js";
import { $, announce, beginLoad, currentRoute, describeFailure, endLoad, handleFailure, state } from "./ui.js";

const PAGE_SIZE = 50;
const DEFAULTS = { status: "unresolved", sort: "severity" };
const FIELDS = ["q", "status", "acknowledged", "severity", "source", "label", "sort"];

// ---------- filters, kept in the URL ----------

export function filtersFromRoute() {
  const params = currentRoute().params || new URLSearchParams();
  const chosen = {};
  for (const name of FIELDS) chosen[name] = params.get(name) ?? DEFAULTS[name] ?? "";
  return chosen;
}

function showFilters(chosen) {
  for (const name of FIELDS) {
    const field = $(`filter-${name}`);
    if (field.value !== chosen[name]) field.value = chosen[name];
    if (field.tagName === "SELECT" && field.value !== chosen[name]) field.value = DEFAULTS[name] ?? "";
  }
}

function formFilters() {
  const chosen = {};
  for (const name of FIELDS) chosen[name] = $(`filter-${name}`).value.trim();
  return chosen;
}

// The form's filters become the URL (without a history entry per keystroke), then the list loads.
export function onFiltersChanged() {
  const chosen = formFilters();
  const query = new URLSearchParams();
  for (const name of FIELDS) if (chosen[name] && chosen[name] !== DEFAULTS[name]) query.set(name, chosen[name]);
  const text = query.toString();
  history.replaceState(null, "", text ? `#/?${text}` : "#/");
  loadList();
}

let typing = null;
export function onSearchInput() {
  window.clearTimeout(typing);
  typing = window.setTimeout(onFiltersChanged, 250);
}

function apiParams(chosen) {
  const params = { limit: PAGE_SIZE, sort: chosen.sort || "severity" };
  if (chosen.status && chosen.status !== "any") params.status = chosen.status;
  for (const name of ["acknowledged", "severity", "source", "q"]) if (chosen[name]) params[name] = chosen[name];
  const label = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(chosen.label || "");
  if (label) params[`labels.${label[1]}`] = label[2];
  return params;
}

function matchesFilters(incident, chosen) {
  const label = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(chosen.label || "");
  return (
    (chosen.status === "any" || !chosen.status || chosen.status === incident.status) &&
    (!chosen.acknowledged || chosen.acknowledged === incident.acknowledged) &&
    (!chosen.severity || chosen.severity === incident.severity) &&
    (!chosen.source || chosen.source === incident.source) &&
    (!label || (incident.labels || {})[label[1]] === label[2])
  );
}

// The API's order: most severe, unacknowledged first, newest; or newest first.
function compare(sort) {
  if (sort === "newest") return (a, b) => b.id - a.id;
  const rank = (i) => SEVERITY_RANK[i.severity] ?? 4;
  return (a, b) => rank(a) - rank(b) || (a.acknowledged > b.acknowledged ? 1 : a.acknowledged < b.acknowledged ? -1 : 0) || b.id - a.id;
}

// ---------- loading ----------

let pendingEvents = null; // live events that arrive while a load is in flight, applied after it

export async function loadList() {
  const chosen = filtersFromRoute();
  showFilters(chosen);
  const signal = beginLoad("list");
  pendingEvents = [];
  setText($("list-error"), "");
  $("list-loading").hidden = false;
  $("incident-list").setAttribute("aria-busy", "true");
  try {
    const page = await api.list(apiParams(chosen), signal);
    if (signal.aborted) return;
    state.list = { items: page.items, nextCursor: page.next_cursor, versions: state.list.versions, chosen };
    for (const item of page.items) noteVersion(item);
    const missed = pendingEvents;
    pendingEvents = null;
    for (const event of missed) applyToList(event, false);
    renderList();
  } catch (error) {
    if (isAbort(error) || signal.aborted) return;
    pendingEvents = null;
    handleFailure(error, $("list-error"));
  } finally {
    if (!signal.aborted) {
      $("list-loading").hidden = true;
      $("incident-list").removeAttribute("aria-busy");
    }
    endLoad("list", signal);
  }
}

export async function loadMore() {
  if (!state.list.nextCursor) return;
  const chosen = state.list.chosen || filtersFromRoute();
  const signal = beginLoad("list");
  $("list-loading").hidden = false;
  try {
    const page = await api.list({ ...apiParams(chosen), cursor: state.list.nextCursor }, signal);
    if (signal.aborted) return;
    const known = new Set(state.list.items.map((i) => i.id));
    const added = page.items.filter((i) => !known.has(i.id));
    for (const item of added) noteVersion(item);
    state.list.items.push(...added);
    state.list.nextCursor = page.next_cursor;
    renderList();
    const first = added.length ? document.querySelector(`#incident-list li[data-id="${added[0].id}"] a`) : null;
    (first || $("list-title")).focus();
    announce(`${added.length} more incidents loaded.`);
  } catch (error) {
    if (!isAbort(error)) handleFailure(error, $("list-error"));
  } finally {
    if (!signal.aborted) $("list-loading").hidden = true;
    endLoad("list", signal);
  }
}

function noteVersion(incident) {
  const seen = state.list.versions.get(incident.id) || 0;
  if (incident.version > seen) state.list.versions.set(incident.id, incident.version);
}

// ---------- rows ----------

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
  const selected = selection.has(incident.id);
  const check = el("input", { type: "checkbox" });
  check.checked = selected;
  check.addEventListener("change", () => {
    if (check.checked) selection.add(incident.id);
    else selection.delete(incident.id);
    updateBulk();
  });
  const last = lastChangeText(incident);
  const meta = el(
    "p",
    { class: "meta" },
    el("span", { class: "id" }, `#${incident.id}`),
    badge(resolved ? "resolved" : "open", resolved ? "Resolved" : "Unresolved"),
    badge(acknowledged ? "acked" : "unacked", ackText(incident)),
    el("span", { class: "age" }, openText(incident)),
    incident.alert_count ? el("span", { class: "alerts" }, `${incident.alert_count} alert${incident.alert_count === 1 ? "" : "s"}`) : null,
    last ? el("span", { class: "last" }, `${last} `, timeElement(incident.last_change.time)) : el("span", {}, "opened ", timeElement(incident.created_at)),
    incident.source ? el("span", { class: "source" }, linkOrText(incident.source)) : null,
  );
  const link = el("a", { href: `#/incidents/${incident.id}`, class: "title" }, incident.message);
  const actions = el("span", { class: "row-actions" });
  if (!resolved && !acknowledged) {
    const ack = el("button", { type: "button", class: "quiet small", "aria-label": `Acknowledge #${incident.id}` }, "Ack");
    ack.addEventListener("click", () => actOnRow(incident.id, "acknowledge"));
    actions.append(ack);
  }
  return el(
    "li",
    {
      "data-id": incident.id,
      "data-severity": incident.severity || "none",
      class: `incident${resolved ? " resolved" : ""}${acknowledged ? " acked" : ""}`,
    },
    el("label", { class: "select" }, check, el("span", { class: "visually-hidden" }, `Select #${incident.id}`)),
    incident.severity ? severityBadge(incident.severity) : el("span", { class: "no-severity", "aria-hidden": "true" }),
    el("div", { class: "main" }, link, meta),
    actions,
  );
}

function renderList() {
  const list = $("incident-list");
  const focusedId = document.activeElement?.closest?.("#incident-list li")?.dataset.id;
  clear(list);
  for (const incident of state.list.items) list.append(incidentRow(incident));
  $("list-empty").hidden = state.list.items.length > 0;
  $("load-more").hidden = !state.list.nextCursor;
  for (const id of [...selection]) if (!state.list.items.some((i) => i.id === id)) selection.delete(id);
  updateBulk();
  if (focusedId) document.querySelector(`#incident-list li[data-id="${focusedId}"] a`)?.focus();
}

// A live event: older versions than one already seen are dropped, so a late event never brings back a row.
export function applyToList(event, render = true) {
  if (pendingEvents !== null) {
    pendingEvents.push(event);
    return;
  }
  const incoming = event.data.incident;
  const seen = state.list.versions.get(incoming.id) || 0;
  if (incoming.version <= seen && event.type !== "incident.deleted") return;
  state.list.versions.set(incoming.id, incoming.version);
  const chosen = state.list.chosen || filtersFromRoute();
  const items = state.list.items;
  const index = items.findIndex((i) => i.id === incoming.id);
  const incident = withEvent(index >= 0 ? items[index] : null, event);
  if (event.type === "incident.deleted" || !matchesFilters(incident, chosen)) {
    if (index >= 0) items.splice(index, 1);
  } else if (index >= 0) {
    items[index] = incident;
    items.sort(compare(chosen.sort));
  } else if (chosen.q) {
    return; // whether a new incident matches the search is the API's to say: the next load shows it
  } else {
    const order = compare(chosen.sort);
    const lastShown = items[items.length - 1];
    if (state.list.nextCursor && lastShown && order(incident, lastShown) > 0) return; // beyond the pages loaded
    items.push(incident);
    items.sort(order);
  }
  if (render) renderList();
}

// ---------- acting from the list ----------

const selection = new Set();

function updateBulk() {
  const count = selection.size;
  $("bulk-acknowledge").disabled = count === 0;
  $("bulk-resolve").disabled = count === 0;
  setText($("bulk-acknowledge"), count ? `Acknowledge selected (${count})` : "Acknowledge selected");
  setText($("bulk-resolve"), count ? `Resolve selected (${count})` : "Resolve selected");
  const all = $("select-all");
  all.checked = count > 0 && count === state.list.items.length;
  all.indeterminate = count > 0 && count < state.list.items.length;
}

export function onSelectAll() {
  if ($("select-all").checked) for (const i of state.list.items) selection.add(i.id);
  else selection.clear();
  renderList();
}

const DONE = { acknowledge: "acknowledged", resolve: "resolved" };

function whyNot(error) {
  if (error instanceof ApiError && (error.status === 412 || error.status === 409)) {
    return "not saved: it changed since the list was loaded, check it and try again";
  }
  if (error instanceof ApiError && error.status === 404) return "not saved: it was deleted";
  return `not saved: ${describeFailure(error)}`;
}

// Each incident with its own If-Match (the version shown); the answer is reported per incident.
export async function onBulk(action) {
  const chosen = state.list.items.filter((i) => selection.has(i.id));
  if (!chosen.length) return;
  const report = $("bulk-report");
  report.hidden = false;
  setText(report, `Sending ${chosen.length}…`);
  const results = await Promise.allSettled(chosen.map((i) => api.act(i.id, action, i.version)));
  const lines = results.map((result, n) =>
    result.status === "fulfilled" ? `#${chosen[n].id} ${DONE[action]}` : `#${chosen[n].id} ${whyNot(result.reason)}`,
  );
  const saved = results.filter((r) => r.status === "fulfilled").length;
  clear(report);
  report.append(el("p", {}, `${saved} of ${chosen.length} ${DONE[action]}.`), el("ul", {}, ...lines.map((l) => el("li", {}, l))));
  selection.clear();
  await loadList();
}

export async function actOnRow(id, action) {
  const incident = state.list.items.find((i) => i.id === id);
  if (!incident) return;
  try {
    await api.act(id, action, incident.version);
    announce(`Incident ${id} ${DONE[action]}.`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return handleFailure(error, $("list-error"));
    setText($("list-error"), `#${id} ${whyNot(error)}`);
  }
}

// j/k and a/r on the row whose link has the focus.
export function focusedRowId() {
  return Number(document.activeElement?.closest?.("#incident-list li")?.dataset.id) || null;
}

export function moveFocus(step) {
  const links = [...document.querySelectorAll("#incident-list li a.title")];
  if (!links.length) return;
  const at = links.indexOf(document.activeElement);
  const next = at < 0 ? 0 : Math.min(links.length - 1, Math.max(0, at + step));
  links[next].focus();
  links[next].scrollIntoView({ block: "nearest" });
}

// ---------- new incident ----------

export function toggleNewForm(open) {
  $("new-form").hidden = !open;
  $("new-incident").setAttribute("aria-expanded", String(open));
  setText($("new-error"), "");
  if (open) $("new-message").focus();
  else $("new-incident").focus();
}

function parseLabels(text) {
  const labels = {};
  for (const line of text.split(/\n|,/)) {
    if (!line.trim()) continue;
    const match = /^\s*([^=]+?)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) throw new Error(`"${line.trim()}" is not name=value`);
    labels[match[1]] = match[2];
  }
  return labels;
}

export async function onCreate(event) {
  event.preventDefault();
  const message = $("new-message").value;
  if (!message.trim()) {
    setText($("new-error"), "Enter a message.");
    $("new-message").focus();
    return;
  }
  const fields = { message };
  try {
    const labels = parseLabels($("new-labels").value);
    if (Object.keys(labels).length) fields.labels = labels;
  } catch (error) {
    setText($("new-error"), `Labels: ${error.message}.`);
    $("new-labels").focus();
    return;
  }
  if ($("new-severity").value) fields.severity = $("new-severity").value;
  if ($("new-source").value.trim()) fields.source = $("new-source").value.trim();
  if (state.creating) {
    setText($("new-error"), "Still creating the previous incident…");
    return;
  }
  state.creating = true;
  try {
    const created = await api.create(fields);
    for (const id of ["new-message", "new-labels", "new-source", "new-severity"]) $(id).value = "";
    $("new-form").hidden = true;
    $("new-incident").setAttribute("aria-expanded", "false");
    announce(`Incident ${created.ID} created.`);
    window.location.hash = `#/incidents/${created.ID}`;
  } catch (error) {
    handleFailure(error, $("new-error"));
  } finally {
    state.creating = false;
  }
}
