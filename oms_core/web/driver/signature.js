// The recipient's signature: drawn with a finger, stylus or mouse (pointer events) on a
// canvas sized in device pixels so the strokes stay sharp, exported as a PNG Blob.

import { h } from "./dom.js";

const MIN_SEGMENTS = 3;  // a tap or a slip is not a signature

export function signaturePad({ label, onChange }) {
  const canvas = h("canvas.sig-canvas", { "aria-label": label, role: "img" });
  let ctx = null;
  let drawing = false;
  let segments = 0;

  function point(e) {
    const r = canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  /** Match the canvas to its box on screen (and wipe it): call once it is shown. */
  function reset() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(r.width * dpr));
    canvas.height = Math.max(1, Math.round(r.height * dpr));
    ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, r.width, r.height);
    ctx.lineWidth = 2.6;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#10202e";
    segments = 0;
  }

  /** The canvas was sized while hidden, or the phone turned: start it afresh. */
  function stale() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    return !ctx || canvas.width !== Math.max(1, Math.round(r.width * dpr));
  }

  canvas.addEventListener("pointerdown", (e) => {
    if (stale()) reset();
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    drawing = true;
    const [x, y] = point(e);
    ctx.beginPath();
    ctx.moveTo(x, y);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const [x, y] = point(ev);
      ctx.lineTo(x, y);
      segments += 1;
    }
    ctx.stroke();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    onChange?.();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  return {
    element: canvas,
    reset,
    clear() {
      reset();
      onChange?.();
    },
    empty: () => segments < MIN_SEGMENTS,
    /** Draw an earlier signature back (reopening a refused delivery to fix it). */
    async restore(blob) {
      reset();
      const bitmap = await createImageBitmap(blob);
      const r = canvas.getBoundingClientRect();
      ctx.drawImage(bitmap, 0, 0, r.width, r.height);
      bitmap.close();
      segments = MIN_SEGMENTS;
      onChange?.();
    },
    toBlob: () => new Promise((resolve) => canvas.toBlob(resolve, "image/png")),
  };
}
