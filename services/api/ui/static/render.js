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
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

export function age(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  for (const [unit, size] of UNITS) {
    if (seconds >= size) {
      const count = Math.floor(seconds / size);
      return `${count} ${unit}${count === 1 ? "" : "s"} ago`;
    }
  }
  return "just now";
}

export function timeElement(iso) {
  const node = el("time", { datetime: iso, "data-age": "" }, age(iso));
  node.title = new Date(iso).toLocaleString();
  return node;
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
