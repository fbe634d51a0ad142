// The public API with the operator key as a bearer token. The key lives in sessionStorage (gone when the
// tab closes) and never goes into a URL (the live websocket gets it as a subprotocol: see live.js).
const KEY = "mallfence.operatorKey";

export const credentials = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { sessionStorage.setItem(KEY, value); },
  forget() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// FastAPI and mallfence both answer {"detail": "…"} or {"detail": [{loc, msg}]}.
export function describe(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail.map((i) => {
      const where = (i.loc || []).filter((p) => p !== "body").join(".");
      return where ? `${where}: ${i.msg}` : String(i.msg);
    }).join("; ");
  }
  return `the server answered HTTP ${status}`;
}

export async function api(path, { method = "GET", body, key = credentials.key, query } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = query ? `${path}?${new URLSearchParams(query)}` : path;
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `the server cannot be reached (${err.message})`);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, describe(response.status, data));
  return data;
}

export const venuePath = (slug, rest = "") => `/v1/venues/${encodeURIComponent(slug)}${rest}`;
