// The measurer app's service worker (DESIGN.md §9): the shell precached under a versioned
// name and served from the cache, so the app opens in airplane mode; the methodology read
// network-first with the cache as fallback; every other API call and every write goes
// straight to the network (writes reach the server only through the outbox, never a cache).
// VERSION is filled in by the server (server/pwa.py): a hash of every file listed below and of
// this one, so any change to the shell is a new worker; the page then offers "update available".

const VERSION = "dev";
const PREFIX = "sipang-shell-";
const SHELL_CACHE = `${PREFIX}${VERSION}`;
const DATA_CACHE = "sipang-data";
const TILE_CACHE = "sipang-tiles";
const NAVIGATION_TIMEOUT_MS = 4000; // on a dying 2G link, open the cached shell instead

const SHELL = [
  "/app/",
  "/app/manifest.webmanifest",
  "/app/css/app.css",
  "/app/js/api.js",
  "/app/js/app.js",
  "/app/js/board.js",
  "/app/js/carbon.js",
  "/app/js/dom.js",
  "/app/js/geo.js",
  "/app/js/i18n.js",
  "/app/js/idb.js",
  "/app/js/map.js",
  "/app/js/outbox.js",
  "/app/js/photo.js",
  "/app/js/push.js",
  "/app/js/push-panel.js",
  "/app/js/scan.js",
  "/app/js/scheduler.js",
  "/app/js/screens.js",
  "/app/js/state.js",
  "/app/js/sync.js",
  "/app/js/tree-form.js",
  "/app/js/upload.js",
  "/app/js/verify.js",
  "/app/js/verify-tree.js",
  "/app/js/village.js",
  "/app/js/widgets.js",
  "/app/i18n/zh.json",
  "/app/i18n/en.json",
  "/app/icons/icon-192.png",
  "/app/icons/icon-512.png",
];
// From npm; missing until `npm install`, in which case scanning falls back to typing.
const OPTIONAL = ["/app/vendor/jsqr.js"];

// Revalidated with the server (a 304 when the page has just fetched the same file), never stale.
const fresh = (url) => new Request(url, { cache: "no-cache" });

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL.map(fresh));
    await Promise.all(OPTIONAL.map((url) => cache.add(fresh(url)).catch(() => {})));
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names
      .filter((name) => name.startsWith(PREFIX) && name !== SHELL_CACHE)
      .map((name) => caches.delete(name)));
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  if (event.data === "skip-waiting" || event.data?.type === "skip-waiting") self.skipWaiting();
});

function withTimeout(promise, ms) {
  return Promise.race([
    promise,
    new Promise((resolve, reject) => setTimeout(() => reject(new Error("timeout")), ms)),
  ]);
}

// A page under /app/: the network when it answers soon, else the cached shell.
async function navigation(request) {
  try {
    return await withTimeout(fetch(request), NAVIGATION_TIMEOUT_MS);
  } catch (error) {
    const cached = await caches.match("/app/", { cacheName: SHELL_CACHE });
    if (cached) return cached;
    throw error;
  }
}

// Shell files: the cache, else the network (kept for next time when it answers 200).
async function cacheFirst(request) {
  const cached = await caches.match(request, { cacheName: SHELL_CACHE });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) {
    const copy = response.clone();
    caches.open(SHELL_CACHE).then((cache) => cache.put(request, copy));
  }
  return response;
}

// Map tiles: the copy kept in their own cache (it outlives a new shell), else the network.
async function tileFirst(request) {
  const cache = await caches.open(TILE_CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

// The methodology: the network (and keep a copy), else the last copy.
async function networkFirst(request) {
  const cache = await caches.open(DATA_CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(request);
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (request.mode === "navigate") {
    if (path.startsWith("/app/")) event.respondWith(navigation(request));
  } else if (path.startsWith("/api/v1/carbon/methods") || path === "/api/v1/species"
    || path.startsWith("/v/")) { // the methodology, and the village's public page (本村专区)
    event.respondWith(networkFirst(request));
  } else if (path.startsWith("/app/tiles/")) { // the county's map tiles: kept once seen
    event.respondWith(tileFirst(request));
  } else if (path.startsWith("/app/") && path !== "/app/sw.js") {
    event.respondWith(cacheFirst(request));
  } // anything else (other /api/ calls above all): the browser's own fetch, never cached
});

// --- Web Push (docs/push.md) -------------------------------------------------------------
// The server sends {title, body, url}: short Chinese text and the screen to open. A click
// brings an open window of ours to that screen, else opens a new one. Only our own origin's
// addresses are opened.

function notificationUrl(url) {
  try {
    const target = new URL(url || "/app/", self.location.origin);
    return target.origin === self.location.origin ? target.href : `${self.location.origin}/app/`;
  } catch {
    return `${self.location.origin}/app/`;
  }
}

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { body: event.data.text() };
  }
  const url = notificationUrl(message.url);
  event.waitUntil(self.registration.showNotification(message.title || "四旁", {
    body: message.body || "", icon: "/app/icons/icon-192.png", lang: "zh-CN", tag: url, data: { url },
  }));
});

/** Show `url` in a window: one of ours already open (navigated there), else a new one. */
async function openNotification(url) {
  const windows = await self.clients.matchAll({ type: "window" });
  const open = windows.find((client) => client.url === url) ?? windows.find((client) => "navigate" in client);
  if (open) {
    const shown = open.url === url ? open : await open.navigate(url);
    await (shown ?? open).focus().catch(() => {});
    return shown ?? open;
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openNotification(notificationUrl(event.notification.data?.url)));
});
