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
