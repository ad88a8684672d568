// The measurer app: a hash router over a handful of screens (enrol, village, household, tree
// form, outbox), a sync banner on every screen, the scheduler and the service worker.
// Everything reads and writes IndexedDB first, so it all works with no signal at all.

import { equivalentDbh, estimateTree, needsHeight } from "./carbon.js";
import { language, loadLanguage, number, t } from "./i18n.js";
import { withStore } from "./idb.js";
import {
  exportOutbox, getMeta, opsByState, pendingOps, recordOperation, recordOperations, setMeta, status,
} from "./outbox.js";
import { resizePhoto } from "./photo.js";
import { parseCode, startScanner } from "./scan.js";
import { SyncScheduler } from "./scheduler.js";
import { clockOffsetMs, enrol, syncOnce } from "./sync.js";

const POSITIONS = ["house", "village", "road", "water"]; // 四旁: 宅旁 村旁 路旁 水旁
const GPS_GOOD_M = 20;
const STORAGE_WARN_SHARE = 0.8;
const CLOCK_WARN_MS = 5 * 60 * 1000; // the server flags records from a clock this far off
const $ = (selector, root = document) => root.querySelector(selector);

let device = null; // meta "device": {device_id, token, village_code}
let method = null; // the methodology parameter set (meta "method_document")
let scheduler = null;
let current = null; // the screen on show: {leave(), refresh?}
let renders = 0;
const photoProgress = new Map(); // sha256 → bytes the server holds, live during a sync

// --- small helpers -----------------------------------------------------------------------

