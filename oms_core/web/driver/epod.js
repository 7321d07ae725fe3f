// The proof-of-delivery sheet for one order: who received it, what was handed over per
// line (the outcome follows from the quantities), why not everything, the signature,
// photos and the cash. It checks what the server would refuse before saving, and shows
// the server's refusals next to the fields they concern.

import { $, h, replace, skuNote, stepper } from "./dom.js";
import { explain, lang, money, t } from "./i18n.js";
import { amount, cents } from "./view.js";
import { downscale } from "./photos.js";
import { signaturePad } from "./signature.js";
import * as queue from "./queue.js";
import { online } from "./api.js";

const MAX_PHOTOS = 10;
const WAIT_FOR_SERVER_MS = 10000;
const FIELD_OF = {
  recipient_required: "recipient", signature_required: "signature", cod_required: "cod",
  cod_not_due: "cod", reason_required: "reason", reason_not_allowed: "reason",
  notes_required: "notes", bad_line: "lines", bad_quantity: "lines", unknown_file: "photos",
};

let sheet = null;  // the open form's state
let scrolledTo = 0;  // where the trip list was, to go back there

/**
 * Open the sheet for `order` (at `stop` of trip `tripId`); `parked` is a refused
 * delivery to fix (its values and the server's errors are shown). `notify(text)` says
 * what happened after the sheet closes.
 */
export function openDelivery({ order, stop, tripId, reasons, parked, notify }) {
  const before = parked?.body;
  const lines = order.lines.map((l) => {
    const sent = before?.lines?.find((x) => x.line_no === l.line_no);
    return {
      ...l, delivered: sent ? sent.delivered_qty : l.qty, damaged: sent?.damaged_qty ?? 0,
    };
  });
  sheet = {
    order, stop, tripId, reasons, notify, parked, lines, fields: {},
    photos: (parked?.files?.photos ?? []).map((blob) => ({ blob, url: URL.createObjectURL(blob) })),
    codEdited: Boolean(before && before.cod_collected !== null),
  };
  build(before);
  const root = $("sheet");
  scrolledTo = window.scrollY;
  root.hidden = false;
  document.body.classList.add("sheet-open");
  window.scrollTo(0, 0);
  sheet.pad.reset();
  if (parked?.files?.signature) sheet.pad.restore(parked.files.signature);
  if (parked?.error) showServer(parked.error);
  update();
}

export function closeDelivery() {
  if (!sheet) return;
  for (const p of sheet.photos) URL.revokeObjectURL(p.url);
  sheet = null;
  const root = $("sheet");
  root.hidden = true;
  root.replaceChildren();
  document.body.classList.remove("sheet-open");
  window.scrollTo(0, scrolledTo);
}

function field(name, label, control, extra = {}) {
  const input = extra.input ?? control;
  const own = ["INPUT", "SELECT", "TEXTAREA"].includes(input.tagName);
  if (own) input.id = `epod-${name}`;
  const error = h("p.field-error", { hidden: true });
  const title = own
    ? h("label.field-label", { for: input.id }, label)
    : h("span.field-label", {}, label);
  const box = h(`div.field.field-${name}`, { "data-field": name }, title, control, error);
  sheet.fields[name] = { box, error, title, input: control, ...extra };
  return box;
}

