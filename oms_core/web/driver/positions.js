// The phone's GPS: the last known fix goes with every action, and while the trip is on
// the road the fixes go to Menara in batches, best effort. A server without phone
// positions (503 positions_off) is not asked again; no connection keeps only the newest
// fixes, so a long dead spot never grows the buffer without bound.

import { NetworkError, call } from "./api.js";

const BATCH_EVERY_MS = 30000;
const MIN_GAP_MS = 5000;  // one fix per 5 s is plenty for a van in town
const KEEP = 100;
let last = null;
let buffer = [];
let active = false;
let off = false;
let busy = false;
let timer = null;
let watching = false;
let tried = false;  // the first batch goes at once, then every BATCH_EVERY_MS

export function watch() {
  if (watching || !navigator.geolocation) return;
  watching = true;
  navigator.geolocation.watchPosition(fix, () => {}, {
    enableHighAccuracy: true, maximumAge: 15000, timeout: 60000,
  });
}

/** The last known fix as the actions carry it, or null before the first one. */
export function lastFix() {
  return last && { lat: last.lat, lon: last.lon, accuracy_m: last.accuracy_m };
}

/** Send positions while `on` (the trip is on the road); stop otherwise. */
export function track(on) {
  if (on === active) return;
  active = on;
  clearInterval(timer);
  timer = null;
  if (on) {
    if (last) buffer.push(last);  // a phone standing still reports no new fix for a while
    timer = setInterval(send, BATCH_EVERY_MS);
    send();
  } else {
    buffer = [];
  }
}

function number(value, max) {
  return Number.isFinite(value) && value >= 0 && value <= max ? value : null;
}

function fix(pos) {
  const c = pos.coords;
  last = {
    at: new Date(pos.timestamp || Date.now()).toISOString(),
    lat: c.latitude,
    lon: c.longitude,
    accuracy_m: number(c.accuracy, 100000),
    speed_mps: number(c.speed, 100),
    heading_deg: number(c.heading, 360),
  };
  if (!active || off) return;
  const prev = buffer[buffer.length - 1];
  if (prev && Date.parse(last.at) - Date.parse(prev.at) < MIN_GAP_MS) return;
  buffer.push(last);
  if (buffer.length > KEEP) buffer = buffer.slice(-KEEP);
  if (!tried) send();
}

async function send() {
  if (off || busy || !active || buffer.length === 0) return;
  busy = true;
  tried = true;
  const batch = buffer.slice(0, KEEP);
  try {
    const answer = await call("POST", "/driver/positions", { body: { positions: batch } });
    const sent = answer.status < 300 || (answer.status < 500 && answer.status !== 429);
    if (sent) buffer = buffer.filter((p) => !batch.includes(p));  // 4xx: never accepted
    if (answer.status === 503 && answer.body?.error?.code === "positions_off") {
      off = true;
      buffer = [];
    }
  } catch (exc) {
    if (!(exc instanceof NetworkError)) throw exc;
  } finally {
    busy = false;
  }
}
