// The pieces the screens are built from: the camera scanner, typed-code entry, GPS, photo,
// species picker, and the plausibility warnings shown while typing.

import { h, say } from "./dom.js";
import { number, t } from "./i18n.js";
import { resizePhoto } from "./photo.js";
import { startScanner } from "./scan.js";
import { app, bytes } from "./state.js";

const GPS_GOOD_M = 20;

/** The camera scanner: a button that opens the back camera; each QR read goes to `onCode`. */
export function scanPanel(ctx, onCode, labelKey = "scan.start", { id = "scan", cls = "big primary" } = {}) {
  const video = h("video", { class: "scan-video", hidden: true, "aria-label": t("scan.video") });
  const message = h("p", { class: "message", role: "status", id: `${id}-message` });
  const button = h("button", { type: "button", class: cls, id }, t(labelKey));
  let scanner = null;
  let wanted = false; // false once stopped, even while the camera is still starting
  const stop = () => {
    wanted = false;
    scanner?.stop();
    scanner = null;
    video.hidden = true;
    button.textContent = t(labelKey);
  };
  button.addEventListener("click", async () => {
    if (scanner) return stop();
    wanted = true;
    button.disabled = true;
    say(message, "scan.starting", {}, "info");
    video.hidden = false;
    try {
      const started = await startScanner(video, (text) => onCode(text, message));
      if (ctx.left || !wanted) return started.stop(); // a code was read while starting
      scanner = started;
      button.textContent = t("scan.stop");
      say(message, "scan.aim", {}, "info");
    } catch (error) {
      video.hidden = true;
      say(message, `scan.error.${error.reason || "unavailable"}`);
    } finally {
      button.disabled = false;
    }
  });
  ctx.onLeave(stop);
  return { node: h("div", { class: "scan" }, button, video, message), stop, message };
}

/** A typed-code form (always shown beside the camera): `onCode(text, messageElement)`. */
export function manualEntry(id, labelKey, placeholderKey, buttonKey, onCode) {
  const input = h("input", {
    id, type: "text", autocomplete: "off", autocapitalize: "characters", spellcheck: "false",
    placeholder: t(placeholderKey), required: true,
  });
  const message = h("p", { class: "message", role: "alert", id: `${id}-message` });
  const form = h("form", {
    class: "manual",
    onsubmit: (event) => {
      event.preventDefault();
      onCode(input.value, message);
    },
  }, h("label", { for: id }, t(labelKey)), h("div", { class: "row" }, input,
    h("button", { type: "submit", class: "primary" }, t(buttonKey))));
  return { node: h("div", {}, form, message), input, message };
}


export function plausibility(species, dbh, height, previous) {
  const warnings = [];
  const [low, high] = species.limits.dbh_cm;
  const name = species.name_zh;
  if (dbh < low || dbh > high) warnings.push(t("warn.dbh_range", { dbh: number(dbh), low, high, species: name }));
  if (height !== null) {
    const max = species.limits.height_m[1];
    if (height > max) warnings.push(t("warn.height_max", { height: number(height), max, species: name }));
    const [slim, stout] = species.limits.height_per_dbh_m_per_cm;
    const ratio = height / dbh;
    if (dbh >= 2 && (ratio < slim || ratio > stout)) {
      warnings.push(t("warn.shape", { ratio: ratio.toFixed(2), low: slim, high: stout, species: name }));
    }
  }
  if (previous?.dbh_mm) {
    const before = previous.dbh_mm / 10;
    const tolerance = Math.max(0.5, 0.03 * before);
    if (dbh < before - tolerance) {
      warnings.push(t("warn.shrinking", { before: number(before), now: number(dbh), tolerance: tolerance.toFixed(1) }));
    }
  }
  return warnings;
}

