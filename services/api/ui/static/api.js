// The HTTP API as the console uses it: the bearer token from sessionStorage, JSON in and out.

const TOKEN_KEY = "incidents.apiToken";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Kept for this browser tab's session only, and sent only in the Authorization header.
export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export function authHeaders(extra = {}, token = session.token) {
  const headers = { ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function request(method, path, { body, version, token } = {}) {
  const headers = authHeaders({ Accept: "application/json" }, token === undefined ? session.token : token);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (version !== undefined) headers["If-Match"] = `"${version}"`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && typeof data.error === "string" && data.error) || response.statusText;
    throw new ApiError(response.status, message, data);
  }
  return data;
}

export const api = {
  config: () => request("GET", "/ui/config.json", { token: null }),
  checkToken: (token) => request("GET", "/incident/?limit=1", { token }),
  list: (params) => request("GET", `/incident/?${new URLSearchParams(params)}`),
  get: (id) => request("GET", `/incident/${encodeURIComponent(id)}`),
  timeline: (id) => request("GET", `/incident/${encodeURIComponent(id)}/timeline`),
  create: (message) => request("POST", "/incident/", { body: { message } }),
  act: (id, action, version) => request("POST", `/incident/${encodeURIComponent(id)}/${action}`, { version }),
  comment: (id, comment, version) =>
    request("POST", `/incident/${encodeURIComponent(id)}/comments`, { body: { comment }, version }),
};
