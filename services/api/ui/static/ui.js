// What the console's views share: element lookup, the session's state, announcements, failures.

import { ApiError } from "./api.js";
import { setText } from "./render.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  authRequired: false,
  view: null, // "list" | "incident"
  list: { items: [], nextCursor: null },
  incident: null,
  busy: false,
  streamReady: false, // the first `ready` of a session reloads the view: nothing between is missed
  reloading: false,
  reloadQueued: false,
  onUnauthorized: () => {},
};

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

export function currentRoute() {
  const match = /^#\/incidents\/([1-9][0-9]*)$/.exec(window.location.hash);
  return match ? { view: "incident", id: Number(match[1]) } : { view: "list" };
}

export function handleFailure(error, where) {
  if (error instanceof ApiError && error.status === 401) {
    state.onUnauthorized();
    return;
  }
  setText(where, `Something went wrong: ${error.message}`);
}
