// The console: sign in, the incident list and one incident's page, kept current by the live stream.

import { api, ApiError, session } from "./api.js";
import { applyToIncident, onComment, onToggleAck, onToggleResolve, openIncident, reloadIncident } from "./incident.js";
import { applyToList, loadList, loadMore, onCreate, toggleNewForm } from "./list.js";
import { LiveStream } from "./live.js";
import { refreshAges, setText } from "./render.js";
import { $, currentRoute, focusHeading, show, state } from "./ui.js";

const stream = new LiveStream({
  onReady: (ready) => {
    if (ready.reset || !state.streamReady) refreshView();
    state.streamReady = true;
  },
  onEvent: (event) => {
    const incident = event?.data?.incident;
    if (!incident || typeof incident.id !== "number") return;
    if (state.view === "list") applyToList(event.type, incident);
    else if (state.view === "incident") applyToIncident(event.type, incident);
  },
  onState: (name) => setText($("live-state"), { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…" }[name]),
  onUnauthorized: () => signOut("Your API token is no longer accepted. Sign in again."),
});

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

// ---------- start ----------

async function boot() {
  state.onUnauthorized = () => signOut("Your API token is no longer accepted. Sign in again.");
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("new-incident").addEventListener("click", () => toggleNewForm($("new-form").hidden));
  $("new-cancel").addEventListener("click", () => toggleNewForm(false));
  $("new-form").addEventListener("submit", onCreate);
  $("filter-status").addEventListener("change", loadList);
  $("filter-acknowledged").addEventListener("change", loadList);
  $("filter-severity").addEventListener("change", loadList);
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
