// Today's trip, top to bottom in the order the driver works: load the van, leave the
// depot, the stops in sequence (done ones folded away), back at the depot.

import { h, skuNote, stepper } from "./dom.js";
import { describe, money, t, time } from "./i18n.js";
import {
  amount, cents, collected, nextStop, openOrders, outcome, stopDone,
} from "./view.js";

/** The trip's body for `main`; `ctx` = {view, ui, act} (see app.js). */
export function tripBody(ctx) {
  const { trip } = ctx.view;
  const next = nextStop(trip);
  return [
    trip.problems.map((p) => problemBox(ctx, p)),
    trip.state === "completed" ? doneCard(trip) : null,
    loadCard(ctx),
    departCard(ctx),
    h("ol.stops", {},
      trip.stops.map((s) => h("li", {}, stopCard(ctx, s, s === next)))),
    returnCard(ctx),
  ];
}

function waitingTag(waiting) {
  return waiting ? h("span.waiting", {}, ` — ${t("waiting")}`) : null;
}

function statusRow(text, waiting) {
  return h("p.status-row", {}, h("span.tick", { "aria-hidden": "true" }, "✓"),
    h("span", {}, text, waitingTag(waiting)));
}

function problemBox(ctx, { action, error }) {
  const fixable = action.kind === "delivery";
  return h("div.problem", { role: "alert" },
    h("p", {}, h("strong", {}, t(`kind_${action.kind}`, ctx.labels(action))), ": ",
      t("not_accepted", { msg: describe(error) })),
    h("div.row", {},
      fixable
        ? h("button.primary.small", { type: "button", onclick: () => ctx.act.fix(action) },
          t("fix"))
        : h("button.primary.small", { type: "button", onclick: () => ctx.act.retry(action.id) },
          t("try_again")),
      h("button.secondary.small", { type: "button", onclick: () => ctx.act.discard(action.id) },
        t("discard"))));
}

function loadCard(ctx) {
  const { trip } = ctx.view;
  if (trip.state === "completed") return null;
  if (trip.loaded_at) {
    const short = trip.stops.flatMap((s) => s.orders.flatMap((o) => o.lines))
      .filter((l) => l.loaded_qty !== null && l.loaded_qty < l.qty).length;
    return h("section.card.compact", {},
      statusRow(t("loaded_at", { time: time(trip.loaded_at) }), trip.loaded_waiting),
      short ? h("p.warn", {}, t("loaded_short", { n: short })) : null);
  }
  if (!["dispatched", "in_progress"].includes(trip.state)) return null;
  const rows = [];
  for (const s of trip.stops) {
    for (const o of s.orders) {
      rows.push(h("h3.load-order", {}, `${t("stop", { seq: s.seq })} · `,
        t("order", { tn: o.tracking_number })));
      for (const l of o.lines) {
        const key = `${o.id}:${l.line_no}`;
        ctx.ui.loaded[key] ??= l.loaded_qty ?? l.qty;
        const label = l.name || l.sku;
        rows.push(h("div.load-line", { "data-line": key },
          h("div.line-name", {}, h("strong", {}, label), skuNote(l)),
          h("div.load-count", {},
            stepper({ value: ctx.ui.loaded[key], max: l.qty,
              label: `${label} · ${o.tracking_number}`,
              onInput: (v) => { ctx.ui.loaded[key] = v; } }),
            h("span.muted", {}, t("of_qty", { qty: l.qty })))));
      }
    }
  }
  const counted = () => trip.stops.flatMap((s) => s.orders.flatMap((o) => o.lines.map((l) => ({
    order_id: o.id, line_no: l.line_no, loaded_qty: ctx.ui.loaded[`${o.id}:${l.line_no}`],
  }))));
  const body = [
    h("p.hint", {}, t("load_intro")),
    rows,
    h("button.primary", { type: "button", onclick: () => ctx.act.loaded(counted()) },
      t("loaded_button")),
  ];
  if (trip.state === "dispatched") {
    return h("section.card.load", {}, h("h2", {}, t("load_title")), body);
  }
  const folded = h("details.card.load", { open: ctx.ui.loadOpen },  // on the road already
    h("summary", {}, h("h2", {}, t("load_title")), h("span.muted", {}, t("load_skipped"))),
    body);
  folded.addEventListener("toggle", () => { ctx.ui.loadOpen = folded.open; });
  return folded;
}

