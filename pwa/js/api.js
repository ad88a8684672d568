// The app's one HTTP client: every call to the server goes through `call` (bytes) or `callJson`
// (a JSON object), and every failure is an ApiError that says whether trying again may help.
// Requests go to the page's own origin over the browser's pooled, persistent connections: no
// per-request origin, no `Connection: close`, so a 2G link pays its handshake once.

const RETRYABLE = new Set([408, 425, 429]); // and every 5xx
const ASSUMED_BYTES_PER_S = 2000; // 16 kbps: request timeouts allow at least this

/**
 * A failed call. `status` is 0 when no answer came (offline, cut, timed out); `permanent` when
 * the same request would fail again (a 4xx other than 408/425/429); `retryAfterMs` from the
 * server's Retry-After; `code` and `body` from the one JSON error shape.
 */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, body = null, retryAfterMs = null, permanent = false } = {}) {
    super(message);
    Object.assign(this, { name: "ApiError", status, code, body, retryAfterMs, permanent });
  }
}

export const garbled = (what) => new ApiError(`${what}: the answer was garbled or cut short`);
export const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** Retry-After in seconds or as an HTTP date, in milliseconds from now. */
export function retryAfterMs(header) {
  if (!header) return null;
  const ms = /^\d+$/.test(header.trim()) ? Number(header) * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.max(ms, 0) : null;
}

const parse = (data) => {
  try { return JSON.parse(new TextDecoder().decode(data)); } catch { return null; }
};

/**
 * One HTTP exchange. `body` is sent as it is (bytes, a Blob, a string) or, when `json` is
 * given, as that value in JSON. `token` adds the bearer header, `csrf` the session's CSRF
 * header. `onAnswer(response)` sees every answer (the sync reads the server's clock there).
 * Resolves with {response, data: ArrayBuffer}; throws an ApiError.
 */
export async function call(method, path, {
  body = null, json, headers = {}, token = null, csrf = null, baseUrl = "", fetchImpl = fetch, onAnswer,
} = {}) {
  const what = `${method} ${path}`;
  const sent = json === undefined ? body : JSON.stringify(json);
  const size = sent?.size ?? sent?.byteLength ?? sent?.length ?? 0;
  const timeout = Math.ceil(15000 + ((size + 20000) / ASSUMED_BYTES_PER_S) * 1000);
  const all = { ...headers };
  if (json !== undefined) all["Content-Type"] = "application/json";
  if (token) all.Authorization = `Bearer ${token}`;
  if (csrf) all["X-CSRFToken"] = csrf;
  let response, data;
  try {
    response = await fetchImpl(baseUrl + path, { // called bare: window.fetch refuses any other `this`
      method,
      body: sent,
      headers: all,
      cache: "no-store",
      credentials: "same-origin",
      signal: AbortSignal.timeout?.(timeout), // older browsers: no timeout rather than no call
    });
    data = await response.arrayBuffer(); // a cut-short or mis-gzipped body throws here
  } catch (error) {
    throw new ApiError(`${what}: ${error?.message ?? error}`);
  }
  onAnswer?.(response);
  if (response.status >= 400) { // the one error shape when the server sent it (a proxy may not)
    const parsed = parse(data);
    const { code, message } = isObject(parsed?.error) ? parsed.error : {};
    const retry = RETRYABLE.has(response.status) || response.status >= 500;
    throw new ApiError(typeof message === "string" ? message : `${what}: HTTP ${response.status}`, {
      status: response.status, code: typeof code === "string" ? code : null, body: parsed, permanent: !retry,
      retryAfterMs: retry ? retryAfterMs(response.headers.get("Retry-After")) : null,
    });
  }
  return { response, data };
}

/** A successful answer's JSON object; anything else is a failure to retry, never a result. */
export async function callJson(method, path, options) {
  const { data } = await call(method, path, options);
  const parsed = parse(data);
  if (!isObject(parsed)) throw garbled(`${method} ${path}`);
  return parsed;
}

/** A successful answer's bytes as a Blob of the type the server named (a report, a photo). */
export async function callBlob(method, path, options) {
  const { response, data } = await call(method, path, options);
  return new Blob([data], { type: response.headers.get("Content-Type") ?? "application/octet-stream" });
}
