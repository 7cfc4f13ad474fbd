// One incident's page: its state, links and one newest-first timeline; writes send If-Match.
// A route change empties the page first, so another incident's data never shows under this heading.

import { api, ApiError, isAbort } from "./api.js";
import {
  clear,
  duration,
  el,
  lastChangeText,
  linkOrText,
  safeUrl,
  setText,
  severityName,
  timeElement,
} from "./render.js";
import { $, announce, beginLoad, describeFailure, endLoad, focusHeading, handleFailure, state } from "./ui.js";

const SYSTEMS = { jira: "Jira issue", slack: "Slack message", zendesk: "Zendesk ticket" };
const DEDUP_SHOWN = 32;

async function fetchIncident(id, signal) {
  const [incident, timeline] = await Promise.all([api.get(id, signal), api.timeline(id, signal)]);
  return { incident, timeline: timeline.items };
}

function setActionsEnabled(enabled) {
  for (const id of ["toggle-ack", "toggle-resolve"]) $(id).disabled = !enabled;
}

// Nothing of the incident shown before stays: no message, facts, timeline or buttons until this one loads.
function clearView(id) {
  state.incident = null;
  state.incidentId = id;
  setText($("incident-title"), `Incident #${id}`);
  $("incident-body").hidden = true;
  $("incident-actions").hidden = true;
  setActionsEnabled(false);
  hideNotice();
  setText($("comment-error"), "");
  for (const list of ["incident-timeline", "incident-links", "incident-labels"]) clear($(list));
  setText($("incident-message"), "");
  const loading = $("incident-loading");
  setText(loading, `Loading incident #${id}…`);
  loading.hidden = false;
}

export async function openIncident(id, focus) {
  clearView(id);
  if (focus) focusHeading("incident-title");
  await load(id);
}

// Fetches the incident the route names and shows it; a superseded load (another route, a newer reload) is dropped.
async function load(id) {
  const signal = beginLoad("incident");
  try {
    const { incident, timeline } = await fetchIncident(id, signal);
    if (signal.aborted || state.incidentId !== id) return false;
    if (!state.incident) hideNotice(); // a notice given while it loaded ("still loading") is answered now
    state.incident = incident;
    renderIncident(incident, timeline);
    return true;
  } catch (error) {
    if (isAbort(error) || signal.aborted || state.incidentId !== id) return false;
    $("incident-loading").hidden = true;
    if (error instanceof ApiError && error.status === 404) {
      showError(state.incident ? "This incident was deleted." : `Incident #${id} was not found.`);
    } else if (error instanceof ApiError && error.status === 401) {
      handleFailure(error, $("incident-notice"));
    } else if (!state.incident) {
      showError(`Incident #${id} could not be loaded. ${describeFailure(error)}`);
    } else {
      showNotice(`This page may be out of date. ${describeFailure(error)}`);
    }
    return false;
  } finally {
    endLoad("incident", signal);
  }
}

// An error view: the notice alone, never another incident's data or live buttons.
function showError(text) {
  state.incident = null;
  $("incident-body").hidden = true;
  $("incident-actions").hidden = true;
  setActionsEnabled(false);
  showNotice(text);
}

// Reload the open incident (a live event, a reconnect); coalesced: a burst causes at most one more fetch.
let reloading = null;
let reloadQueued = false;
export async function reloadIncident() {
  if (reloading) {
    reloadQueued = true;
    return reloading;
  }
  reloading = (async () => {
    do {
      reloadQueued = false;
      const id = state.incidentId;
      if (id === null || state.view !== "incident") return;
      await load(id);
    } while (reloadQueued);
  })();
  try {
    await reloading;
  } finally {
    reloading = null;
  }
}

function yesNo(value) {
  return value === "yes" ? "Yes" : "No";
}

// A fact the incident may not have: its row shows only when there is a value.
function showFact(id, content) {
  const node = $(id);
  node.replaceChildren(...(content ? [content].flat() : []));
  $(`${id}-row`).hidden = !content;
}

