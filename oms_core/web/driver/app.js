// The driver app: sign in, show today's trip (from the server, or the phone's last copy
// when offline, with the outbox laid over it), turn taps into queued actions, keep the
// header's connection and outbox counts true, and refresh the live ETAs every 30 s.

import { $, h, replace } from "./dom.js";
import { day, lang, setLang, setZone, t, time } from "./i18n.js";
import * as api from "./api.js";
import * as store from "./store.js";
import * as queue from "./queue.js";
import * as positions from "./positions.js";
import { overlay, stopDone } from "./view.js";
import { tripBody } from "./trip.js";
import { closeDelivery, openDelivery } from "./epod.js";

const REFRESH_MS = 30000;
const CACHE = "menara.driver.today";
const state = {
  screen: "loading",  // loading | sign-in | trip
  today: null,
  fetchedAt: null,
  stale: false,
  actions: [],
  signInMessage: null,  // {text, tone}
  ui: { loaded: {}, cash: null, expanded: new Set() },
};
let timer = null;

function mine(actions) {
  const me = api.session()?.driverId ?? null;
  return actions.filter((a) => a.driver_id === me);
}

async function reloadActions() {
  const before = state.actions;
  state.actions = mine(await store.all());
  render();
  // The server said no, or the outbox just emptied: show the server's own view now.
  const count = (list, what) => list.filter((a) => a.state === what).length;
  const parkedMore = count(state.actions, "parked") > count(before, "parked");
  const drained = count(before, "waiting") > 0 && count(state.actions, "waiting") === 0;
  if (state.screen === "trip" && (parkedMore || drained)) refresh();
}

function view() {
  return overlay(state.today, state.actions, queue.recentlySent());
}

// --- header -------------------------------------------------------------------------

function renderHeader(v) {
  const trip = state.screen === "trip" ? v?.trip : null;
  $("bar-plate").textContent = trip ? trip.plate : "Menara";
  $("bar-day").textContent = trip ? `${day(trip.day)} · ${trip.depot_name}` : "";
  const up = api.online();
  const net = $("bar-net");
  net.textContent = up ? t("online") : t("offline");
  net.className = `net ${up ? "net-on" : "net-off"}`;
  $("bar-info").hidden = !trip;
  if (trip) {
    const chip = $("bar-state");
    chip.textContent = t(`state_${trip.state}`);
    chip.className = `chip state-${trip.state}`;
    const done = trip.stops.filter(stopDone).length;
    $("bar-progress").textContent = t("progress", { done, total: trip.stops.length });
  }
  const waiting = state.actions.filter((a) => a.state === "waiting").length;
  const parked = state.actions.filter((a) => a.state === "parked").length;
  const q = $("bar-queue");
  q.hidden = state.screen !== "trip" || (!waiting && !parked);
  const parts = [];
  if (waiting) parts.push(queue.sending() ? t("queue_sending")
    : waiting === 1 ? t("queue_one") : t("queue_many", { n: waiting }));
  if (parked) parts.push(t("queue_parked", { n: parked }));
  q.textContent = parts.join(" · ");
  q.className = `bar-queue ${parked ? "has-parked" : ""}`;
  $("menu-refresh").textContent = t("refresh");
  $("menu-signout").textContent = t("sign_out");
  $("menu-lang").textContent = t("lang_name");
  $("menu-refresh").hidden = state.screen !== "trip";
  $("menu-signout").hidden = !api.session();
}

// --- screens ------------------------------------------------------------------------

let deferred = false;
let shown = null;  // the screen last drawn

/** Is the driver typing in the trip (a re-render would take the field away)? */
function typing() {
  const el = document.activeElement;
  return state.screen === "trip" && shown === "trip" && $("main").contains(el)
    && ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName);
}