/** An element with attributes (`on…` become listeners) and children (strings become text). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key === "className" ? "class" : key, value === true ? "" : value);
  }
  el.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

const say = (el, key, params, tone = "error") => {
  el.textContent = key ? t(key, params) : "";
  el.dataset.tone = tone;
};

/** A UUIDv7: time-ordered, made on the phone so offline registrations never collide. */
function uuidv7() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const ms = Date.now();
  for (let i = 0; i < 6; i++) bytes[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function ago(ms) {
  const minutes = Math.floor((ms ?? 0) / 60000);
  if (minutes < 1) return t("age.now");
  if (minutes < 60) return t("age.minutes", { n: minutes });
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? t("age.hours", { n: hours }) : t("age.days", { n: Math.floor(hours / 24) });
}

const bytes = (n) => (n >= 1e6 ? t("unit.mb", { n: number(n / 1e6) }) : t("unit.kb", { n: number(n / 1e3, 0) }));
const speciesOf = (id) => method?.species.find((s) => s.id === id) ?? null;
const speciesName = (id) => {
  const species = speciesOf(id);
  if (!species) return id;
  return language() === "zh" ? species.name_zh : `${species.name_zh} · ${species.scientific_name}`;
};

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

// --- local data --------------------------------------------------------------------------

const households = () => withStore("households", "readonly", (s) => s.getAll());

/** The village's trees as pulled, with this phone's unsynced operations laid over them. */
async function villageTrees() {
  const [stored, waiting] = await Promise.all([
    withStore("trees", "readonly", (s) => s.getAll()), pendingOps(100000),
  ]);
  const trees = new Map(stored.map((tree) => [tree.id, { ...tree }]));
  for (const op of waiting) {
    const p = op.payload;
    let tree = trees.get(op.record_id);
    if (op.kind === "tree.register") {
      if (tree) continue;
      tree = {
        id: op.record_id, household: p.household_code, species_id: p.species_id,
        position: p.position, tag: p.tag ?? null, status: "alive", version: 0, open_flags: [],
      };
      trees.set(tree.id, tree);
    }
    if (!tree) continue;
    tree.unsynced = true;
    tree.version = (tree.version ?? 0) + 1;
    if (op.kind === "tree.status") tree.status = p.status;
    if (op.kind === "tree.measure") {
      const stems = p.stems_mm ?? [p.dbh_mm];
      Object.assign(tree, {
        measurement_id: p.measurement_id, dbh_mm: Math.round(equivalentDbh(stems)),
        height_cm: p.height_cm ?? null, client_time: op.client_time, awaiting_photo: !!p.photo_sha256,
      });
      try {
        tree.co2e_g = estimateTree(method, tree.species_id, tree.dbh_mm / 10, (p.height_cm ?? 0) / 100 || null).co2e_g;
      } catch { tree.co2e_g = null; }
    }
  }
  return [...trees.values()];
}

/** Why a household code cannot be opened here (invalid, other_village, not_in_roster), or null. */
async function householdProblem(text) {
  const code = parseCode(text);
  if (code.type !== "household" || !code.valid) return { problem: "invalid", code };
  if (code.village !== device.village_code) return { problem: "other_village", code };
  const row = await withStore("households", "readonly", (s) => s.get(code.value));
  return row ? { problem: null, code, household: row } : { problem: "not_in_roster", code };
}

/** The parameter set: the cached one at once, a newer one fetched when the server has it. */
async function refreshMethod({ force = false } = {}) {
  method ??= (await getMeta("method_document")) ?? null;
  const announced = (await getMeta("method"))?.version; // stored by each pull
  if (!force && method && (!announced || announced === method.version)) return method;
  if (!navigator.onLine) return method;
  try {
    const { current: version } = await fetchJson("/api/v1/carbon/methods");
    if (method?.version !== version) {
      const found = await fetchJson(`/api/v1/carbon/methods/${encodeURIComponent(version)}`);
      method = { ...found.document, sha256: found.sha256 };
      await setMeta("method_document", method);
    }
  } catch { /* offline or refused: keep the cached set */ }
  return method;
}

// --- sync and banner ---------------------------------------------------------------------

async function runSync() {
  let progressShown = 0;
  try {
    const result = await syncOnce({
      onProgress: ({ sha256, sent }) => {
        photoProgress.set(sha256, sent);
        if (Date.now() - progressShown > 500) {
          progressShown = Date.now();
          current?.progress?.();
        }
      },
    });
    await refreshMethod();
    return result.pending > 0 || result.photosPending > 0;
  } finally {
    photoProgress.clear();
    refreshBanner();
    current?.refresh?.();
  }
}

function syncProblem(error) {
  if (!error || !navigator.onLine) return null;
  if (error.status === 401 || error.code === "invalid_token") return "banner.revoked";
  return error.permanent ? "banner.refused" : "banner.retry";
}

async function refreshBanner() {
  $("#net").hidden = navigator.onLine;
  const queue = $("#queue");
  queue.hidden = !device; // nothing to count before the phone is enrolled
  if (!device) return;
  const s = await status();
  const parts = [s.pending
    ? t("banner.pending", { count: s.pending, age: ago(s.oldestPendingMs) })
    : t("banner.synced")];
  if (s.photosPending) parts.push(t("banner.photos", { count: s.photosPending }));
  if (s.rejected) parts.push(t("banner.rejected", { count: s.rejected }));
  const offset = await clockOffsetMs();
  if (Math.abs(offset ?? 0) > CLOCK_WARN_MS) {
    parts.push(t(offset > 0 ? "banner.clock_ahead" : "banner.clock_behind", { minutes: Math.round(Math.abs(offset) / 60000) }));
  }
  const snap = scheduler?.snapshot();
  if (snap?.state === "running") parts.push(t("banner.syncing"));
  else if (syncProblem(snap?.lastError)) parts.push(t(syncProblem(snap.lastError)));
  queue.textContent = parts.join(" · ");
  $("#banner").dataset.tone = s.pending || s.photosPending ? "waiting" : "ok";
}

let updateRequested = false;

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  const offer = (worker) => {
    if (!worker || !navigator.serviceWorker.controller) return; // first install: nothing to update
    const button = $("#update");
    button.hidden = false;
    button.onclick = () => {
      updateRequested = true;
      worker.postMessage({ type: "skip-waiting" });
    };
  };
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (updateRequested) location.reload();
  });
  try {
    const registration = await navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" });
    offer(registration.waiting);
    registration.addEventListener("updatefound", () => {
      const worker = registration.installing;
      worker?.addEventListener("statechange", () => {
        if (worker.state === "installed") offer(worker);
      });
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && navigator.onLine) registration.update().catch(() => {});
    });
  } catch (error) {
    console.warn("service worker not registered", error);
  }
}

