// Server-sent events read with fetch(): EventSource cannot send an Authorization header, and a token
// never goes into a URL. A dropped stream reconnects with Last-Event-ID and the server catches up.

import { authHeaders } from "./api.js";

const FIRST_RETRY_MS = 500;
// Capped low: a responder waits at most this long after the API is back.
export const MAX_RETRY_MS = 5000;

export function parseBlock(block) {
  const message = { id: null, event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "data") message.data.push(value);
  }
  if (message.id === null && message.data.length === 0) return null;
  return { id: message.id, event: message.event, data: message.data.join("\n") };
}

export class LiveStream {
  constructor({ onReady, onEvent, onState, onUnauthorized }) {
    this.onReady = onReady;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onUnauthorized = onUnauthorized;
    this.lastId = null;
    this.controller = null;
    this.stopped = true;
    this.generation = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.run(++this.generation);
  }

  // A stopped-then-restarted stream must not leave its old loop running beside the new one.
  current(generation) {
    return !this.stopped && generation === this.generation;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    this.lastId = null;
  }

  async run(generation) {
    let delay = FIRST_RETRY_MS;
    let first = true;
    while (this.current(generation)) {
      this.onState(first ? "connecting" : "reconnecting");
      this.controller = new AbortController();
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        const response = await fetch("/incident/stream", {
          headers,
          signal: this.controller.signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          this.stopped = true;
          this.onUnauthorized();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`the stream answered ${response.status}`);
        await this.read(response.body, () => {
          delay = FIRST_RETRY_MS;
        });
      } catch {
        // a network error or a dropped stream: retry below
      }
      if (!this.current(generation)) return;
      first = false;
      this.onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }

  async read(body, onProgress) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const message = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
        if (message === null) continue;
        if (message.id !== null) this.lastId = message.id;
        onProgress();
        if (message.event === "ready") {
          this.onState("live");
          this.onReady(JSON.parse(message.data));
        } else if (message.event === "incident") {
          this.onEvent(JSON.parse(message.data));
        }
      }
    }
  }
}
