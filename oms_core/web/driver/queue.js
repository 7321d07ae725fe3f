// The outbox: every tap becomes an action with its own idempotency key, stored first and
// sent in order. Files go up before the action that names them. No answer or a 5xx: the
// action stays and is sent again later with the same key (the server applies it once and
// answers a replay as a success). A 4xx other than 401: the action is parked with the
// server's error for the driver to fix or discard; it is never sent in a loop.

import * as store from "./store.js";
import { NetworkError, call, problem, session, transient } from "./api.js";
import { lastFix } from "./positions.js";

const MAX_BACKOFF_MS = 60000;
const listeners = new Set();
const waiters = new Map();
const settled = new Map();  // outcomes nobody waited for yet (the send beat the wait)
let running = null;
let timer = null;
let backoffMs = 0;
let sendingId = null;
let recent = [];  // sent actions the last trip snapshot may not show yet

/** A new idempotency key: 32 hex digits, made when the driver taps. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What every action carries, taken at the tap: key, phone time, last known position. */
export function tap() {
  return { idempotency_key: newKey(), at: new Date().toISOString(), position: lastFix() };
}

export function onChange(fn) {
  listeners.add(fn);
}

function changed() {
  for (const fn of listeners) fn();
}

function settle(id, outcome) {
  const waiter = waiters.get(id);
  if (waiter) {
    waiters.delete(id);
    waiter(outcome);
  } else {
    settled.set(id, outcome);
    if (settled.size > 20) settled.delete(settled.keys().next().value);
  }
}

/** Resolves with {result: "sent" | "parked" | "queued" | "timeout", …} for action `id`. */
export function waitFor(id, timeoutMs) {
  if (settled.has(id)) {
    const outcome = settled.get(id);
    settled.delete(id);
    return Promise.resolve(outcome);
  }
  return new Promise((resolve) => {
    const timeout = setTimeout(() => {
      waiters.delete(id);
      resolve({ result: "timeout" });
    }, timeoutMs);
    waiters.set(id, (outcome) => {
      clearTimeout(timeout);
      resolve(outcome);
    });
  });
}

export function sending() {
  return sendingId;
}

/** Sent actions with when they were confirmed (the view keeps showing their effect). */
export function recentlySent() {
  return recent;
}

/** A trip snapshot asked for after `since` shows every action confirmed before it. */
export function forgetSentBefore(since) {
  const before = recent.length;
  recent = recent.filter((r) => r.confirmed >= since);
  return before !== recent.length;
}

/** Store a tapped action (files: {signature: Blob|null, photos: [Blob]}) and send it. */
export async function enqueue(kind, path, subject, body, files = null) {
  const record = {
    driver_id: session()?.driverId ?? null,
    kind, path, subject, body, files,
    shas: null, state: "waiting", error: null, created: Date.now(),
  };
  const id = await store.add(record);
  changed();
  flush();
  return id;
}

export async function discard(id) {
  await store.remove(id);
  changed();
}

/** Send a parked action again as it is (same key: the server rolled it back). */
export async function retry(id) {
  const record = await store.get(id);
  if (!record) return;
  record.state = "waiting";
  record.error = null;
  await store.put(record);
  changed();
  flush();
}

/** Send now: on the 'online' event, on a tap of the queue banner, after a backoff. */
export function flush() {
  clearTimeout(timer);
  timer = null;
  if (!running) {
    const work = navigator.locks
      ? navigator.locks.request("menara-driver-outbox", drain)
      : drain();
    running = work.finally(() => { running = null; });
  }
  return running;
}

export function resetBackoff() {
  backoffMs = 0;
}

async function drain() {
  const me = session()?.driverId ?? null;
  if (!session()) return;
  for (;;) {
    const next = (await store.all()).find((a) => a.state === "waiting" && a.driver_id === me);
    if (!next) {
      backoffMs = 0;
      return;
    }
    sendingId = next.id;
    changed();
    let outcome;
    try {
      outcome = await send(next);
    } finally {
      sendingId = null;
    }
    changed();
    if (outcome === "retry") {
      backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs ? backoffMs * 2 : 1000);
      timer = setTimeout(flush, backoffMs + Math.random() * 250);
      settle(next.id, { result: "queued" });
      return;
    }
    if (outcome === "stop") return;
  }
}

async function send(record) {
  if (record.files && !record.shas) {
    const shas = { signature: null, photos: [] };
    const { signature, photos } = record.files;
    for (const [i, blob] of [signature, ...photos].entries()) {
      if (!blob) continue;
      const up = await upload(blob, i === 0 ? "signature.png" : `photo-${i}.jpg`);
      if (up.outcome) return up.outcome === "park" ? park(record, up.problem) : up.outcome;
      if (i === 0) shas.signature = up.sha;
      else shas.photos.push(up.sha);
    }
    record.shas = shas;
    await store.put(record);
  }
  const body = { ...record.body, sent_at: new Date().toISOString() };
  if (record.shas) Object.assign(body, record.shas);
  let answer;
  try {
    answer = await call("POST", record.path, { body });
  } catch (exc) {
    if (exc instanceof NetworkError) return "retry";
    throw exc;
  }
  if (answer.status >= 200 && answer.status < 300) {
    await store.remove(record.id);
    recent.push({ record, answer: answer.body, confirmed: Date.now() });
    settle(record.id, { result: "sent", answer: answer.body });
    return "sent";
  }
  if (answer.status === 401) return "stop";
  if (transient(answer.status)) return "retry";
  return park(record, problem(answer));
}

async function upload(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  let answer;
  try {
    answer = await call("POST", "/driver/files", { form });
  } catch (exc) {
    if (exc instanceof NetworkError) return { outcome: "retry" };
    throw exc;
  }
  if (answer.status === 200 || answer.status === 201) return { sha: answer.body.sha256 };
  if (answer.status === 401) return { outcome: "stop" };
  if (transient(answer.status)) return { outcome: "retry" };
  return { outcome: "park", problem: problem(answer) };
}

async function park(record, error) {
  record.state = "parked";
  record.error = error;
  await store.put(record);
  settle(record.id, { result: "parked", error });
  return "parked";
}
