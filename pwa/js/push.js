// Web Push (docs/push.md): subscribe this browser after a user's tap, never on load. Used by
// the measurer's upload screen, the verifier's samples screen, and (as a module) the buyer's
// order page and the farmer's household page. No words here: callers turn states into text.
//
// enablePush resolves to { state } with state one of:
//   "subscribed"  the server will send notices here
//   "unsupported" no service worker / Push API (e.g. WeChat's web-view)
//   "denied"      notifications are blocked for this site (only the browser settings undo it)
//   "dismissed"   the permission prompt was closed without an answer
//   "failed"      the browser's push service or our server refused ({ error }: the Error)

import { callJson } from "./api.js";

const SW_URL = "/app/sw.js";
const SCOPE = "/app/";
const SUBSCRIBE_TIMEOUT_MS = 20000; // a browser whose push service is unreachable never answers

export const pushSupported = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

/** "granted", "denied", "default", or "unsupported". */
export const pushPermission = () => (pushSupported() ? Notification.permission : "unsupported");

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** The app's service worker registration, registered (from a server page) and active. */
async function activeRegistration() {
  const registration = (await navigator.serviceWorker.getRegistration(SCOPE))
    ?? (await navigator.serviceWorker.register(SW_URL, { scope: SCOPE }));
  if (registration.active) return registration;
  const worker = registration.installing ?? registration.waiting;
  await new Promise((resolve, reject) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve();
      if (worker.state === "redundant") reject(new Error("service worker failed to install"));
    });
  });
  return registration;
}

function send(method, body, { token, csrf }) {
  return callJson(method, "/api/v1/push/subscriptions", { json: body, token, csrf });
}

/**
 * Ask permission (call from a click), subscribe, and tell the server who this is for:
 * `owner` is {} with a bearer `token` (a measurer's phone or a verifier), { order }, or
 * { household } (with `csrf` after the second factor, or { household, token: pushToken }).
 * `extra` adds preferences, e.g. { quiet_hours: null }. Calling it again updates them.
 */
export async function enablePush({ owner = {}, token = null, csrf = null, kinds, extra = {} } = {}) {
  if (!pushSupported()) return { state: "unsupported" };
  const answer = await Notification.requestPermission();
  if (answer === "denied") return { state: "denied" };
  if (answer !== "granted") return { state: "dismissed" };
  try {
    const registration = await activeRegistration();
    const found = await callJson("GET", "/api/v1/push/key");
    const subscription = (await registration.pushManager.getSubscription())
      ?? (await Promise.race([
        registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(found.public_key) }),
        new Promise((resolve, reject) => setTimeout(() => reject(new Error("timeout")), SUBSCRIBE_TIMEOUT_MS)),
      ]));
    const body = { subscription: subscription.toJSON(), ...owner, ...(kinds ? { kinds } : {}), ...extra };
    const saved = await send("POST", body, { token, csrf });
    return { state: "subscribed", subscription: saved.subscription };
  } catch (error) {
    return { state: "failed", error };
  }
}

/** Stop this owner's notices on this browser (the browser's subscription stays for others). */
export async function disablePush({ owner = {}, token = null, csrf = null } = {}) {
  const registration = pushSupported() ? await navigator.serviceWorker.getRegistration(SCOPE) : null;
  const subscription = await registration?.pushManager.getSubscription();
  if (!subscription) return { removed: 0 };
  return send("DELETE", { endpoint: subscription.endpoint, ...owner }, { token, csrf });
}
