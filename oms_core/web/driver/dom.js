// Building DOM nodes without innerHTML: every text from the server (names, addresses,
// instructions) becomes a text node, so nothing a customer typed can run as markup.

/** h("button.primary", {type: "button", onclick}, "text", child, …) */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = [el.className, value].filter(Boolean).join(" ");
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** The SKU beside a product name, unless the name is the SKU. */
export function skuNote(line) {
  return line.name && line.name !== line.sku ? h("span.muted", {}, ` · ${line.sku}`) : null;
}

export function $(id) {
  return document.getElementById(id);
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * A number with big − and + buttons (a thumb hits them; a keyboard is slow in a van).
 * `onInput(value)` runs on every change; the returned element has `.value` and `.set(n)`.
 */
export function stepper({ value, min = 0, max, label, onInput }) {
  const input = h("input.step-value", {
    type: "number", inputmode: "numeric", min, max, value, "aria-label": label,
  });
  const box = h("div.stepper");
  const set = (n) => {
    const v = Math.max(min, Math.min(max, Number.isFinite(n) ? Math.round(n) : min));
    input.value = String(v);
    less.disabled = v <= min;
    more.disabled = v >= max;
    onInput?.(v);
  };
  const less = h("button.step", {
    type: "button", "aria-label": `− ${label}`, onclick: () => set(Number(input.value) - 1),
  }, "−");
  const more = h("button.step", {
    type: "button", "aria-label": `+ ${label}`, onclick: () => set(Number(input.value) + 1),
  }, "+");
  input.addEventListener("change", () => set(Number(input.value)));
  box.append(less, input, more);
  less.disabled = value <= min;
  more.disabled = value >= max;
  Object.defineProperty(box, "value", { get: () => Number(input.value) });
  box.set = set;
  return box;
}
