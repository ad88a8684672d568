// The measurer app: a hash router over the screens, the sync banner on every screen, the
// scheduler and the service worker. Everything reads and writes IndexedDB first, so it all
// works with no signal at all.

import { $, link, notice } from "./dom.js";
import { errorText, language, loadLanguage, t } from "./i18n.js";
import { getMeta, pendingRemeasurements as verifierPending, status } from "./outbox.js";
import { SyncScheduler } from "./scheduler.js";
import { screenEnrol, screenHousehold } from "./screens.js";
import { ago, app, refreshMethod, storageUse } from "./state.js";
import { clockOffsetMs, syncOnce } from "./sync.js";
import { screenVillage } from "./village.js";

// Screens not needed to start are loaded after the first screen is drawn, from the service
// worker's copy (on a first visit, once it has taken the page), so the app starts with fewer
// modules to parse and a first visit fetches none of them twice.
const loaders = [];
const later = (load, name) => {
  loaders.push(load);
  return async (...args) => (await load())[name](...args);
};
const screenBoard = later(() => import("./board.js"), "screenBoard");
const screenMap = later(() => import("./map.js"), "screenMap");
const screenTreeForm = later(() => import("./tree-form.js"), "screenTreeForm");
const screenOutbox = later(() => import("./upload.js"), "screenOutbox");
const screenRemeasure = later(() => import("./verify-tree.js"), "screenRemeasure");
const loadVerifier = () => import("./verify.js"); // the verifier's screens, and their sender
const screenSamples = later(loadVerifier, "screenSamples");
const screenSample = later(loadVerifier, "screenSample");
const loadTheRest = () => Promise.all(loaders.map((load) => load().catch(() => null)));

const CLOCK_WARN_MS = 5 * 60 * 1000; // the server flags records from a clock this far off
let current = null; // the screen on show: {leave(), refresh?}
let renders = 0;

// --- sync and banner ---------------------------------------------------------------------

async function runSync() {
  let progressShown = 0;
  try {
    const result = await syncOnce({
      onProgress: ({ sha256, sent }) => {
        app.photoProgress.set(sha256, sent);
        if (Date.now() - progressShown > 500) {
          progressShown = Date.now();
          current?.progress?.();
        }
      },
    });
    await refreshMethod();
    return result.pending > 0 || result.photosPending > 0;
  } finally {
    app.photoProgress.clear();
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
  const verifying = await verifierPending();
  queue.hidden = !app.device && !verifying; // nothing to count before the phone is enrolled
  if (!app.device) {
    queue.textContent = verifying ? t("banner.verify_pending", { count: verifying }) : "";
    $("#banner").dataset.tone = verifying ? "waiting" : "ok";
    return;
  }
  const s = await status();
  const parts = [s.pending
    ? t("banner.pending", { count: s.pending, age: ago(s.oldestPendingMs) })
    : t("banner.synced")];
  if (s.photosPending) parts.push(t("banner.photos", { count: s.photosPending }));
  if (s.photosDamaged) parts.push(t("banner.photos_damaged", { count: s.photosDamaged }));
  if (s.rejected) parts.push(t("banner.rejected", { count: s.rejected }));
  if ((await storageUse())?.nearlyFull) parts.push(t("banner.storage_full"));
  const offset = await clockOffsetMs();
  if (Math.abs(offset ?? 0) > CLOCK_WARN_MS) {
    parts.push(t(offset > 0 ? "banner.clock_ahead" : "banner.clock_behind", { minutes: Math.round(Math.abs(offset) / 60000) }));
  }
  const snap = app.scheduler?.snapshot();
  if (snap?.state === "running") parts.push(t("banner.syncing"));
  else if (syncProblem(snap?.lastError)) parts.push(t(syncProblem(snap.lastError)));
  queue.textContent = parts.join(" · ");
  $("#banner").dataset.tone = s.pending || s.photosPending || s.photosDamaged ? "waiting" : "ok";
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

// --- router ------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/enrol$/, "enrol", screenEnrol],
  [/^#\/village$/, "village", screenVillage],
  [/^#\/household\/([^/]+)$/, "household", screenHousehold],
  [/^#\/tree\/new\/([^/]+)$/, "tree-new", (ctx, household) => screenTreeForm(ctx, { household })],
  [/^#\/tree\/([^/]+)\/measure$/, "tree-measure", (ctx, treeId) => screenTreeForm(ctx, { treeId })],
  [/^#\/outbox$/, "outbox", screenOutbox],
  [/^#\/board$/, "board", screenBoard],
  [/^#\/map$/, "map", screenMap],
  [/^#\/verify$/, "verify", screenSamples],
  [/^#\/verify\/(b?\d+)$/, "verify-sample", screenSample],
  [/^#\/verify\/(b?\d+)\/([^/]+)$/, "verify-remeasure", async (ctx, id, treeId) => {
    const method = await refreshMethod({ force: !app.method });
    return screenRemeasure(ctx, id, treeId, { species: method?.species });
  }],
];

async function route(event) {
  const token = ++renders;
  app.device = (await getMeta("device")) ?? null;
  const hash = location.hash;
  if (!app.device && hash !== "#/enrol" && !hash.startsWith("#/verify")) return location.replace("#/enrol");
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
    node = notice("app.error", { message: errorText(error) }, link("#/village", "common.back_village"));
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
  app.route = route;
  app.refreshBanner = refreshBanner;
  const scheduler = new SyncScheduler({ run: runSync });
  app.scheduler = scheduler;
  scheduler.subscribe(() => refreshBanner());
  window.addEventListener("online", () => { refreshBanner(); scheduler.kick("online"); });
  window.addEventListener("offline", refreshBanner);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduler.kick("visible");
  });
  setInterval(refreshBanner, 30000);
  window.addEventListener("hashchange", route);
  await route();
  // The verifier's sender starts once the first screen is drawn (a measurer's phone starts
  // without parsing the verifier's screens).
  loadVerifier().then(({ startVerifier }) => startVerifier(() => { refreshBanner(); current?.refresh?.(); }))
    .catch((error) => console.warn("verifier's sender not started", error));
  if (navigator.serviceWorker?.controller || !("serviceWorker" in navigator)) setTimeout(loadTheRest, 0);
  else navigator.serviceWorker.addEventListener("controllerchange", loadTheRest, { once: true });
  refreshBanner();
  if (app.device) {
    scheduler.kick("open");
    refreshMethod({ force: navigator.onLine });
  }
  window.sipang = { scheduler }; // for the browser tests and for debugging on a phone
}

start();