export function gpsPanel(ctx) {
  const text = h("p", { class: "message", role: "status", id: "gps-status" });
  const gps = { fix: null, watch: null };
  const stop = () => {
    if (gps.watch !== null) navigator.geolocation.clearWatch(gps.watch);
    gps.watch = null;
  };
  const show = () => {
    const { latitude, longitude, accuracy } = gps.fix;
    const where = t("gps.fix", { lat: latitude.toFixed(5), lon: longitude.toFixed(5), m: Math.round(accuracy) });
    text.textContent = accuracy > GPS_GOOD_M ? `${where} ${t("gps.inaccurate", { max: GPS_GOOD_M })}` : where;
    text.dataset.tone = accuracy > GPS_GOOD_M ? "warn" : "ok";
  };
  const start = () => {
    stop();
    gps.fix = null;
    if (!("geolocation" in navigator)) return say(text, "gps.unsupported", {}, "warn");
    say(text, "gps.waiting", {}, "info");
    gps.watch = navigator.geolocation.watchPosition((position) => {
      const { latitude, longitude, accuracy } = position.coords;
      if (!gps.fix || accuracy <= gps.fix.accuracy) gps.fix = { latitude, longitude, accuracy };
      show();
    }, (error) => {
      if (gps.fix) return;
      say(text, { 1: "gps.denied", 2: "gps.unavailable", 3: "gps.timeout" }[error.code] ?? "gps.unavailable", {}, "warn");
    }, { enableHighAccuracy: true, maximumAge: 0, timeout: 60000 });
  };
  ctx.onLeave(stop);
  start();
  const node = h("fieldset", { class: "gps" }, h("legend", {}, t("gps.legend")), text,
    h("button", { type: "button", onclick: start }, t("gps.retry")));
  return { node, stop, fix: () => gps.fix };
}

/** A photo taken with the camera, resized on the phone; `id` names the input (one per screen). */
export function photoPanel({ id = "photo", legend = "photo.legend" } = {}) {
  const input = h("input", { type: "file", id, accept: "image/*", capture: "environment", class: "visually-hidden" });
  const text = h("p", { class: "message", role: "status", id: `${id}-status`, "data-tone": "warn" }, t("photo.none"));
  const thumb = h("img", { class: "thumb", alt: t("photo.alt"), hidden: true });
  const state = { photo: null };
  input.addEventListener("change", async () => {
    const file = input.files?.[0];
    if (!file) return;
    say(text, "photo.working", {}, "info");
    try {
      state.photo = await resizePhoto(file);
      thumb.src = state.photo.thumb;
      thumb.hidden = false;
      say(text, "photo.ready", { size: bytes(state.photo.blob.size), w: state.photo.width, h: state.photo.height }, "ok");
    } catch {
      state.photo = null;
      thumb.hidden = true;
      say(text, "photo.unreadable");
    }
  });
  const node = h("fieldset", { class: "photo" }, h("legend", {}, t(legend)),
    input, h("label", { for: id, class: "button" }, t("photo.take")), thumb, text);
  return { node, photo: () => state.photo };
}

export function speciesPicker(onChange) {
  const search = h("input", { id: "species-search", type: "search", placeholder: t("form.species_search"), "aria-label": t("form.species_search") });
  const select = h("select", { id: "species", required: true });
  const fill = () => {
    const query = search.value.trim().toLowerCase();
    const chosen = select.value;
    const matches = app.method.species.filter((s) => !query
      || [s.name_zh, s.scientific_name, s.id, ...s.local_names].join(" ").toLowerCase().includes(query));
    select.replaceChildren(h("option", { value: "" }, t("form.species_choose")), ...matches.map((s) => h("option", {
      value: s.id, disabled: s.route === "excluded",
    }, `${s.name_zh}（${s.local_names.join("、")}）${s.route === "excluded" ? t("form.species_excluded") : ""}`)));
    const usable = matches.filter((s) => s.route !== "excluded");
    if (matches.some((s) => s.id === chosen)) select.value = chosen;
    else if (query && usable.length === 1) select.value = usable[0].id;
    onChange();
  };
  search.addEventListener("input", fill);
  select.addEventListener("change", onChange);
  fill();
  return { node: h("div", { class: "field" }, h("label", { for: "species" }, t("form.species")), search, select), select };
}
