// The trip as the driver should see it: the server's last snapshot with the phone's own
// actions laid over it (queued ones marked "waiting to send", refused ones with their
// error), so the driver keeps working offline and never sees a tap undone.

const OUTCOMES = new Set(["delivered", "partially_delivered", "failed"]);
const CLOSED = new Set([...OUTCOMES, "completed", "cancelled"]);

/** A deep copy of `today` with `actions` (the outbox) and `sent` (confirmed) applied. */
export function overlay(today, actions, sent) {
  const view = structuredClone(today);
  const trip = view.trip;
  if (!trip) return view;
  trip.problems = [];
  const stops = new Map(trip.stops.map((s) => [s.id, s]));
  const orders = new Map();
  for (const s of trip.stops) {
    s.problems = [];
    for (const o of s.orders) orders.set(o.id, { ...o, stop: s });
  }
  const all = [
    ...sent.map((r) => ({ ...r.record, state: "sent" })),
    ...actions,
  ].filter((a) => a.subject?.trip_id === trip.id);
  for (const a of all) {
    if (a.state === "parked") {
      attach(a, trip, stops, orders);
    } else {
      apply(a, trip, stops, orders);
    }
  }
  return view;
}

function started(trip, at) {
  if (trip.state === "dispatched") trip.state = "in_progress";
  trip.actual_departure ??= at;
}

function apply(a, trip, stops, orders) {
  const waiting = a.state !== "sent";
  const at = a.body.at;
  if (a.kind === "loaded") {
    trip.loaded_at ??= at;
    trip.loaded_waiting = waiting;
    for (const line of a.body.lines) {
      const o = orders.get(line.order_id);
      const l = o?.stop.orders.find((x) => x.id === o.id)?.lines.find(
        (x) => x.line_no === line.line_no,
      );
      if (l) l.loaded_qty = line.loaded_qty;
    }
  } else if (a.kind === "departed") {
    started(trip, at);
    trip.departed_waiting = waiting;
  } else if (a.kind === "arrived") {
    const stop = stops.get(a.subject.stop_id);
    started(trip, at);
    if (stop) {
      stop.driver_arrival ??= at;
      stop.actual_arrival ??= at;
      stop.arrived_waiting = waiting;
    }
  } else if (a.kind === "delivery") {
    const found = orders.get(a.subject.order_id);
    started(trip, at);
    if (!found) return;
    found.stop.actual_arrival ??= at;
    const order = found.stop.orders.find((o) => o.id === found.id);
    order.state = a.body.outcome;
    order.epod_outcome = a.body.outcome;
    order.cod_collected = a.body.cod_collected;
    order.waiting = waiting;
  } else if (a.kind === "returned") {
    trip.state = "completed";
    trip.actual_return ??= at;
    trip.cash_handed_in = a.body.cash_handed_in;
    trip.returned_waiting = waiting;
  }
}

function attach(a, trip, stops, orders) {
  const problem = { action: a, error: a.error };
  if (a.kind === "delivery") {
    const found = orders.get(a.subject.order_id);
    const order = found?.stop.orders.find((o) => o.id === found.id);
    if (order) {
      order.problem = problem;
      return;
    }
  }
  if (a.kind === "arrived" && stops.get(a.subject.stop_id)) {
    stops.get(a.subject.stop_id).problems.push(problem);
    return;
  }
  trip.problems.push(problem);
}

/** The outcome an order shows: its ePOD's, or what its state says. */
export function outcome(order) {
  if (OUTCOMES.has(order.state)) return order.state;
  return order.epod_outcome ?? null;
}

export function orderClosed(order) {
  return CLOSED.has(order.state) || Boolean(order.epod_outcome);
}

export function stopDone(stop) {
  return stop.orders.length > 0 && stop.orders.every(orderClosed);
}

/** The first stop still to serve, or null. */
export function nextStop(trip) {
  return trip.stops.find((s) => !stopDone(s)) ?? null;
}

export function openOrders(trip) {
  return trip.stops.flatMap((s) => s.orders.filter((o) => !orderClosed(o)));
}

/** Cents from "35.00" / "35,5" / 35; NaN when it is not an amount. */
export function cents(text) {
  const s = String(text ?? "").trim().replace(",", ".");
  if (!/^\d{1,10}(\.\d{1,2})?$/.test(s)) return NaN;
  const [whole, frac = ""] = s.split(".");
  return Number(whole) * 100 + Number(frac.padEnd(2, "0"));
}

export function amount(centsValue) {
  const c = Math.max(0, Math.round(centsValue));
  return `${Math.floor(c / 100)}.${String(c % 100).padStart(2, "0")}`;
}

/** Cash the ePODs of this trip say was collected. */
export function collected(trip) {
  let sum = 0;
  for (const s of trip.stops) {
    for (const o of s.orders) {
      const c = cents(o.cod_collected);
      if (Number.isFinite(c)) sum += c;
    }
  }
  return sum;
}