function build(before) {
  const { order, stop } = sheet;
  const root = $("sheet");
  const recipient = h("input.text", {
    type: "text", autocomplete: "off", maxlength: 200, placeholder: t("recipient_ph"),
    value: before?.recipient_name ?? "", name: "recipient",
  });
  recipient.addEventListener("input", () => clearError("recipient"));
  const reason = h("select.text", {
    name: "reason", onchange: () => { clearError("reason"); update(); },
  },
    h("option", { value: "" }, t("reason_ph")),
    sheet.reasons.map((r) => h("option", { value: r.code }, lang() === "id" ? r.id : r.en)));
  reason.value = before?.reason_code ?? "";
  const notes = h("textarea.text", { rows: 3, maxlength: 2000, name: "notes" },
    before?.notes ?? "");
  notes.addEventListener("input", () => clearError("notes"));
  sheet.pad = signaturePad({ label: t("signature"), onChange: () => clearError("signature") });
  const cod = h("input.text.money", {
    type: "text", inputmode: "decimal", autocomplete: "off", name: "cod",
    value: before?.cod_collected ?? "",
  });
  cod.addEventListener("input", () => { sheet.codEdited = true; clearError("cod"); });
  const fileInput = h("input.file-input", {
    type: "file", accept: "image/*", capture: "environment", multiple: true, name: "photos",
  });
  fileInput.addEventListener("change", () => addPhotos(fileInput));
  sheet.thumbs = h("div.thumbs");
  sheet.outcome = h("strong.outcome");
  sheet.codDue = h("p.hint");
  sheet.shortcut = h("button.secondary.shortcut", { type: "button", onclick: shortcut });
  sheet.formError = h("p.form-error", { role: "alert", hidden: true });
  sheet.submit = h("button.primary.submit", { type: "submit" });

  const form = h("form.sheet-body", { novalidate: true, onsubmit: submit },
    h("p.sheet-sub", {}, order.customer_name, " · ", stop.address_text),
    sheet.formError,
    field("recipient", t("recipient"), recipient),
    field("lines", t("items"), h("div.epod-lines", {}, sheet.lines.map(lineRow))),
    h("div.result", {}, h("span", {}, `${t("result")}: `), sheet.outcome, sheet.shortcut),
    field("reason", t("reason"), reason),
    field("notes", t("notes"), notes),
    order.cod_due === null ? null
      : field("cod", t("cod"), h("div", {}, cod, sheet.codDue), { input: cod }),
    field("signature", t("signature"), h("div.sig", {},
      h("p.hint", {}, t("signature_hint")), sheet.pad.element,
      h("button.secondary.small", { type: "button", onclick: () => sheet.pad.clear() },
        t("clear")))),
    field("photos", t("photos"), h("div.photos", {}, sheet.thumbs,
      h("label.secondary.add-photo", {}, t("add_photo"), fileInput))),
    h("div.sheet-actions", {}, sheet.submit),
  );
  replace(root,
    h("div.sheet-head", {},
      h("h2", {}, t("epod_title", { tn: order.tracking_number })),
      h("button.icon-btn.close", { type: "button", onclick: closeDelivery,
        "aria-label": t("close") }, "✕")),
    form);
  renderThumbs();
}

function lineRow(line) {
  const ordered = line.qty;
  const label = `${line.name || line.sku}`;
  return h("div.epod-line", { "data-line": line.line_no },
    h("div.line-name", {}, h("strong", {}, label), skuNote(line),
      h("span.muted", {}, ` · ${t("ordered", { qty: ordered })}`)),
    h("div.line-steppers", {},
      h("div.stepper-box", {}, h("span.mini-label", {}, t("delivered_qty")),
        line.deliveredStepper = stepper({
          value: line.delivered, max: ordered, label: `${t("delivered_qty")} ${label}`,
          onInput: (v) => { line.delivered = v; clearError("lines"); update(); },
        })),
      h("div.stepper-box", {}, h("span.mini-label", {}, t("damaged_qty")),
        stepper({
          value: line.damaged, max: ordered, label: `${t("damaged_qty")} ${label}`,
          onInput: (v) => { line.damaged = v; },
        }))));
}

/** delivered (every unit), failed (none) or partially_delivered, from the steppers. */
function derived() {
  const all = sheet.lines.every((l) => l.delivered === l.qty);
  const none = sheet.lines.every((l) => l.delivered === 0);
  if (all) return "delivered";
  return none ? "failed" : "partially_delivered";
}

function dueCents() {
  return sheet.lines.reduce((sum, l) => sum + cents(l.unit_price) * l.delivered, 0);
}

function shortcut() {
  const failed = derived() === "failed";
  for (const l of sheet.lines) l.deliveredStepper.set(failed ? l.qty : 0);
  update();
}

function update() {
  if (!sheet) return;
  const outcome = derived();
  const handed = outcome !== "failed";
  const f = sheet.fields;
  sheet.outcome.textContent = t(`result_${outcome}`);
  sheet.outcome.className = `outcome tone-${outcome}`;
  sheet.shortcut.textContent = outcome === "failed" ? t("deliver_all") : t("cannot_deliver");
  f.recipient.box.hidden = !handed;
  f.signature.box.hidden = !handed;
  f.reason.box.hidden = outcome === "delivered";
  const other = f.reason.input.value === "other";
  f.notes.title.textContent = other ? t("notes_other") : t("notes");
  if (f.cod) {
    f.cod.box.hidden = !handed;
    const due = amount(dueCents());
    sheet.codDue.textContent = t("cod_due", { amount: money(due) });
    if (!sheet.codEdited) f.cod.input.value = due;
  }
  sheet.submit.textContent = handed ? t("save") : t("save_failed");
}

async function addPhotos(input) {
  clearError("photos");
  const files = Array.from(input.files || []);
  input.value = "";
  for (const file of files) {
    if (sheet.photos.length >= MAX_PHOTOS) {
      setError("photos", t("err_too_many_photos"));
      break;
    }
    try {
      const blob = await downscale(file);
      if (!sheet) return;
      sheet.photos.push({ blob, url: URL.createObjectURL(blob) });
    } catch {
      setError("photos", t("photo_bad"));
    }
  }
  renderThumbs();
}

