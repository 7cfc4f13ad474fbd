// The console: sign in, the incident list and one incident's page, kept current by the live stream.

import { api, ApiError, session } from "./api.js";
import { LiveStream } from "./live.js";
import { clear, el, refreshAges, safeUrl, setText, timeElement } from "./render.js";

const PAGE_SIZE = 50;
const SYSTEMS = { jira: "Jira issue", slack: "Slack message", zendesk: "Zendesk ticket" };

const $ = (id) => document.getElementById(id);

const state = {
  authRequired: false,
  started: false,
  view: null, // "list" | "incident"
  list: { items: [], nextCursor: null },
  incident: null,
  busy: false,
  streamReady: false, // the first `ready` of a session reloads the view: nothing between is missed
  reloading: false,
  reloadQueued: false,
};

const stream = new LiveStream({
  onReady: (ready) => {
    if (ready.reset || !state.streamReady) refreshView();
    state.streamReady = true;
  },
  onEvent: (event) => applyEvent(event),
  onState: (name) => setText($("live-state"), { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…" }[name]),
  onUnauthorized: () => signOut("Your API token is no longer accepted. Sign in again."),
});

function announce(text) {
  const region = $("announce");
  setText(region, "");
  window.setTimeout(() => setText(region, text), 50);
}

function show(view) {
  for (const id of ["signin-view", "list-view", "incident-view"]) $(id).hidden = id !== view;
}

function focusHeading(id) {
  const heading = $(id);
  heading.focus();
}

// ---------- sign in ----------

function showSignIn(message = "") {
  show("signin-view");
  $("sign-out").hidden = true;
  setText($("live-state"), "");
  setText($("signin-error"), message);
  $("token").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    setText($("signin-error"), "Enter an API token.");
    $("token").focus();
    return;
  }
  setText($("signin-error"), "");
  try {
    await api.checkToken(token);
  } catch (error) {
    const message =
      error instanceof ApiError && error.status === 401
        ? "That API token was not accepted. Check it and try again."
        : `The API could not be reached: ${error.message}`;
    setText($("signin-error"), message);
    $("token").select();
    $("token").focus();
    return;
  }
  session.token = token;
  $("token").value = "";
  startSession(true);
}

function signOut(message = "") {
  session.token = null;
  stream.stop();
  state.streamReady = false;
  if (state.authRequired) showSignIn(message);
}

function startSession(focus) {
  $("sign-out").hidden = !state.authRequired;
  state.streamReady = false;
  stream.start();
  route(focus);
}

// ---------- routing ----------

function currentRoute() {
  const match = /^#\/incidents\/([1-9][0-9]*)$/.exec(window.location.hash);
  return match ? { view: "incident", id: Number(match[1]) } : { view: "list" };
}

function route(focus = true) {
  if (state.authRequired && !session.token) return showSignIn();
  const target = currentRoute();
  if (target.view === "incident") {
    state.view = "incident";
    show("incident-view");
    openIncident(target.id, focus);
  } else {
    state.view = "list";
    state.incident = null;
    show("list-view");
    loadList().then(() => focus && focusHeading("list-title"));
  }
}

function refreshView() {
  if (state.view === "list") loadList();
  else if (state.view === "incident" && state.incident) reloadIncident();
}

function handleFailure(error, where) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your API token is no longer accepted. Sign in again.");
    return;
  }
  setText(where, `Something went wrong: ${error.message}`);
}

// ---------- list ----------

function filters() {
  const chosen = {};
  const status = $("filter-status").value;
  const acknowledged = $("filter-acknowledged").value;
  if (status) chosen.status = status;
  if (acknowledged) chosen.acknowledged = acknowledged;
  return chosen;
}

function matchesFilters(incident) {
  const chosen = filters();
  return (
    (!chosen.status || chosen.status === incident.status) &&
    (!chosen.acknowledged || chosen.acknowledged === incident.acknowledged)
  );
}

