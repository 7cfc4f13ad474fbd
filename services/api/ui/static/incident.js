// One incident's page: its state, links, comments and timeline; writes send If-Match.

import { api, ApiError } from "./api.js";
import { clear, el, safeUrl, setText, severityName, timeElement } from "./render.js";
import { $, announce, currentRoute, focusHeading, handleFailure, state } from "./ui.js";

const SYSTEMS = { jira: "Jira issue", slack: "Slack message", zendesk: "Zendesk ticket" };

async function fetchIncident(id) {
  const [incident, timeline] = await Promise.all([api.get(id), api.timeline(id)]);
  return { incident, timeline: timeline.items };
}

export async function openIncident(id, focus) {
  state.incident = null;
  hideNotice();
  setText($("incident-title"), `Incident #${id}`);
  setText($("comment-error"), "");
  try {
    const { incident, timeline } = await fetchIncident(id);
    state.incident = incident;
    renderIncident(incident, timeline);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) showNotice(`Incident #${id} was not found.`);
    else handleFailure(error, $("incident-notice"));
    $("incident-notice").hidden = false;
  }
  if (focus) focusHeading("incident-title");
}

// Fetches and shows the open incident now; false when it is gone or could not be read.
async function showCurrent(id) {
  try {
    const { incident, timeline } = await fetchIncident(id);
    if (state.view === "incident" && currentRoute().id === id) {
      state.incident = incident;
      renderIncident(incident, timeline);
    }
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) showNotice("This incident was deleted.");
    else handleFailure(error, $("incident-notice"));
    return false;
  }
}

// Coalesces reloads: a burst of events for the open incident causes at most one more fetch.
export async function reloadIncident() {
  if (state.reloading) {
    state.reloadQueued = true;
    return;
  }
  state.reloading = true;
  try {
    do {
      state.reloadQueued = false;
      const id = state.incident?.id;
      if (id === undefined || state.view !== "incident") return;
      if (!(await showCurrent(id))) return;
    } while (state.reloadQueued);
  } finally {
    state.reloading = false;
  }
}

function yesNo(value) {
  return value === "yes" ? "Yes" : "No";
}

// A fact the incident may not have: its row shows only when there is a value.
function showFact(id, text) {
  setText($(id), text);
  $(`${id}-row`).hidden = !text;
}

function renderLabels(labels) {
  const list = $("incident-labels");
  clear(list);
  const names = Object.keys(labels).sort();
  for (const name of names) list.append(el("div", {}, el("dt", {}, name), el("dd", {}, labels[name])));
  $("incident-labels-section").hidden = names.length === 0;
}

function renderIncident(incident, timeline) {
  setText($("incident-title"), `Incident #${incident.id}`);
  setText($("incident-message"), incident.message);
  setText($("incident-status"), incident.status === "resolved" ? "Resolved" : "Unresolved");
  setText($("incident-acknowledged"), yesNo(incident.acknowledged));
  showFact("incident-severity", incident.severity ? severityName(incident.severity) : "");
  showFact("incident-source", incident.source || "");
  showFact("incident-dedup-key", incident.dedup_key || "");
  renderLabels(incident.labels || {});
  $("incident-created").replaceChildren(timeElement(incident.created_at));
  $("incident-updated").replaceChildren(timeElement(incident.updated_at));
  setText($("toggle-ack"), incident.acknowledged === "yes" ? "Unacknowledge" : "Acknowledge");
  setText($("toggle-resolve"), incident.status === "resolved" ? "Reopen" : "Resolve");
  for (const id of ["toggle-ack", "toggle-resolve"]) $(id).disabled = false;

  const links = $("incident-links");
  clear(links);
  for (const link of incident.links || []) {
    const label = `${SYSTEMS[link.system] || link.system}: ${link.id}`;
    const url = link.url ? safeUrl(link.url) : null;
    const content = url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, label) : label;
    links.append(el("li", {}, content));
  }
  if (!links.children.length) links.append(el("li", { class: "none" }, "None yet."));

  const comments = $("incident-comments");
  clear(comments);
  for (const comment of incident.comments) comments.append(el("li", {}, comment));
  if (!incident.comments.length) comments.append(el("li", { class: "none" }, "No comments yet."));

  const items = $("incident-timeline");
  clear(items);
  for (const item of timeline) {
    const what = item.type.replace(/^incident\./, "");
    const entry = el("li", {}, timeElement(item.time), " ", actorElement(item.actor), ` ${what}`);
    if (item.comment) entry.append(": ", el("q", {}, item.comment));
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

function showNotice(text) {
  const notice = $("incident-notice");
  setText(notice, text);
  notice.hidden = false;
}

function hideNotice() {
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
async function write(action, done) {
  const before = state.incident;
  if (!before || state.busy) return false;
  state.busy = true;
  hideNotice();
  try {
    await action(before);
    announce(done);
    await showCurrent(before.id);
    return true;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 412 || error.status === 409)) {
      const found = await showCurrent(before.id);
      const after = state.incident;
      const what = found && after ? describeChanges(before, after) : "it was deleted";
      showNotice(`Not saved: this incident changed while you were looking (${what}). Check its current state and try again.`);
    } else if (error instanceof ApiError && error.status === 404) {
      showNotice("This incident was deleted.");
    } else {
      handleFailure(error, $("incident-notice"));
      $("incident-notice").hidden = false;
    }
    return false;
  } finally {
    state.busy = false;
  }
}

export function onToggleAck() {
  const acked = state.incident?.acknowledged === "yes";
  write(
    (i) => api.act(i.id, acked ? "unacknowledge" : "acknowledge", i.version),
    acked ? "Acknowledgement taken back." : "Acknowledged.",
  );
}

export function onToggleResolve() {
  const resolved = state.incident?.status === "resolved";
  write((i) => api.act(i.id, resolved ? "reopen" : "resolve", i.version), resolved ? "Reopened." : "Resolved.");
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
export function applyToIncident(type, incident) {
  if (state.incident?.id !== incident.id) return;
  if (type === "incident.deleted") {
    showNotice("This incident was deleted.");
    for (const id of ["toggle-ack", "toggle-resolve"]) $(id).disabled = true;
  } else if (incident.version > state.incident.version) {
    reloadIncident();
  }
}
