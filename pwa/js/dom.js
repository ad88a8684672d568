// Small DOM helpers shared by the screens: elements, messages, headings and links.

import { t } from "./i18n.js";

export const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes (`on…` become listeners) and children (strings become text). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key === "className" ? "class" : key, value === true ? "" : value);
  }
  el.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

/** Show message `key` in `el` with a tone (error, warn, info, ok); no key clears it. */
export const say = (el, key, params, tone = "error") => {
  el.textContent = key ? t(key, params) : "";
  el.dataset.tone = tone;
};

export const heading = (key, params) => h("h1", { tabindex: "-1" }, t(key, params));

export const link = (href, key, params, cls = "button") => h("a", { href, class: cls }, t(key, params));

/** A screen that cannot open, with the reason and a way back. */
export const notice = (key, params, ...extra) => h("section", { class: "notice" },
  heading("notice.title"), h("p", { role: "alert", class: "message", "data-tone": "error" }, t(key, params)), ...extra);

/** A UUIDv7: time-ordered, made on the phone so offline records never collide. */
export function uuidv7() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const ms = Date.now();
  for (let i = 0; i < 6; i++) bytes[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