async function loadList() {
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

async function loadMore() {
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

function incidentRow(incident) {
  const resolved = incident.status === "resolved";
  const acknowledged = incident.acknowledged === "yes";
  const meta = el(
    "p",
    { class: "meta" },
    el("span", {}, `#${incident.id}`),
    badge(resolved ? "resolved" : "open", resolved ? "Resolved" : "Unresolved"),
    badge(acknowledged ? "acked" : "unacked", acknowledged ? "Acknowledged" : "Not acknowledged"),
    incident.severity ? badge(`severity ${incident.severity}`, `Severity: ${incident.severity}`) : null,
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

function applyToList(type, incident) {
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

function toggleNewForm(open) {
  $("new-form").hidden = !open;
  $("new-incident").setAttribute("aria-expanded", String(open));
  setText($("new-error"), "");
  if (open) $("new-message").focus();
  else $("new-incident").focus();
}

async function onCreate(event) {
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

// ---------- one incident ----------

async function fetchIncident(id) {
  const [incident, timeline] = await Promise.all([api.get(id), api.timeline(id)]);
  return { incident, timeline: timeline.items };
}

async function openIncident(id, focus) {
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
async function reloadIncident() {
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

function renderIncident(incident, timeline) {
  setText($("incident-title"), `Incident #${incident.id}`);
  setText($("incident-message"), incident.message);
  setText($("incident-status"), incident.status === "resolved" ? "Resolved" : "Unresolved");
  setText($("incident-acknowledged"), yesNo(incident.acknowledged));
  $("incident-severity-row").hidden = !incident.severity;
  setText($("incident-severity"), incident.severity || "");
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
    const entry = el("li", {}, timeElement(item.time), " ", el("strong", {}, item.actor), ` ${what}`);
    if (item.comment) entry.append(": ", el("q", {}, item.comment));
    items.append(entry);
  }
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

function onToggleAck() {
  const acked = state.incident?.acknowledged === "yes";
  write(
    (i) => api.act(i.id, acked ? "unacknowledge" : "acknowledge", i.version),
    acked ? "Acknowledgement taken back." : "Acknowledged.",
  );
}

function onToggleResolve() {
  const resolved = state.incident?.status === "resolved";
  write((i) => api.act(i.id, resolved ? "reopen" : "resolve", i.version), resolved ? "Reopened." : "Resolved.");
}

async function onComment(event) {
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

// ---------- live ----------

function applyEvent(event) {
  const incident = event?.data?.incident;
  if (!incident || typeof incident.id !== "number") return;
  if (state.view === "list") applyToList(event.type, incident);
  if (state.view === "incident" && state.incident?.id === incident.id) {
    if (event.type === "incident.deleted") {
      showNotice("This incident was deleted.");
      for (const id of ["toggle-ack", "toggle-resolve"]) $(id).disabled = true;
    } else if (incident.version > state.incident.version) {
      reloadIncident();
    }
  }
}

// ---------- start ----------

async function boot() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("new-incident").addEventListener("click", () => toggleNewForm($("new-form").hidden));
  $("new-cancel").addEventListener("click", () => toggleNewForm(false));
  $("new-form").addEventListener("submit", onCreate);
  $("filter-status").addEventListener("change", loadList);
  $("filter-acknowledged").addEventListener("change", loadList);
  $("load-more").addEventListener("click", loadMore);
  $("toggle-ack").addEventListener("click", onToggleAck);
  $("toggle-resolve").addEventListener("click", onToggleResolve);
  $("comment-form").addEventListener("submit", onComment);
  window.addEventListener("hashchange", () => route(true));
  window.setInterval(() => refreshAges(), 30000);
  try {
    const config = await api.config();
    state.authRequired = Boolean(config.auth);
  } catch (error) {
    setText($("live-state"), `The console could not start: ${error.message}`);
    return;
  }
  if (state.authRequired && !session.token) showSignIn();
  else startSession(false);
}

boot();