function renderLabels(labels) {
  const list = $("incident-labels");
  clear(list);
  const names = Object.keys(labels).sort();
  for (const name of names) list.append(el("div", {}, el("dt", {}, name), el("dd", {}, linkOrText(labels[name]))));
  $("incident-labels-section").hidden = names.length === 0;
  setText($("incident-labels-title"), `Labels (${names.length})`);
}

function dedupKey(key) {
  if (!key) return null;
  const shown = key.length > DEDUP_SHOWN ? `${key.slice(0, DEDUP_SHOWN)}…` : key;
  const copy = el("button", { type: "button", class: "quiet small copy", "aria-label": "Copy dedup key" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(key);
      setText(copy, "Copied");
      announce("Dedup key copied.");
    } catch {
      setText(copy, "Copy failed");
    }
  });
  return [el("code", { title: key, class: "dedup" }, shown), " ", copy];
}

function renderIncident(incident, timeline) {
  $("incident-loading").hidden = true;
  setText($("incident-title"), `Incident #${incident.id}`);
  setText($("incident-message"), incident.message);
  const resolved = incident.status === "resolved";
  setText($("incident-status"), resolved ? "Resolved" : "Unresolved");
  setText($("incident-duration"), openTextLong(incident));
  setText($("incident-acknowledged"), yesNo(incident.acknowledged));
  const ackedBy = incident.acknowledged === "yes" && incident.acknowledged_by;
  $("incident-acknowledged-by").replaceChildren(
    ...(ackedBy ? [`by ${incident.acknowledged_by} `, timeElement(incident.acknowledged_at)] : []),
  );
  showFact("incident-severity", incident.severity ? severityName(incident.severity) : "");
  $("incident-severity").dataset.severity = incident.severity || "";
  showFact("incident-source", incident.source ? linkOrText(incident.source) : "");
  showFact("incident-dedup-key", dedupKey(incident.dedup_key));
  renderLabels(incident.labels || {});
  $("incident-created").replaceChildren(timeElement(incident.created_at));
  const last = lastChangeText(incident);
  $("incident-updated").replaceChildren(
    ...(last ? [`${last} `, timeElement(incident.last_change.time)] : [timeElement(incident.updated_at)]),
  );
  $("incident-alerts").replaceChildren(
    String(incident.alert_count || 0),
    ...(incident.last_alert_at ? [" · last ", timeElement(incident.last_alert_at)] : []),
  );
  setText($("toggle-ack"), incident.acknowledged === "yes" ? "Unacknowledge" : "Acknowledge");
  setText($("toggle-resolve"), resolved ? "Reopen" : "Resolve");
  setActionsEnabled(!state.writing);
  $("incident-actions").hidden = false;
  $("incident-body").hidden = false;

  const links = $("incident-links");
  clear(links);
  for (const link of incident.links || []) {
    const label = `${SYSTEMS[link.system] || link.system}: ${link.id}`;
    const url = link.url ? safeUrl(link.url) : null;
    const content = url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, label) : label;
    links.append(el("li", {}, content));
  }
  if (!links.children.length) links.append(el("li", { class: "none" }, "None yet."));

  // One timeline, newest first: comments are its "commented" entries, never listed a second time.
  const items = $("incident-timeline");
  clear(items);
  for (const item of [...timeline].reverse()) {
    const what = item.type.replace(/^incident\./, "");
    const entry = el("li", { class: `entry ${what}` }, timeElement(item.time), " ", actorElement(item.actor), ` ${what}`);
    if (item.comment) entry.append(el("p", { class: "said" }, item.comment));
    items.append(entry);
  }
}

const OUTSIDE_TOOLS = { slack: "Slack", jira: "Jira", zendesk: "Zendesk" };

// `slack:alice` (a change made from Slack, Jira or Zendesk) shows as "alice via Slack".
function actorElement(actor) {
  const [tool, ...rest] = actor.split(":");
  if (OUTSIDE_TOOLS[tool] && rest.length) {
    return el("span", { class: "outside-actor" }, el("strong", {}, rest.join(":")), ` via ${OUTSIDE_TOOLS[tool]}`);
  }
  return el("strong", {}, actor);
}