function renderThumbs() {
  replace(sheet.thumbs, sheet.photos.map((p, i) => h("figure.thumb", {},
    h("img", { src: p.url, alt: `${t("photos")} ${i + 1}` }),
    h("button.thumb-remove", {
      type: "button", "aria-label": `${t("remove")} ${i + 1}`,
      onclick: () => {
        URL.revokeObjectURL(p.url);
        sheet.photos.splice(i, 1);
        renderThumbs();
      },
    }, "✕"))));
}

function setError(name, text) {
  const f = sheet.fields[name];
  if (!f) return false;
  f.error.textContent = text;
  f.error.hidden = false;
  f.box.classList.add("invalid");
  return true;
}

function clearError(name) {
  const f = sheet?.fields[name];
  if (!f) return;
  f.error.hidden = true;
  f.box.classList.remove("invalid");
}

function formError(text) {
  sheet.formError.textContent = text;
  sheet.formError.hidden = !text;
}

/** The problems the server would answer with, found before anything is sent. */
function check(outcome) {
  const f = sheet.fields;
  const problems = [];
  const handed = outcome !== "failed";
  if (handed && !f.recipient.input.value.trim()) problems.push("recipient_required");
  if (handed && sheet.pad.empty()) problems.push("signature_required");
  if (outcome !== "delivered" && !f.reason.input.value) problems.push("reason_required");
  if (outcome !== "delivered" && f.reason.input.value === "other"
      && !f.notes.input.value.trim()) problems.push("notes_required");
  if (f.cod && handed) {
    const text = f.cod.input.value.trim();
    if (!text) problems.push("cod_required");
    else if (!Number.isFinite(cents(text))) problems.push("cod_invalid");
  }
  return problems;
}

function showProblems(codes, fallback) {
  for (const name of Object.keys(sheet.fields)) clearError(name);
  const loose = [];
  for (const { code, message } of codes) {
    const name = FIELD_OF[code] ?? (code === "cod_invalid" ? "cod" : null);
    if (!name || !setError(name, explain(code, message))) loose.push(explain(code, message));
  }
  formError(loose.length ? loose.join(" ") : fallback);
  const first = sheet.formError.hidden
    ? $("sheet").querySelector(".field.invalid") : sheet.formError;
  first?.scrollIntoView({ block: "center" });
}

function showServer(error) {
  const details = error.details.filter((d) => d.code);
  if (details.length) showProblems(details, t("fix_fields"));
  else showProblems([{ code: error.code, message: error.message }], "");
}

async function submit(event) {
  event.preventDefault();
  if (!sheet || sheet.submit.disabled) return;
  const stamp = queue.tap();
  const outcome = derived();
  const problems = check(outcome);
  if (problems.length) {
    showProblems(problems.map((code) => ({ code })), t("fix_fields"));
    return;
  }
  const { order, stop, tripId } = sheet;
  const f = sheet.fields;
  const handed = outcome !== "failed";
  sheet.submit.disabled = true;
  sheet.submit.textContent = t("sending");
  const body = {
    ...stamp,
    outcome,
    lines: sheet.lines.map((l) => ({
      line_no: l.line_no, delivered_qty: l.delivered, damaged_qty: l.damaged,
    })),
    recipient_name: handed ? f.recipient.input.value.trim() : "",
    notes: f.notes.input.value.trim(),
    reason_code: outcome === "delivered" ? null : f.reason.input.value,
    cod_collected: f.cod && handed ? amount(cents(f.cod.input.value)) : null,
  };
  const files = {
    signature: handed ? await sheet.pad.toBlob() : null,
    photos: sheet.photos.map((p) => p.blob),
  };
  if (sheet.parked) await queue.discard(sheet.parked.id);
  const subject = { trip_id: tripId, stop_id: stop.id, order_id: order.id };
  const id = await queue.enqueue(
    "delivery", `/driver/orders/${order.id}/delivery`, subject, body, files);
  const outcomeOf = online() ? await queue.waitFor(id, WAIT_FOR_SERVER_MS) : { result: "queued" };
  if (!sheet) return;
  if (outcomeOf.result === "parked") {
    sheet.parked = { id, body, files };
    sheet.submit.disabled = false;
    update();
    showServer(outcomeOf.error);
    return;
  }
  const notify = sheet.notify;
  closeDelivery();
  if (outcomeOf.result !== "sent") notify(t("saved_offline"));
}
