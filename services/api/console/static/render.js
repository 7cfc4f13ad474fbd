// DOM building with text nodes only: incident text is user input and is never parsed as HTML.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const SEVERITY_NAMES = { critical: "Critical", error: "Error", warning: "Warning", info: "Info" };
export const SEVERITY_RANK = { critical: 0, error: 1, warning: 2, info: 3 };

// The name shown for a severity; an unknown value is shown as it came (as text, like all incident data).
export function severityName(severity) {
  return SEVERITY_NAMES[severity] || String(severity);
}

export function clear(node) {
  node.replaceChildren();
}

export function setText(node, text) {
  node.textContent = text;
}

const UNITS = [
  ["d", 86400],
  ["h", 3600],
  ["min", 60],
];

// "3 min", "2 h 5 min", "4 d 3 h": the two largest units.
export function duration(seconds) {
  let rest = Math.max(0, Math.round(seconds));
  const parts = [];
  for (const [unit, size] of UNITS) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)} ${unit}`);
      rest %= size;
    } else if (parts.length) break;
  }
  return parts.length ? parts.join(" ") : "<1 min";
}

export function age(iso, now = Date.now()) {
  const seconds = (now - Date.parse(iso)) / 1000;
  return seconds < 60 ? "just now" : `${duration(seconds)} ago`;
}

const pad = (n) => String(n).padStart(2, "0");

// Absolute UTC: "14:05 UTC" today, "Dec 4 14:05 UTC" before.
export function utc(iso, now = Date.now()) {
  const at = new Date(iso);
  const time = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())} UTC`;
  if (new Date(now).toISOString().slice(0, 10) === at.toISOString().slice(0, 10)) return time;
  return `${at.toLocaleString("en", { month: "short", timeZone: "UTC" })} ${at.getUTCDate()} ${time}`;
}

// A relative time with the absolute UTC time beside it; refreshAges keeps the relative part current.
export function timeElement(iso) {
  const node = el("time", { datetime: iso, "data-age": "" }, age(iso));
  node.title = new Date(iso).toISOString();
  return el("span", { class: "when" }, node, el("span", { class: "utc" }, ` (${utc(iso)})`));
}

export function refreshAges(root = document) {
  for (const node of root.querySelectorAll("time[data-age]")) {
    node.textContent = age(node.getAttribute("datetime"));
  }
}

export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

// A value that is an http(s) URL becomes a link (opened apart from the console); anything else stays text.
export function linkOrText(value) {
  const url = typeof value === "string" ? safeUrl(value.trim()) : null;
  return url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, value) : String(value);
}

// "Ack'd by bob · 3 min" and friends, from the fields the API adds to each incident.
export function ackText(incident) {
  if (incident.acknowledged !== "yes") return "Not acknowledged";
  const by = incident.acknowledged_by ? ` by ${incident.acknowledged_by}` : "";
  const since = incident.acknowledged_at ? ` · ${duration((Date.now() - Date.parse(incident.acknowledged_at)) / 1000)}` : "";
  return `Ack'd${by}${since}`;
}

export function openText(incident) {
  const opened = Date.parse(incident.created_at);
  if (incident.status === "resolved") {
    const done = incident.resolved_at ? Date.parse(incident.resolved_at) : Date.parse(incident.updated_at);
    return `resolved in ${duration((done - opened) / 1000)}`;
  }
  return `open ${duration((Date.now() - opened) / 1000)}`;
}

export function lastChangeText(incident) {
  const last = incident.last_change;
  if (!last) return "";
  return `${last.type.replace(/^incident\./, "")} by ${last.actor}`;
}

// An incident changed by a live event: the event's actor and time update who-did-what.
export function withEvent(previous, event) {
  const incident = { ...(previous || {}), ...event.data.incident };
  const type = event.type;
  const actor = event.actor || "someone";
  const time = event.time || new Date().toISOString();
  incident.last_change = { type, actor, time };
  if (type === "incident.acknowledged") Object.assign(incident, { acknowledged_by: actor, acknowledged_at: time });
  if (type === "incident.unacknowledged") Object.assign(incident, { acknowledged_by: null, acknowledged_at: null });
  if (type === "incident.resolved") incident.resolved_at = time;
  if (type === "incident.reopened") incident.resolved_at = null;
  return incident;
}
