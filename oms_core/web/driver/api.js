// Talking to Menara: the driver's token, one request helper, and what the connection
// looks like from here (a failed request says more than navigator.onLine does).

const BASE = "/api/v1";
const TOKEN = "menara.driver.token";
const WHO = "menara.driver.who";
const TIMEOUT_MS = 20000;
const UPLOAD_TIMEOUT_MS = 90000;

export class NetworkError extends Error {}

export const hooks = {
  unauthorized: () => {},  // a 401: the token is gone or revoked
  connection: () => {},  // reachable changed
};

let reachable = navigator.onLine;

export function online() {
  return reachable && navigator.onLine;
}

function setReachable(value) {
  if (value !== reachable) {
    reachable = value;
    hooks.connection(value);
  }
}

window.addEventListener("online", () => { reachable = true; hooks.connection(true); });
window.addEventListener("offline", () => { reachable = false; hooks.connection(false); });

export function session() {
  const token = localStorage.getItem(TOKEN);
  if (!token) return null;
  let who = {};
  try {
    who = JSON.parse(localStorage.getItem(WHO) || "{}");
  } catch {
    who = {};
  }
  return { token, driverId: who.driver_id ?? null, name: who.name ?? "" };
}

export function saveSession(token, driverId, name) {
  localStorage.setItem(TOKEN, token);
  localStorage.setItem(WHO, JSON.stringify({ driver_id: driverId, name }));
}

export function clearSession() {
  localStorage.removeItem(TOKEN);
  localStorage.removeItem(WHO);
}

/**
 * One request to the API: resolves {status, body} for every HTTP answer, rejects with
 * NetworkError when there was none (offline, timeout). `form` sends multipart data.
 */
export async function call(method, path, { body, form, token, auth = true } = {}) {
  const headers = {};
  const bearer = token ?? session()?.token;
  if (auth && bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (form) {
    payload = form;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), form ? UPLOAD_TIMEOUT_MS : TIMEOUT_MS);
  let response;
  try {
    response = await fetch(BASE + path, {
      method, headers, body: payload, signal: abort.signal, cache: "no-store",
      credentials: "omit",
    });
  } catch (exc) {
    setReachable(false);
    throw new NetworkError(String(exc));
  } finally {
    clearTimeout(timer);
  }
  setReachable(true);
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    answer = {};
  }
  if (response.status === 401 && auth) hooks.unauthorized(answer);
  return { status: response.status, body: answer };
}

/** The error of an answer as {code, message, details}. */
export function problem(answer) {
  const err = answer?.body?.error ?? {};
  return {
    status: answer?.status ?? 0,
    code: err.code ?? `http_${answer?.status ?? 0}`,
    message: err.message ?? "",
    details: Array.isArray(err.details) ? err.details : [],
  };
}

/** Worth sending again later: no answer, the server failed, or it asked us to wait. */
export function transient(status) {
  return status >= 500 || status === 408 || status === 429;
}
