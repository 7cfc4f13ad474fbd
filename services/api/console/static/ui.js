// What the console's views share: element lookup, the session's state, routes, loads, announcements, failures.

import { ApiError } from "./api.js";
import { setText } from "./render.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  authRequired: false,
  view: null, // "list" | "incident"
  list: { items: [], nextCursor: null, versions: new Map() },
  incident: null,
  incidentId: null, // the incident the route names, loaded or not
  creating: false,
  writing: false,
  streamReady: false, // the first `ready` of a session reloads the view: nothing between is missed
  connected: false,
  onUnauthorized: () => {},
};

// One AbortController per kind of load: a new load of a kind cancels the one before it, so an older
// answer can never overwrite a newer one.
const loads = new Map();

export function beginLoad(kind) {
  loads.get(kind)?.abort();
  const controller = new AbortController();
  loads.set(kind, controller);
  return controller.signal;
}

export function endLoad(kind, signal) {
  if (loads.get(kind)?.signal === signal) loads.delete(kind);
}

export function cancelLoads(...kinds) {
  for (const kind of kinds) {
    loads.get(kind)?.abort();
    loads.delete(kind);
  }
}

export function announce(text) {
  const region = $("announce");
  setText(region, "");
  window.setTimeout(() => setText(region, text), 50);
}

export function show(view) {
  for (const id of ["signin-view", "list-view", "incident-view"]) $(id).hidden = id !== view;
}

export function focusHeading(id) {
  $(id).focus();
}

// "#/incidents/12", or the list with its filters in the query: "#/?status=resolved&q=disk".
export function currentRoute() {
  const hash = window.location.hash;
  const match = /^#\/incidents\/([1-9][0-9]{0,17})$/.exec(hash);
  if (match) return { view: "incident", id: Number(match[1]) };
  const query = hash.startsWith("#/?") ? hash.slice(3) : "";
  return { view: "list", params: new URLSearchParams(query) };
}

export function describeFailure(error) {
  if (error instanceof ApiError && error.status === 0) {
    return "The API could not be reached. This will load again when the connection is back.";
  }
  return `The API refused this: ${error.message}`;
}

export function handleFailure(error, where) {
  if (error instanceof ApiError && error.status === 401) {
    state.onUnauthorized();
    return;
  }
  setText(where, describeFailure(error));
}
