// Message catalogues (pwa/i18n/<lang>.json): Chinese by default, English on request.
// Every word the app shows comes from here; the code only holds keys.
const STORAGE_KEY = "sipang.lang";
const LANGUAGES = ["zh", "en"];
let messages = {};
let current = "zh";

/** The language in use: "zh" or "en". */
export const language = () => current;

/** Load a catalogue (the saved choice, else Chinese) and translate the static page. */
export async function loadLanguage(wanted) {
  let choice = wanted || localStorage.getItem(STORAGE_KEY) || "zh";
  if (!LANGUAGES.includes(choice)) choice = "zh";
  try {
    messages = await (await fetch(`/app/i18n/${choice}.json`)).json();
  } catch (error) {
    if (choice === "zh") throw error;
    return loadLanguage("zh");
  }
  current = choice;
  localStorage.setItem(STORAGE_KEY, choice);
  document.documentElement.lang = choice === "zh" ? "zh-CN" : "en";
  translate(document);
  return choice;
}

/** The message `key` with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

const HAN = /[\u3400-\u9fff]/; // a Chinese character
const CODE = /^[a-z][a-z0-9_]*$/; // how the server (or the app) names a failure
const ended = (text) => (/[。！？.!?]$/.test(text) ? text : `${text}${HAN.test(text) ? "。" : "."}`);
const words = (text) => (typeof text === "string" && text.trim() ? text.trim() : null);

/**
 * What a failure says to the person holding the phone, as a sentence in the chosen language.
 * `failure`: an ApiError or any Error, a refused operation's or a flag's {code, reason}, or a
 * code or message as the phone kept it. Words already in Chinese are kept; otherwise, in
 * Chinese, the text for the code (`reason.<code>`), else a sentence that names the code; in
 * English the server's own words. No answer from the server reads as a sentence about signal.
 */
export function errorText(failure) {
  const found = typeof failure === "string" ? { [CODE.test(failure) ? "code" : "message"]: failure } : failure ?? {};
  const api = found.name === "ApiError";
  // The server's (or the browser's) words; an ApiError's own message only names the request.
  const said = api ? words(found.body?.error?.message) : words(found.message) ?? words(found.reason);
  if (said && HAN.test(said)) return ended(said);
  const status = Number.isInteger(found.status) ? found.status : 0;
  let code = words(found.code);
  if (api && !status && !code) return t("error.network"); // no answer, or one cut short
  code ??= status === 429 ? "rate_limited" : status >= 500 ? "server_unavailable" : null;
  if (current === "en" && said) return ended(said);
  if (code && `reason.${code}` in messages) return t(`reason.${code}`);
  const name = found.name && !["Error", "ApiError"].includes(found.name) ? found.name : null;
  return t("error.other", { code: code ?? (status ? `HTTP ${status}` : name ?? said?.slice(0, 60) ?? "?") });
}

/** Fill `[data-i18n]` text and `[data-i18n-attr="attr:key"]` attributes below `root`. */
export function translate(root) {
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll("[data-i18n-attr]").forEach((el) => {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  });
}

/** A number in the current language's notation. */
export function number(value, digits = 1) {
  return Number(value).toLocaleString(current === "zh" ? "zh-CN" : "en", {
    maximumFractionDigits: digits,
  });
}