function render() {
  const main = $("main");
  const v = state.today ? view() : null;
  renderHeader(v);
  if (typing()) {
    deferred = true;  // drawn again when the field loses focus
    return;
  }
  deferred = false;
  shown = state.screen;
  if (state.screen === "sign-in") {
    replace(main, signInCard());
  } else if (state.screen === "loading" || !v) {
    replace(main, h("p.loading", {}, state.stale ? t("offline_no_data") : t("loading")));
  } else if (!v.trip) {
    replace(main, h("section.card.empty", {},
      h("h2", {}, t("hello", { name: v.driver.name })),
      h("p", {}, t("no_trip")), h("p.hint", {}, t("no_trip_hint")),
      h("button.secondary", { type: "button", onclick: refresh }, t("check_again"))));
  } else {
    setZone(v.trip.time_zone);
    positions.track(v.trip.state === "in_progress");
    replace(main,
      state.stale && state.fetchedAt
        ? h("p.stale", { role: "status" },
          t("stale", { time: time(new Date(state.fetchedAt).toISOString()) }))
        : null,
      tripBody({ view: v, ui: state.ui, act: actions(v.trip), labels }));
  }
}

function labels(action) {
  const trip = state.today?.trip;
  const stop = trip?.stops.find((s) => s.id === action.subject?.stop_id);
  const order = stop?.orders.find((o) => o.id === action.subject?.order_id);
  return { seq: stop?.seq ?? "", tn: order?.tracking_number ?? "" };
}

function signInCard() {
  const input = h("input.text", {
    type: "text", name: "code", autocomplete: "off", autocapitalize: "off", spellcheck: "false",
    "aria-label": t("sign_in_label"),
  });
  const button = h("button.primary", { type: "submit" }, t("sign_in_button"));
  const msg = state.signInMessage;
  return h("section.card.sign-in", {},
    h("h1", {}, t("sign_in_title")),
    msg ? h(`p.message.tone-${msg.tone}`, { role: "alert" }, msg.text) : null,
    h("p", {}, t("sign_in_intro")),
    h("form", {
      onsubmit: (e) => {
        e.preventDefault();
        button.disabled = true;
        button.textContent = t("signing_in");
        signIn(input.value).finally(() => { button.disabled = false; });
      },
    }, h("label.field", {}, h("span.field-label", {}, t("sign_in_label")), input), button));
}

function showSignIn(text, tone = "error") {
  closeDelivery();
  positions.track(false);
  state.screen = "sign-in";
  state.signInMessage = text ? { text, tone } : null;
  state.today = null;
  render();
}

