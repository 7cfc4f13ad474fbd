// The console: sign in, the incident list and one incident's page, kept current by the live stream.

import { api, ApiError, session } from "./api.js";
import { hideNotice, onComment, onToggleAck, onToggleResolve, openIncident, reloadIncident, applyToIncident } from "./incident.js";
import {
  actOnRow,
  applyToList,
  focusedRowId,
  loadList,
  loadMore,
  moveFocus,
  onBulk,
  onCreate,
  onFiltersChanged,
  onSearchInput,
  onSelectAll,
  toggleNewForm,
} from "./list.js";
import { LiveStream } from "./live.js";
import { refreshAges, setText, utc } from "./render.js";
import { $, cancelLoads, currentRoute, focusHeading, show, state } from "./ui.js";

let dataAsOf = null; // when the page last knew it was current; shown while disconnected

const stream = new LiveStream({
  onReady: (ready) => {
    const wasDown = !state.connected;
    state.connected = true;
    // The first ready of a session, a reset, or a reconnect: load what the route names again, and clear
    // the errors that the outage left on screen.
    if (ready.reset || !state.streamReady || wasDown) refreshView();
    state.streamReady = true;
  },
  onEvent: (event) => {
    const incident = event?.data?.incident;
    if (!incident || typeof incident.id !== "number") return;
    if (state.view === "list") applyToList(event);
    else if (state.view === "incident") applyToIncident(event);
  },
  onState: (name) => {
    setText($("live-state"), { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…" }[name]);
    if (name === "live") {
      dataAsOf = null;
      showBanner(null);
    } else if (name === "reconnecting") {
      if (state.connected) dataAsOf = new Date();
      state.connected = false;
      showBanner(dataAsOf || new Date());
    }
  },
  onUnauthorized: () => signOut("Your API token is no longer accepted. Sign in again."),
});

function showBanner(asOf) {
  const banner = $("connection-banner");
  document.body.classList.toggle("offline", Boolean(asOf));
  if (!asOf) {
    banner.hidden = true;
    setText(banner, "");
    return;
  }
  setText(banner, `Disconnected — data as of ${utc(asOf.toISOString())}. Reconnecting…`);
  banner.hidden = false;
}

// ---------- sign in ----------

function showSignIn(message = "") {
  show("signin-view");
  $("sign-out").hidden = true;
  setText($("live-state"), "");
  showBanner(null);
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
  state.connected = false;
  cancelLoads("list", "incident");
  if (state.authRequired) showSignIn(message);
}

function startSession(focus) {
  $("sign-out").hidden = !state.authRequired;
  state.streamReady = false;
  stream.start();
  route(focus);
}

// ---------- routing ----------

function route(focus = true) {
  if (state.authRequired && !session.token) return showSignIn();
  const target = currentRoute();
  if (target.view === "incident") {
    cancelLoads("list");
    state.view = "incident";
    show("incident-view");
    openIncident(target.id, focus);
  } else {
    cancelLoads("incident");
    state.view = "list";
    state.incident = null;
    state.incidentId = null;
    show("list-view");
    // The heading takes focus after the load, unless the responder has moved on (typing a search, say).
    loadList().then(() => focus && document.activeElement === document.body && focusHeading("list-title"));
  }
}

function refreshView() {
  setText($("list-error"), "");
  if (state.view === "list") loadList();
  else if (state.view === "incident" && state.incidentId !== null) {
    if (state.incident) {
      hideNotice();
      reloadIncident();
    } else openIncident(state.incidentId, false);
  }
}

// ---------- keyboard ----------

function typingIn(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.metaKey || event.ctrlKey) return;
  if (typingIn(event.target) || $("shortcuts").open) return;
  if (state.authRequired && !session.token) return;
  const key = event.key;
  if (key === "?") {
    event.preventDefault();
    $("shortcuts").showModal();
    return;
  }
  if (state.view === "list") {
    if (key === "j" || key === "k") moveFocus(key === "j" ? 1 : -1);
    else if (key === "/") $("filter-q").focus();
    else if (key === "n") toggleNewForm(true);
    else if ((key === "a" || key === "r") && focusedRowId()) actOnRow(focusedRowId(), key === "a" ? "acknowledge" : "resolve");
    else return;
    event.preventDefault();
  } else if (state.view === "incident") {
    // Called directly, not through the buttons: a key pressed while the incident loads says why it did nothing.
    if (key === "a") onToggleAck();
    else if (key === "r") onToggleResolve();
    else return;
    event.preventDefault();
  }
}

// Ctrl+Enter submits the form being typed in; Esc closes the new-incident form.
function onFormKey(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    event.currentTarget.requestSubmit();
  } else if (event.key === "Escape" && event.currentTarget.id === "new-form") {
    event.preventDefault();
    toggleNewForm(false);
  }
}

// ---------- start ----------

async function boot() {
  state.onUnauthorized = () => signOut("Your API token is no longer accepted. Sign in again.");
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("new-incident").addEventListener("click", () => toggleNewForm($("new-form").hidden));
  $("new-cancel").addEventListener("click", () => toggleNewForm(false));
  $("new-form").addEventListener("submit", onCreate);
  $("new-form").addEventListener("keydown", onFormKey);
  $("comment-form").addEventListener("keydown", onFormKey);
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    onFiltersChanged();
  });
  for (const id of ["filter-status", "filter-acknowledged", "filter-severity", "filter-sort"]) {
    $(id).addEventListener("change", onFiltersChanged);
  }
  for (const id of ["filter-q", "filter-source", "filter-label"]) $(id).addEventListener("input", onSearchInput);
  $("select-all").addEventListener("change", onSelectAll);
  $("bulk-acknowledge").addEventListener("click", () => onBulk("acknowledge"));
  $("bulk-resolve").addEventListener("click", () => onBulk("resolve"));
  $("load-more").addEventListener("click", loadMore);
  $("toggle-ack").addEventListener("click", onToggleAck);
  $("toggle-resolve").addEventListener("click", onToggleResolve);
  $("comment-form").addEventListener("submit", onComment);
  $("show-shortcuts").addEventListener("click", () => $("shortcuts").showModal());
  document.addEventListener("keydown", onKey);
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
