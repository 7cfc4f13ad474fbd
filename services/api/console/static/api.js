// The HTTP API as the console uses it: the bearer token from sessionStorage, JSON in and out.

const TOKEN_KEY = "incidents.apiToken";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status; // 0: the API could not be reached
    this.body = body;
  }
}

export function isAbort(error) {
  return error?.name === "AbortError";
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

async function request(method, path, { body, version, token, signal } = {}) {
  const headers = authHeaders({ Accept: "application/json" }, token === undefined ? session.token : token);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (version !== undefined) headers["If-Match"] = `"${version}"`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, "the API could not be reached", null);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    if (isAbort(error)) throw error;
    data = null;
  }
  if (!response.ok) {
    const message = (data && typeof data.error === "string" && data.error) || response.statusText;
    throw new ApiError(response.status, message, data);
  }
  return data;
}

const incidentPath = (id) => `/incident/${encodeURIComponent(id)}`;

export const api = {
  config: () => request("GET", "/ui/config.json", { token: null }),
  checkToken: (token) => request("GET", "/incident/?limit=1", { token }),
  list: (params, signal) => request("GET", `/incident/?${new URLSearchParams(params)}`, { signal }),
  get: (id, signal) => request("GET", incidentPath(id), { signal }),
  timeline: (id, signal) => request("GET", `${incidentPath(id)}/timeline`, { signal }),
  create: (fields) => request("POST", "/incident/", { body: fields }),
  // acknowledge, unacknowledge, resolve, reopen; a note is added as a comment in the same change
  act: (id, action, version, note) =>
    request("POST", `${incidentPath(id)}/${action}`, { version, body: note ? { comment: note } : undefined }),
  comment: (id, comment, version) => request("POST", `${incidentPath(id)}/comments`, { body: { comment }, version }),
};