function departCard(ctx) {
  const { trip } = ctx.view;
  if (trip.state === "completed") return null;
  if (trip.actual_departure || trip.state === "in_progress") {
    if (!trip.actual_departure) return null;
    return h("section.card.compact", {},
      statusRow(t("departed_at", { time: time(trip.actual_departure) }), trip.departed_waiting));
  }
  if (trip.state !== "dispatched") return null;
  return h("section.card", {},
    h("h2", {}, t("depart_title")),
    trip.loaded_at ? null : h("p.hint", {}, t("depart_first")),
    h("button", { type: "button", class: trip.loaded_at ? "primary" : "secondary",
      onclick: () => ctx.act.departed() }, t("depart_button")));
}

function stopHead(s, next, folded) {
  const done = stopDone(s);
  let when = null;
  if (done && s.actual_arrival) when = t("arrived_at", { time: time(s.actual_arrival) });
  else if (!s.actual_arrival) {
    when = s.eta
      ? t("eta", { time: time(s.eta) })
      : t("planned", { time: time(s.planned_arrival) });
  }
  const waiting = s.orders.some((o) => o.waiting);
  return h("div.stop-head", {},
    h("span.seq", { "aria-hidden": "true" }, String(s.seq)),
    h("div.stop-title", {},
      h("h3", {}, s.address_text || t("stop", { seq: s.seq })),
      h("p.stop-times", {},
        h("span", {}, t("window", { from: time(s.window_start), to: time(s.window_end) })),
        when ? h("span", {}, when) : null),
      done || next
        ? h("p.chips", {},
          next ? h("span.chip.chip-next", {}, t("next")) : null,
          done ? s.orders.map(outcomeChip) : null,
          waiting ? h("span.chip.chip-waiting", {}, t("waiting")) : null)
        : null),
    folded ? h("span.fold", { "aria-hidden": "true" }) : null);
}

function outcomeChip(order) {
  const o = outcome(order);
  if (!o) return null;
  return h(`span.chip.tone-${o}`, {}, t(`outcome_${o}`));
}

function stopCard(ctx, s, next) {
  const { trip } = ctx.view;
  const live = trip.state === "dispatched" || trip.state === "in_progress";
  const body = [
    h("div.row.nav", {},
      h("a.button.secondary", { href: s.nav.geo }, t("navigate")),
      h("a.button.secondary", { href: s.nav.maps, target: "_blank", rel: "noopener" },
        t("maps"))),
    s.problems.map((p) => problemBox(ctx, p)),
    s.unconfirmed_from && !s.actual_arrival  // the tracker missed this visit: say so
      ? h("p.gap-note", {},
        t("unconfirmed", { from: time(s.unconfirmed_from), to: time(s.unconfirmed_to) }))
      : null,
    s.driver_arrival || s.actual_arrival
      ? statusRow(t("arrived_at", { time: time(s.driver_arrival ?? s.actual_arrival) }),
        s.arrived_waiting)
      : live
        ? h("button.primary.arrive", { type: "button", onclick: () => ctx.act.arrived(s) },
          t("arrived_button"))
        : null,
    s.orders.map((o) => orderBlock(ctx, s, o, live)),
  ];
  const label = t("stop", { seq: s.seq });
  const troubled = s.problems.length > 0 || s.orders.some((o) => o.problem);
  if (stopDone(s) && !troubled) {  // folded away, unless something there needs the driver
    const open = ctx.ui.expanded.has(s.id);
    const details = h("details.stop.done", { "aria-label": label, "data-stop": s.id, open },
      h("summary", {}, stopHead(s, false, true)), h("div.stop-body", {}, body));
    details.addEventListener("toggle", () => {
      if (details.open) ctx.ui.expanded.add(s.id);
      else ctx.ui.expanded.delete(s.id);
    });
    return details;
  }
  return h(`article.stop${next ? ".next" : ""}`, { "aria-label": label, "data-stop": s.id },
    stopHead(s, next, false), h("div.stop-body", {}, body));
}