/** A pasted link (…#code=…), a bare code, or an API token (mnr_…). */
async function signIn(text) {
  const s = text.trim();
  if (!s) return showSignIn(t("sign_in_empty"));
  const m = s.match(/[#?&]code=([A-Za-z0-9_-]+)/);
  try {
    if (!m && s.startsWith("mnr_")) {
      const r = await api.call("GET", "/driver/today", { token: s });
      if (r.status === 200) {
        api.saveSession(s, r.body.driver.id, r.body.driver.name);
        return enter(r.body);
      }
      if (r.status >= 500) return showSignIn(t("server_error"));
      return showSignIn(r.status === 403 ? t("not_driver") : t("sign_in_ended"));
    }
    const r = await api.call("POST", "/driver/sign-in", {
      body: { code: m ? m[1] : s }, auth: false,
    });
    if (r.status >= 500) return showSignIn(t("server_error"));
    if (r.status !== 200) return showSignIn(t("link_used"));
    api.saveSession(r.body.token, r.body.driver_id, r.body.name);
    return enter(null);
  } catch (exc) {
    if (!(exc instanceof api.NetworkError)) throw exc;
    return showSignIn(t("offline_no_data"));
  }
}

async function enter(today) {
  state.screen = "trip";
  state.signInMessage = null;
  state.today = today ?? cached();
  await reloadActions();
  if (today) keep(today); else await refresh();
  queue.flush();
  schedule();
}

// --- the trip snapshot ----------------------------------------------------------------

function cached() {
  try {
    const saved = JSON.parse(localStorage.getItem(CACHE) || "null");
    if (saved && saved.driver?.id === api.session()?.driverId) {
      state.fetchedAt = saved.fetchedAt;
      return saved.today;
    }
  } catch {
    localStorage.removeItem(CACHE);
  }
  return null;
}

function keep(today) {
  state.today = today;
  state.fetchedAt = Date.now();
  state.stale = false;
  localStorage.setItem(CACHE, JSON.stringify({
    driver: today.driver, fetchedAt: state.fetchedAt, today,
  }));
  render();
}

async function refresh() {
  if (!api.session()) return;
  const asked = Date.now();
  try {
    const r = await api.call("GET", "/driver/today");
    if (r.status === 200) {
      queue.forgetSentBefore(asked);
      keep(r.body);
    } else if (r.status === 403) {
      signOut(t("not_driver"));
    } else if (r.status !== 401) {
      state.stale = true;
      render();
    }
  } catch (exc) {
    if (!(exc instanceof api.NetworkError)) throw exc;
    state.stale = true;
    render();
  }
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {  // tried while the phone has a network, to learn we are back
    if (navigator.onLine && !document.hidden) refresh();
  }, REFRESH_MS);
}

// --- actions --------------------------------------------------------------------------

function actions(trip) {
  const subject = (extra = {}) => ({ trip_id: trip.id, ...extra });
  const send = (kind, path, subj, extra = {}) =>
    queue.enqueue(kind, path, subj, { ...queue.tap(), ...extra });
  return {
    loaded: (lines) => send("loaded", `/driver/trips/${trip.id}/loaded`, subject(), { lines }),
    departed: () => send("departed", `/driver/trips/${trip.id}/departed`, subject()),
    arrived: (stop) => send("arrived", `/driver/stops/${stop.id}/arrived`,
      subject({ stop_id: stop.id })),
    returned: (cash) => send("returned", `/driver/trips/${trip.id}/returned`, subject(),
      { cash_handed_in: cash }),
    deliver: (order, stop, parked) => openDelivery({
      order, stop, tripId: trip.id, reasons: state.today.reasons, parked, notify,
    }),
    fix: (action) => {
      const stop = trip.stops.find((s) => s.id === action.subject.stop_id);
      const order = stop?.orders.find((o) => o.id === action.subject.order_id);
      if (order) {
        openDelivery({ order, stop, tripId: trip.id, reasons: state.today.reasons,
          parked: action, notify });
      }
    },
    retry: (id) => queue.retry(id),
    discard: (id) => {
      if (window.confirm(t("discard_confirm"))) queue.discard(id);
    },
  };
}

function notify(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

async function signOut(message) {
  const waiting = state.actions.filter((a) => a.state !== "sent").length;
  if (!message && waiting && !window.confirm(t("sign_out_confirm", { n: waiting }))) return;
  const me = api.session()?.driverId ?? null;
  for (const a of await store.all()) if (a.driver_id === me) await store.remove(a.id);
  api.clearSession();
  localStorage.removeItem(CACHE);
  state.actions = [];
  state.ui = { loaded: {}, cash: null, expanded: new Set() };
  clearInterval(timer);
  showSignIn(message ?? t("signed_out"), message ? "error" : "info");
}

// --- start ----------------------------------------------------------------------------

function wire() {
  const menu = $("menu");
  const toggle = (open) => {
    menu.hidden = !open;
    $("bar-menu").setAttribute("aria-expanded", String(open));
  };
  $("bar-menu").addEventListener("click", () => toggle(menu.hidden));
  document.addEventListener("click", (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !$("bar-menu").contains(e.target)) {
      toggle(false);
    }
  });
  $("menu-refresh").addEventListener("click", () => { toggle(false); refresh(); });
  $("menu-lang").addEventListener("click", () => {
    toggle(false);
    setLang(lang() === "id" ? "en" : "id");
    render();
  });
  $("menu-signout").addEventListener("click", () => { toggle(false); signOut(); });
  $("bar-queue").addEventListener("click", () => {  // send now, and show what was refused
    queue.resetBackoff();
    queue.flush();
    document.querySelector("#main .problem")?.scrollIntoView({ block: "center" });
  });
  api.hooks.unauthorized = () => {
    if (api.session()) {
      api.clearSession();
      showSignIn(t("sign_in_ended"));
    }
  };
  api.hooks.connection = (up) => {
    render();
    if (up && api.session()) {
      queue.resetBackoff();
      queue.flush();
      refresh();
    }
  };
  queue.onChange(reloadActions);
  $("main").addEventListener("focusout", () => {
    if (deferred) setTimeout(render);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && navigator.onLine && state.screen === "trip") refresh();
  });
}

async function start() {
  wire();
  positions.watch();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/driver/sw.js", { scope: "/driver/" }).catch(() => {});
  }
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code !== null) {
    history.replaceState(null, "", location.pathname + location.search);
    await signIn(`#code=${code}`);
  } else if (api.session()) {
    await enter(null);
  } else {
    showSignIn(null);
  }
}

start();