function openTextLong(incident) {
  const opened = Date.parse(incident.created_at);
  if (incident.status === "resolved") {
    const done = Date.parse(incident.resolved_at || incident.updated_at);
    return `resolved after ${duration((done - opened) / 1000)}`;
  }
  return `open for ${duration((Date.now() - opened) / 1000)}`;
}

function showNotice(text) {
  const notice = $("incident-notice");
  setText(notice, text);
  notice.hidden = false;
}

export function hideNotice() {
  $("incident-notice").hidden = true;
  setText($("incident-notice"), "");
}

function describeChanges(before, after) {
  const changes = [];
  if (before.status !== after.status) changes.push(`status is now ${after.status}`);
  if (before.acknowledged !== after.acknowledged) {
    changes.push(after.acknowledged === "yes" ? "it was acknowledged" : "its acknowledgement was taken back");
  }
  if (before.message !== after.message) changes.push("its message was edited");
  if (before.severity !== after.severity) {
    changes.push(after.severity ? `severity is now ${severityName(after.severity)}` : "its severity was cleared");
  }
  const added = after.comments.length - before.comments.length;
  if (added > 0) changes.push(`${added} comment${added === 1 ? "" : "s"} added`);
  if (!changes.length) changes.push(`it moved from version ${before.version} to ${after.version}`);
  return changes.join(", ");
}

// Every write sends If-Match with the version shown; a conflict reloads and says what changed.
// A click never vanishes: it acts, or the page says why it did not.
async function write(action, done) {
  const before = state.incident;
  if (!before) {
    showNotice("This incident is still loading: try again once it shows.");
    return false;
  }
  if (state.writing) {
    announce("Your previous action is still being saved.");
    showNotice("Your previous action is still being saved: wait for it, then try again.");
    return false;
  }
  state.writing = true;
  setActionsEnabled(false);
  hideNotice();
  try {
    await action(before);
    announce(done);
    await reloadIncident();
    return true;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 412 || error.status === 409)) {
      await reloadIncident();
      const after = state.incident;
      const what = after ? describeChanges(before, after) : "it was deleted";
      showNotice(`Not saved: this incident changed while you were looking (${what}). Check its current state and try again.`);
    } else if (error instanceof ApiError && error.status === 404) {
      showNotice("This incident was deleted.");
    } else if (error instanceof ApiError && error.status === 401) {
      handleFailure(error, $("incident-notice"));
    } else {
      showNotice(`Not saved. ${describeFailure(error)}`);
    }
    return false;
  } finally {
    state.writing = false;
    setActionsEnabled(Boolean(state.incident));
  }
}

function takeNote() {
  const note = $("note").value.trim();
  return note || undefined;
}

export async function onToggleAck() {
  const acked = state.incident?.acknowledged === "yes";
  const note = takeNote();
  const saved = await write(
    (i) => api.act(i.id, acked ? "unacknowledge" : "acknowledge", i.version, note),
    acked ? "Acknowledgement taken back." : "Acknowledged.",
  );
  if (saved && note) $("note").value = "";
  if (saved) $("toggle-ack").focus();
}

export async function onToggleResolve() {
  const resolved = state.incident?.status === "resolved";
  const note = takeNote();
  const saved = await write(
    (i) => api.act(i.id, resolved ? "reopen" : "resolve", i.version, note),
    resolved ? "Reopened." : "Resolved.",
  );
  if (saved && note) $("note").value = "";
  if (saved) $("toggle-resolve").focus();
}

export async function onComment(event) {
  event.preventDefault();
  const text = $("comment").value;
  if (!text.trim()) {
    setText($("comment-error"), "Enter a comment.");
    $("comment").focus();
    return;
  }
  setText($("comment-error"), "");
  const saved = await write((i) => api.comment(i.id, text, i.version), "Comment added.");
  if (saved) $("comment").value = "";
  $("comment").focus();
}

// A live event for the open incident: reload it (its links and timeline are not in the event).
export function applyToIncident(event) {
  const incident = event.data.incident;
  if (state.incidentId !== incident.id || !state.incident) return;
  if (event.type === "incident.deleted") {
    showNotice("This incident was deleted.");
    setActionsEnabled(false);
  } else if (incident.version > state.incident.version) {
    reloadIncident();
  }
}