function orderBlock(ctx, stop, o, live) {
  const result = outcome(o);
  const cod = o.cod_due !== null;
  const tel = o.customer_phone ? `tel:${o.customer_phone.replace(/[^+\d]/g, "")}` : null;
  return h("section.order", { "data-order": o.id },
    h("div.order-head", {},
      h("h4", {}, t("order", { tn: o.tracking_number })),
      cod ? h("span.cod", {}, t("collect", { amount: money(o.cod_due) }))
        : h("span.prepaid", {}, t("prepaid"))),
    h("p.customer", {}, h("strong", {}, o.customer_name),
      tel ? h("a.button.secondary.small.call", { href: tel }, `${t("call")} ${o.customer_phone}`)
        : null),
    o.instructions
      ? h("div.instructions", {}, h("strong", {}, `${t("instructions")}: `), o.instructions)
      : null,
    h("ul.lines", {}, o.lines.map((l) => h("li", {},
      h("span.qty", {}, `${l.delivered_qty ?? l.qty} × `),
      h("span", {}, l.name || l.sku), skuNote(l)))),
    o.problem ? problemBox(ctx, o.problem) : null,
    result
      ? h(`p.outcome-row.tone-${result}`, {}, h("strong", {}, t(`outcome_${result}`)),
        waitingTag(o.waiting),
        cod && o.cod_collected !== null && o.cod_collected !== undefined
          ? h("span.muted", {}, ` · ${money(o.cod_collected)}`) : null)
      : live && !o.problem
        ? h("button.primary.deliver", { type: "button",
          onclick: () => ctx.act.deliver(o, stop) }, t("deliver_button"))
        : null);
}

function returnCard(ctx) {
  const { trip } = ctx.view;
  if (trip.state !== "in_progress") return null;
  const left = openOrders(trip).length;
  const anyCod = trip.stops.some((s) => s.orders.some((o) => o.cod_due !== null));
  const got = amount(collected(trip));
  const cash = h("input.text.money", {
    type: "text", inputmode: "decimal", autocomplete: "off", name: "cash",
    value: ctx.ui.cash ?? got, "aria-label": t("cash_to_hand_in"),
  });
  const error = h("p.field-error", { hidden: true });
  cash.addEventListener("input", () => { ctx.ui.cash = cash.value; error.hidden = true; });
  const go = () => {
    const c = cents(cash.value);
    if (anyCod && !Number.isFinite(c)) {
      error.textContent = t("err_cod_invalid");
      error.hidden = false;
      return;
    }
    ctx.act.returned(anyCod ? amount(c) : null);
  };
  return h("section.card.return", {},
    h("h2", {}, t("return_title")),
    anyCod ? h("label.field", {}, h("span.field-label", {}, t("cash_to_hand_in")), cash,
      h("p.hint", {}, t("cash_hint", { amount: money(got) })), error) : null,
    left ? h("p.hint", {}, t("orders_left", { n: left })) : null,
    h("button.primary", { type: "button", disabled: left > 0, onclick: go },
      t("return_button")));
}

function doneCard(trip) {
  const settled = trip.cod_settlement?.handed_in ?? trip.cash_handed_in;
  return h("section.card.done-card", {},
    h("h2", {}, t("trip_done")),
    statusRow(t("back_at", { time: time(trip.actual_return) }), trip.returned_waiting),
    settled !== undefined && settled !== null
      ? h("p.cash-done", {}, t("cash_handed_in", { amount: money(settled) })) : null);
}