// --- shared pieces of screens ------------------------------------------------------------

/** The camera scanner: a button that opens the back camera; each QR read goes to `onCode`. */
function scanPanel(ctx, onCode, labelKey = "scan.start") {
  const video = h("video", { class: "scan-video", hidden: true, "aria-label": t("scan.video") });
  const message = h("p", { class: "message", role: "status" });
  const button = h("button", { type: "button", class: "big primary", id: "scan" }, t(labelKey));
  let scanner = null;
  const stop = () => {
    scanner?.stop();
    scanner = null;
    video.hidden = true;
    button.textContent = t(labelKey);
  };
  button.addEventListener("click", async () => {
    if (scanner) return stop();
    button.disabled = true;
    say(message, "scan.starting", {}, "info");
    video.hidden = false;
    try {
      const started = await startScanner(video, (text) => onCode(text, message));
      if (ctx.left) return started.stop();
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
function manualEntry(id, labelKey, placeholderKey, buttonKey, onCode) {
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

/** Open what a scanned or typed code names: a household, a tagged tree; else say why not. */
async function openCode(text, message) {
  const code = parseCode(text);
  navigator.vibrate?.(40);
  if (code.type === "household") {
    const { problem } = await householdProblem(code.value);
    if (problem) return say(message, `code.${problem}`, { code: code.value, village: code.village });
    location.hash = `#/household/${code.value}`;
  } else if (code.type === "tag") {
    if (!code.valid) return say(message, "code.tag_invalid", { code: code.value });
    if (code.village !== device.village_code) return say(message, "code.other_village", { code: code.value });
    const tree = (await villageTrees()).find((x) => x.tag === code.value);
    if (!tree) return say(message, "code.tag_unbound", { code: code.value });
    location.hash = `#/tree/${tree.id}/measure`;
  } else {
    say(message, code.type === "enrol" ? "code.enrol_here" : "code.unknown");
  }
}

const heading = (key, params) => h("h1", { tabindex: "-1" }, t(key, params));
const notice = (key, params, ...extra) => h("section", { class: "notice" },
  heading("notice.title"), h("p", { role: "alert", class: "message", "data-tone": "error" }, t(key, params)), ...extra);
const link = (href, key, params, cls = "button") => h("a", { href, class: cls }, t(key, params));

// --- screens -----------------------------------------------------------------------------

async function screenEnrol(ctx) {
  const label = h("input", { id: "label", type: "text", required: true, maxlength: "100", value: t("enrol.label_default") });
  const status = h("p", { class: "message", role: "status", id: "enrol-status" });
  const submit = h("button", { type: "submit", class: "big primary", id: "enrol" }, t("enrol.submit"));
  const code = h("input", {
    id: "code", type: "text", required: true, autocomplete: "off", autocapitalize: "characters",
    spellcheck: "false", placeholder: t("enrol.code_placeholder"),
  });
  const scan = scanPanel(ctx, (text, message) => {
    const found = parseCode(text);
    if (found.type !== "enrol") return say(message, "enrol.not_enrol_qr");
    code.value = found.value;
    scan.stop();
    say(message, "enrol.code_read", {}, "ok");
    label.focus();
  }, "enrol.scan");
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const found = parseCode(code.value);
      if (found.type !== "enrol") return say(status, "enrol.bad_code");
      submit.disabled = true;
      say(status, "enrol.working", {}, "info");
      try {
        device = await enrol(found.value, label.value.trim() || t("enrol.label_default"));
      } catch (error) {
        submit.disabled = false;
        const key = error.code === "invalid_enrolment_code" ? "enrol.invalid"
          : error.code === "outbox_not_empty" ? "enrol.outbox_not_empty"
            : error.status ? "enrol.failed" : "enrol.offline";
        return say(status, key, { message: error.message });
      }
      say(status, "enrol.pulling", {}, "info");
      await Promise.all([syncOnce().catch(() => null), refreshMethod({ force: true })]);
      refreshBanner();
      location.hash = "#/village";
    },
  },
  h("label", { for: "code" }, t("enrol.code")), code,
  h("label", { for: "label" }, t("enrol.label")), label, submit, status);
  return h("section", {},
    heading("enrol.title"),
    device ? h("p", { class: "message", "data-tone": "info" }, t("enrol.already", { village: device.village_code })) : null,
    h("p", {}, t("enrol.intro")), scan.node, form);
}

async function screenVillage(ctx) {
  const [rows, trees] = await Promise.all([households(), villageTrees()]);
  const counts = new Map();
  for (const tree of trees) counts.set(tree.household, (counts.get(tree.household) ?? 0) + 1);
  rows.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  const scan = scanPanel(ctx, openCode, "village.scan");
  const manual = manualEntry("household-code", "village.manual", "village.manual_placeholder", "village.open", openCode);
  ctx.refresh = () => route();
  return h("section", {},
    heading("village.title", { village: device.village_code }),
    scan.node, manual.node,
    h("h2", {}, t("village.households", { count: rows.length })),
    rows.length
      ? h("ul", { class: "list", id: "households" }, rows.map((row) => h("li", {},
        h("a", { href: `#/household/${row.code}`, class: "item" },
          h("strong", {}, t("household.number", { seq: row.seq })),
          h("span", { class: "code" }, row.code),
          h("span", {}, t("village.tree_count", { count: counts.get(row.code) ?? 0 }))))))
      : h("p", { class: "message", "data-tone": "info" }, t("village.empty")));
}

function treeCard(tree) {
  const measured = tree.dbh_mm
    ? [t("tree.dbh", { cm: number(tree.dbh_mm / 10) }),
      tree.height_cm ? t("tree.height", { m: number(tree.height_cm / 100) }) : null,
      tree.co2e_g !== null && tree.co2e_g !== undefined ? t("tree.co2e", { kg: number(tree.co2e_g / 1000) }) : null]
      .filter(Boolean).join(" · ")
    : t("tree.unmeasured");
  const alive = (tree.status ?? "alive") === "alive";
  const confirm = h("div", { class: "confirm", hidden: true, role: "group" });
  const ask = (next) => {
    confirm.replaceChildren(
      h("p", {}, t(`status.confirm_${next}`)),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", onclick: () => markStatus(tree, next) }, t(`status.yes_${next}`)),
        h("button", { type: "button", onclick: () => { confirm.hidden = true; } }, t("common.cancel"))));
    confirm.hidden = false;
    confirm.querySelector("button").focus();
  };
  return h("li", { class: "card", "data-tree": tree.id },
    h("h3", {}, speciesName(tree.species_id)),
    h("p", { class: "meta" }, [t(`position.${tree.position}`), tree.tag ? t("tree.tag", { tag: tree.tag }) : null]
      .filter(Boolean).join(" · ")),
    h("p", { class: "measure" }, measured),
    h("p", { class: "badges" },
      alive ? null : h("span", { class: "badge danger" }, t(`status.${tree.status}`)),
      tree.unsynced ? h("span", { class: "badge waiting" }, t("tree.unsynced")) : null,
      tree.awaiting_photo ? h("span", { class: "badge waiting" }, t("tree.awaiting_photo")) : null),
    tree.open_flags?.length
      ? h("ul", { class: "flags" }, tree.open_flags.map((flag) => h("li", {}, t("tree.flag", { reason: flag.reason }))))
      : null,
    alive ? h("div", { class: "row actions" },
      link(`#/tree/${tree.id}/measure`, "tree.remeasure", {}, "button primary"),
      h("button", { type: "button", onclick: () => ask("dead") }, t("status.mark_dead")),
      h("button", { type: "button", onclick: () => ask("felled") }, t("status.mark_felled"))) : null,
    confirm);
}

async function markStatus(tree, next) {
  await recordOperation({
    kind: "tree.status", recordId: tree.id, payload: { status: next }, baseVersion: tree.version ?? null,
  });
  scheduler.kick("save");
  refreshBanner();
  route();
}

async function screenHousehold(ctx, text) {
  const { problem, code, household } = await householdProblem(decodeURIComponent(text));
  if (problem) {
    return notice(`code.${problem}`, { code: code.value, village: code.village },
      link("#/village", "common.back_village"));
  }
  const trees = (await villageTrees()).filter((tree) => tree.household === code.value);
  trees.sort((a, b) => (a.status === "alive" ? 0 : 1) - (b.status === "alive" ? 0 : 1) || (a.id < b.id ? -1 : 1));
  ctx.refresh = () => route();
  return h("section", {},
    heading("household.title", { seq: household.seq }),
    h("p", { class: "code" }, code.value),
    household.status && household.status !== "active" ? h("p", { class: "message" }, t("household.status", { status: household.status })) : null,
    link(`#/tree/new/${code.value}`, "household.add_tree", {}, "button big primary"),
    trees.length ? h("ul", { class: "cards", id: "trees" }, trees.map(treeCard)) : h("p", {}, t("household.no_trees")),
    link("#/village", "common.back_village"));
}

/** DBH/height/species checks shown while typing: the server flags the same for review. */
function plausibility(species, dbh, height, previous) {
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

function gpsPanel(ctx) {
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

function photoPanel() {
  const input = h("input", { type: "file", id: "photo", accept: "image/*", capture: "environment", class: "visually-hidden" });
  const text = h("p", { class: "message", role: "status", id: "photo-status", "data-tone": "warn" }, t("photo.none"));
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
  const node = h("fieldset", { class: "photo" }, h("legend", {}, t("photo.legend")),
    input, h("label", { for: "photo", class: "button" }, t("photo.take")), thumb, text);
  return { node, photo: () => state.photo };
}

function speciesPicker(onChange) {
  const search = h("input", { id: "species-search", type: "search", placeholder: t("form.species_search"), "aria-label": t("form.species_search") });
  const select = h("select", { id: "species", required: true });
  const fill = () => {
    const query = search.value.trim().toLowerCase();
    const chosen = select.value;
    const matches = method.species.filter((s) => !query
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

async function screenTreeForm(ctx, { household, treeId }) {
  await refreshMethod();
  const trees = await villageTrees();
  const tree = treeId ? trees.find((x) => x.id === treeId) : null;
  if (treeId && !tree) return notice("tree.unknown", {}, link("#/village", "common.back_village"));
  const { problem, code } = await householdProblem(tree ? tree.household : decodeURIComponent(household));
  if (problem) return notice(`code.${problem}`, { code: code.value, village: code.village }, link("#/village", "common.back_village"));
  if (!method) return notice("method.missing", {}, link(`#/household/${code.value}`, "common.back_household"));

  const estimate = h("p", { class: "estimate", id: "estimate", "aria-live": "polite" });
  const warningList = h("ul", { class: "warnings", id: "warnings", "aria-live": "polite" });
  const formError = h("p", { class: "message", role: "alert", id: "form-error", tabindex: "-1" });
  const stems = h("div", { class: "stems" });
  const height = h("input", { id: "height", type: "number", inputmode: "decimal", step: "any", min: "0.3", max: "80" });
  const heightLabel = h("label", { for: "height" });
  const tag = h("input", { id: "tag", type: "text", autocapitalize: "characters", autocomplete: "off", placeholder: t("form.tag_placeholder") });
  let picker = null;
  const species = () => (tree ? speciesOf(tree.species_id) : speciesOf(picker?.select.value));

  const stemValues = () => [...stems.querySelectorAll("input")].map((input) => input.value.trim())
    .filter((value, index) => index === 0 || value !== "").map((value) => (value === "" ? NaN : Number(value)));
  const addStem = (first = false) => {
    const input = h("input", { type: "number", inputmode: "decimal", step: "any", min: "0.1", max: "300", id: first ? "dbh" : null, class: "stem" });
    input.addEventListener("input", update);
    const remove = first ? null : h("button", { type: "button", class: "small", "aria-label": t("form.stem_remove"), onclick: () => { row.remove(); update(); } }, "×");
    const row = h("div", { class: "row" }, input, remove);
    if (!first) input.setAttribute("aria-label", t("form.stem_extra"));
    stems.append(row);
    if (!first) input.focus();
  };

  function read() {
    const s = species();
    const values = stemValues().map((cm) => Math.round(cm * 10) / 10);
    const heightText = height.value.trim();
    return { s, values, heightM: heightText === "" ? null : Number(heightText) };
  }

  function update() {
    const { s, values, heightM } = read();
    warningList.replaceChildren();
    estimate.textContent = "";
    if (!s) return;
    heightLabel.textContent = t(needsHeight(s) ? "form.height_required" : "form.height_optional");
    if (s.route === "excluded") {
      estimate.textContent = s.excluded_reason;
      estimate.dataset.tone = "warn";
      return;
    }
    if (!values.length || !values.every((cm) => cm >= 0.1 && cm <= 300)) return;
    const dbh = values.length > 1 ? equivalentDbh(values) : values[0];
    if (heightM !== null && !(heightM >= 0.3 && heightM <= 80)) return say(estimate, "error.height_range", {}, "warn");
    if (heightM === null && needsHeight(s)) return say(estimate, "estimate.needs_height", { species: s.name_zh }, "info");
    const result = estimateTree(method, s.id, dbh, heightM);
    const lines = [t("estimate.value", { kg: number(result.co2e_g / 1000) })];
    if (values.length > 1) lines.push(t("estimate.equivalent", { cm: number(dbh) }));
    if (s.route === "generic") lines.push(t("estimate.generic", { pct: s.uncertainty_pct }));
    estimate.textContent = lines.join(" ");
    estimate.dataset.tone = "ok";
    warningList.replaceChildren(...plausibility(s, dbh, heightM, tree).map((w) => h("li", {}, w)));
  }

  function validate() {
    const { s, values, heightM } = read();
    if (!s) return ["form.need_species"];
    if (s.route === "excluded") return ["form.species_excluded_error", { reason: s.excluded_reason }];
    if (!tree && !$("input[name=position]:checked", form)) return ["form.need_position"];
    if (!values.length || !values.every((cm) => cm >= 0.1 && cm <= 300)) return ["error.dbh_range"];
    if (heightM !== null && !(heightM >= 0.3 && heightM <= 80)) return ["error.height_range"];
    if (heightM === null && needsHeight(s)) return ["estimate.needs_height", { species: s.name_zh }];
    if (!tree && tag.value.trim()) {
      const found = parseCode(tag.value);
      if (found.type !== "tag" || !found.valid) return ["code.tag_invalid", { code: tag.value.trim() }];
      if (found.village !== device.village_code) return ["code.other_village", { code: found.value }];
      if (trees.some((x) => x.tag === found.value)) return ["form.tag_taken", { code: found.value }];
    }
    return null;
  }

  const save = h("button", { type: "submit", class: "big primary", id: "save" }, t("form.save"));
  const gps = gpsPanel(ctx);
  const photo = photoPanel();
  const form = h("form", { novalidate: true, id: "tree-form" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const invalid = validate();
    if (invalid) {
      say(formError, ...invalid);
      return formError.focus();
    }
    const { s, values, heightM } = read();
    save.disabled = true;
    say(formError, "form.saving", {}, "info");
    const fix = gps.fix();
    const picture = photo.photo();
    try {
      const id = tree?.id ?? uuidv7();
      const operations = [];
      if (!tree) { // a new tree: its registration and first measurement are saved together
        const payload = { household_code: code.value, species_id: s.id, position: $("input[name=position]:checked", form).value };
        if (tag.value.trim()) payload.tag = parseCode(tag.value).value;
        operations.push({ kind: "tree.register", recordId: id, payload, baseVersion: null });
      }
      const payload = { measurement_id: uuidv7(), stems_mm: values.map((cm) => Math.round(cm * 10)) };
      if (heightM !== null) payload.height_cm = Math.round(heightM * 100);
      if (fix) Object.assign(payload, { latitude: fix.latitude, longitude: fix.longitude, gps_accuracy_m: Math.round(fix.accuracy * 10) / 10 });
      operations.push({
        kind: "tree.measure", recordId: id, payload, baseVersion: tree ? tree.version ?? null : 1,
        photo: picture?.blob ?? null, thumbnail: picture?.thumb ?? null,
      });
      await recordOperations(operations);
      gps.stop();
      scheduler.kick("save");
      refreshBanner();
      form.replaceWith(h("section", { class: "saved", id: "saved" },
        h("p", { role: "status", class: "message", "data-tone": "ok", tabindex: "-1" }, t("form.saved")),
        h("div", { class: "row" },
          tree ? null : h("button", { type: "button", class: "big primary", onclick: () => route() }, t("form.another")),
          link(`#/household/${code.value}`, "common.back_household", {}, "button big"))));
      $("#saved p").focus();
    } catch (error) {
      save.disabled = false;
      const key = error.code === "photo_too_large" ? "form.photo_too_large"
        : error.name === "QuotaExceededError" ? "form.quota" : "form.save_failed";
      say(formError, key, { message: error.message });
      formError.focus();
    }
  });

  if (!tree) picker = speciesPicker(update);
  addStem(true);
  form.append(...[
    tree ? h("p", { class: "lead" }, speciesName(tree.species_id), " · ", t(`position.${tree.position}`)) : picker.node,
    tree ? null : h("fieldset", { class: "positions" }, h("legend", {}, t("form.position")),
      POSITIONS.map((p) => h("label", { class: "tile" }, h("input", { type: "radio", name: "position", value: p, required: true }), t(`position.${p}`)))),
    tree?.dbh_mm ? h("p", { class: "meta" }, t("form.previous", {
      cm: number(tree.dbh_mm / 10), m: tree.height_cm ? number(tree.height_cm / 100) : "—",
    })) : null,
    h("div", { class: "field" }, h("label", { for: "dbh" }, t("form.dbh")), stems,
      h("button", { type: "button", class: "small", onclick: () => addStem() }, t("form.stem_add"))),
    h("div", { class: "field" }, heightLabel, height),
    tree ? null : h("div", { class: "field" }, h("label", { for: "tag" }, t("form.tag")), tag),
    gps.node, photo.node,
    h("section", { class: "result", "aria-label": t("estimate.title") }, h("h2", {}, t("estimate.title")), estimate, warningList),
    formError, save].filter(Boolean));
  height.addEventListener("input", update);
  update();
  heightLabel.textContent ||= t("form.height_optional");
  return h("section", {},
    heading(tree ? "form.title_measure" : "form.title_new"),
    h("p", { class: "code" }, t("form.household", { code: code.value })),
    form,
    link(`#/household/${code.value}`, "common.back_household"));
}

function opRow(op) {
  const photo = op.photo;
  const sent = photo ? (photoProgress.get(photo.sha256) ?? photo.offset ?? 0) : 0;
  return h("li", { class: `op ${op.state}`, "data-seq": op.device_seq },
    h("p", {}, h("strong", {}, t(`kind.${op.kind}`)), " ", h("span", { class: "code" }, op.record_id.slice(0, 8)),
      " ", h("span", { class: `badge ${op.state}` }, t(`state.${op.state}`))),
    h("p", { class: "meta" }, new Date(op.client_time).toLocaleString(language() === "zh" ? "zh-CN" : "en")),
    op.state === "rejected" ? h("p", { class: "message", "data-tone": "error" }, t("outbox.reason", { reason: op.result?.reason ?? op.result?.code ?? "" })) : null,
    op.state === "held" ? h("p", { class: "meta" }, t("outbox.held")) : null,
    photo ? h("div", { class: "progress" },
      h("label", {}, photo.state === "done" ? t("outbox.photo_done") : t("outbox.photo_progress", { pct: Math.floor((100 * sent) / (photo.size || 1)) }),
        h("progress", { max: photo.size, value: photo.state === "done" ? photo.size : sent }))) : null);
}

async function screenOutbox(ctx) {
  const groups = await opsByState();
  const storage = h("p", { class: "message", id: "storage", role: "status" });
  const exportStatus = h("p", { class: "message", role: "status" });
  if (navigator.storage?.estimate) {
    navigator.storage.estimate().then(async ({ usage = 0, quota = 0 }) => {
      const persisted = await navigator.storage.persisted?.().catch(() => false);
      const share = quota ? usage / quota : 0;
      storage.textContent = [t("outbox.storage", { used: bytes(usage), quota: bytes(quota), pct: Math.round(share * 100) }),
        share >= STORAGE_WARN_SHARE ? t("outbox.storage_full") : null,
        persisted ? t("outbox.persisted") : t("outbox.not_persisted")].filter(Boolean).join(" ");
      storage.dataset.tone = share >= STORAGE_WARN_SHARE ? "error" : "info";
    });
  }
  const exportButton = h("button", {
    type: "button", class: "big", id: "export",
    onclick: async () => {
      say(exportStatus, "outbox.exporting", {}, "info");
      try {
        const blob = await exportOutbox();
        const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
        const a = h("a", { href: URL.createObjectURL(blob), download: `sipang-outbox-${stamp}.json` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 60000);
        say(exportStatus, "outbox.exported", { size: bytes(blob.size) }, "ok");
      } catch (error) {
        say(exportStatus, "outbox.export_failed", { message: error.message });
      }
    },
  }, t("outbox.export"));
  ctx.refresh = () => route();
  ctx.progress = () => route();
  const section = (state, ops, limit = 100) => (ops.length ? h("section", {},
    h("h2", {}, t(`outbox.group_${state}`, { count: ops.length })),
    h("ul", { class: "ops" }, ops.slice(-limit).reverse().map(opRow))) : null);
  const total = Object.values(groups).reduce((n, ops) => n + ops.length, 0);
  return h("section", {},
    heading("outbox.title"),
    h("div", { class: "row" },
      h("button", { type: "button", class: "big primary", id: "sync-now", onclick: () => { scheduler.kick("manual"); refreshBanner(); } }, t("outbox.sync_now")),
      exportButton),
    exportStatus, storage,
    total ? null : h("p", {}, t("outbox.empty")),
    section("rejected", groups.rejected), section("held", groups.held), section("pending", groups.pending),
    section("done", groups.done, 20));
}

// --- router ------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/enrol$/, "enrol", screenEnrol],
  [/^#\/village$/, "village", screenVillage],
  [/^#\/household\/([^/]+)$/, "household", screenHousehold],
  [/^#\/tree\/new\/([^/]+)$/, "tree-new", (ctx, household) => screenTreeForm(ctx, { household })],
  [/^#\/tree\/([^/]+)\/measure$/, "tree-measure", (ctx, treeId) => screenTreeForm(ctx, { treeId })],
  [/^#\/outbox$/, "outbox", screenOutbox],
];

async function route(event) {
  const token = ++renders;
  device = (await getMeta("device")) ?? null;
  const hash = location.hash;
  if (!device && hash !== "#/enrol") return location.replace("#/enrol");
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) return location.replace("#/village");
  const [pattern, name, screen] = found;
  const leaves = [];
  const ctx = { left: false, onLeave: (fn) => leaves.push(fn) };
  ctx.leave = () => { ctx.left = true; leaves.splice(0).forEach((fn) => fn()); };
  let node;
  try {
    node = await screen(ctx, ...hash.match(pattern).slice(1));
  } catch (error) {
    console.error(error);
    node = notice("app.error", { message: error.message }, link("#/village", "common.back_village"));
  }
  if (token !== renders) return ctx.leave(); // another route started meanwhile
  current?.leave();
  current = ctx;
  const view = $("#view");
  view.replaceChildren(node);
  document.body.dataset.screen = name;
  document.title = `${$("h1", view)?.textContent ?? ""} · ${t("app.name")}`;
  if (event) $("h1", view)?.focus();
  if (!document.body.dataset.ready) performance.mark("sipang-ready"); // bench/pwa.py reads it
  document.body.dataset.ready = "true";
}

async function start() {
  await loadLanguage();
  $("#lang").addEventListener("click", async () => {
    await loadLanguage(language() === "zh" ? "en" : "zh");
    refreshBanner();
    route();
  });
  navigator.storage?.persist?.().catch(() => {});
  registerServiceWorker();
  scheduler = new SyncScheduler({ run: runSync });
  scheduler.subscribe(() => refreshBanner());
  window.addEventListener("online", () => { refreshBanner(); scheduler.kick("online"); });
  window.addEventListener("offline", refreshBanner);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduler.kick("visible");
  });
  setInterval(refreshBanner, 30000);
  window.addEventListener("hashchange", route);
  await route();
  refreshBanner();
  if (device) {
    scheduler.kick("open");
    refreshMethod({ force: navigator.onLine });
  }
  window.sipang = { scheduler }; // for the browser tests and for debugging on a phone
}

start();
