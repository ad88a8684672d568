// One sync round against the server (docs/sync.md), mirroring sync/client.py: push pending
// operations in small batches in device_seq order, upload photos in resumable chunks whose
// size adapts to the link, then pull the village's changes after the stored cursor.

import { ApiError, call as apiCall, callJson as apiCallJson, garbled, isObject } from "./api.js";
import { request, withStore } from "./idb.js";
import { applyResults, getMeta, pendingOps, setMeta, sha256Hex, status } from "./outbox.js";

// Push batches and photo chunks adapt to the link the same way: start small, double after an
// answer that came quickly, halve after a failure; the size reached is kept for the next round.
const BATCH_OPS = 100; // the server's limit (sync/protocol.py)
const MIN_BATCH = 2 * 1024; // bytes as sent: gzipped when the browser can compress, raw otherwise
const START_BATCH = 8 * 1024;
const MAX_BATCH = 64 * 1024;
const MIN_CHUNK = 16 * 1024;
const START_CHUNK = 32 * 1024;
const MAX_CHUNK = 256 * 1024;
const PULL_LIMIT = 5000; // changes a pull page: over 2G a page more costs a round trip
const QUICK_MS = 4000; // a batch or chunk answered this fast lets the next one double
const STATUSES = new Set(["applied", "duplicate", "rejected", "held"]);
const PHOTO_RESTARTS = 2; // a photo the server dropped as damaged is sent again from 0 this often
const SYNC_META = ["next_seq", "cursor", "method", "gap", "village", "roster_format"]; // a new device starts these afresh

// How far the server's clock is from the phone's, noted from every answer's Date.
const clockFrom = (ctx) => (response) => {
  const served = Date.parse(response.headers.get("Date") ?? "");
  if (Number.isFinite(served)) ctx.clockOffsetMs = Date.now() - served; // + = phone ahead
};

// One exchange with the server through api.js, with this phone's token.
const exchange = (ctx, { auth = true, ...options } = {}) => ({
  ...options, baseUrl: ctx.baseUrl, fetchImpl: ctx.fetchImpl, token: auth ? ctx.token : null, onAnswer: clockFrom(ctx),
});
const call = (ctx, method, path, options) => apiCall(method, path, exchange(ctx, options));
const callJson = (ctx, method, path, options) => apiCallJson(method, path, exchange(ctx, options));
const offsetIn = (value, size) => Number.isSafeInteger(value) && value >= 0 && value <= size;

// gzip bytes with CompressionStream, or null where the browser has none.
async function gzip(text) {
  if (typeof CompressionStream === "undefined") return null;
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// The operation as the server reads it (no local state).
const wire = ({ op_id, device_seq, record_id, kind, payload, client_time, base_version }) =>
  ({ op_id, device_seq, record_id, kind, payload, client_time, base_version });

// The next batch: at most 100 operations, halved until its body fits in the link's budget.
async function nextBatch(ctx) {
  const waiting = await pendingOps(BATCH_OPS + 1);
  let ops = waiting.slice(0, BATCH_OPS).map(wire);
  while (ops.length) {
    const sentAt = new Date().toISOString();
    // The last batch asks for the village's changes with its answer, when few are waiting (a
    // server that does not know pull_cursor ignores it; the pull then fetches them).
    const last = ops.length === waiting.length ? { pull_cursor: ctx.cursor } : {};
    const text = JSON.stringify({ device_id: ctx.deviceId, sent_at: sentAt, ops, ...last });
    const zipped = await gzip(text);
    const body = zipped ?? new TextEncoder().encode(text);
    if (body.byteLength <= ctx.batch || ops.length === 1) return { ops, body, zipped: !!zipped };
    ops = ops.slice(0, Math.floor(ops.length / 2));
  }
  return null;
}

// Push batches until nothing is pending or a batch settles nothing (all held behind a gap).
async function push(ctx) {
  let pushed = 0;
  ctx.batch = (await getMeta("batch_size")) ?? START_BATCH;
  try {
    for (ctx.cursor = await pullCursor(); ; ctx.cursor = await pullCursor()) {
      const batch = await nextBatch(ctx);
      if (!batch) break;
      const headers = { "Content-Type": "application/json" };
      if (batch.zipped) headers["Content-Encoding"] = "gzip";
      const started = Date.now();
      let answer;
      try {
        answer = await callJson(ctx, "POST", "/api/v1/sync/push", { body: batch.body, headers });
      } catch (error) {
        if (!error.permanent) ctx.batch = Math.max(MIN_BATCH, ctx.batch / 2);
        throw error;
      }
      const { results } = answer;
      const readable = (r) => isObject(r) && typeof r.op_id === "string" && STATUSES.has(r.status);
      if (!Array.isArray(results) || !results.every(readable)) {
        throw garbled("POST /api/v1/sync/push");
      }
      if (Date.now() - started < QUICK_MS) ctx.batch = Math.min(MAX_BATCH, ctx.batch * 2);
      const settled = await applyResults(results);
      pushed += settled;
      // The village's changes may come with the answer (no pull round trip then); when they
      // do not (too many waiting, a server without it) or cannot be read, the pull fetches them.
      ctx.pullMore = true;
      if (answer.pull) {
        try {
          ctx.pulled += await keepPage(answer.pull, ctx.cursor, "POST /api/v1/sync/push (pull)");
          ctx.pullMore = answer.pull.more;
        } catch (error) {
          if (error.name !== "ApiError") throw error; // a storage failure is not the server's
        }
      }
      if (!settled) break;
    }
  } finally {
    await setMeta("batch_size", ctx.batch);
  }
  return pushed;
}

// Remember how far a photo got, for the sync screen's progress bars.
function savePhoto(sha256, changes) {
  return withStore("photos", "readwrite", async (photos) => {
    const photo = await request(photos.get(sha256));
    if (photo) photos.put({ ...photo, ...changes });
  });
}

// Send one photo from where the server's copy ends, in chunks that adapt to the link. A photo
// whose bytes on the phone no longer hash to its name (the phone's storage failed) could never
// be accepted: it is set aside as damaged, for the measurer to take again, and never sent.
async function uploadPhoto(ctx, photo, onProgress) {
  if (!(photo.blob instanceof Blob) || (await sha256Hex(photo.blob)) !== photo.sha256) {
    await savePhoto(photo.sha256, { state: "damaged" });
    return;
  }
  const path = `/api/v1/blobs/${photo.sha256}`;
  const report = (sent) => onProgress?.({ sha256: photo.sha256, sent, size: photo.size });
  let offset = 0;
  let complete = false;
  if (photo.tried) { // resuming: ask how much the server holds
    const { response } = await call(ctx, "HEAD", path);
    offset = Number(response.headers.get("Upload-Offset") ?? 0);
    complete = response.headers.get("Upload-Complete") === "true";
    if (!offsetIn(offset, photo.size)) throw garbled(`HEAD ${path}`);
  } else { // a first try goes straight to PUT at 0 (a 409 names what the server holds)
    await savePhoto(photo.sha256, { tried: true });
  }
  report(offset);
  let conflicts = 0;
  let restarts = 0;
  while (!complete) {
    const started = Date.now();
    let reply;
    try {
      reply = await callJson(ctx, "PUT", path, {
        body: photo.blob.slice(offset, offset + ctx.chunk),
        headers: {
          "Upload-Offset": String(offset),
          "Upload-Length": String(photo.size),
          "Content-Type": "application/octet-stream",
        },
      });
    } catch (error) {
      const held = error.body?.error?.details?.offset;
      if (error.status === 409 && offsetIn(held, photo.size) && ++conflicts <= 3) {
        offset = held; // the server holds a different amount: resume there (a few times)
        continue;
      }
      // The server dropped bytes that did not add up to the photo's sha256 (damaged on the
      // way; the phone's own do): send them again from the start (sync/client.py).
      if (error.code === "hash_mismatch") {
        await savePhoto(photo.sha256, { offset: 0 }); // the server kept none of them
        if (restarts < PHOTO_RESTARTS) {
          restarts++;
          offset = 0;
          report(offset);
          continue;
        }
      }
      if (!error.permanent) ctx.chunk = Math.max(MIN_CHUNK, ctx.chunk / 2);
      throw error;
    }
    if (!offsetIn(reply.offset, photo.size) || typeof reply.complete !== "boolean") {
      throw garbled(`PUT ${path}`);
    }
    ({ offset, complete } = reply);
    if (Date.now() - started < QUICK_MS) ctx.chunk = Math.min(MAX_CHUNK, ctx.chunk * 2);
    if (!complete) await savePhoto(photo.sha256, { offset });
    report(offset);
  }
  await savePhoto(photo.sha256, { state: "done", offset: photo.size });
}

// Upload every pending photo, oldest first; the chunk size is kept for the next round.
async function uploadPhotos(ctx, onProgress) {
  const photos = await withStore("photos", "readonly", (s) => s.index("state").getAll("pending"));
  if (!photos.length) return 0;
  photos.sort((a, b) => (a.created_at ?? 0) - (b.created_at ?? 0));
  ctx.chunk = (await getMeta("chunk_size")) ?? START_CHUNK;
  try {
    for (const photo of photos) await uploadPhoto(ctx, photo, onProgress);
  } finally {
    await setMeta("chunk_size", ctx.chunk);
  }
  return photos.length;
}

// Pull pages after the stored cursor; each page and its cursor are stored in one transaction.
// The roster's shape on the phone: 2 added the masked head name, door number and the village.
// A phone holding an older roster pulls the village again from the start.
const ROSTER_FORMAT = 2;

// Where the next pull starts: the stored cursor, or 0 for a roster of an older shape.
async function pullCursor() {
  const fresh = (await getMeta("roster_format")) !== ROSTER_FORMAT;
  return fresh ? 0 : (await getMeta("cursor")) ?? 0;
}

// Store one page of the village's changes and its cursor in one transaction; returns how many
// records it held. A page that is not one (or says "more" but stays put) is garbled.
async function keepPage(page, cursor, what) {
  const { households, trees, more } = page ?? {};
  const moved = Number.isSafeInteger(page?.cursor) && (!more || page.cursor > cursor);
  if (!Array.isArray(households) || !Array.isArray(trees) || typeof more !== "boolean" || !moved) {
    throw garbled(what); // a page that says "more" but stays put would loop forever
  }
  await withStore(["households", "trees", "meta"], "readwrite", (stores) => {
    for (const household of households) stores.households.put(household);
    for (const tree of trees) stores.trees.put(tree);
    stores.meta.put({ key: "cursor", value: page.cursor });
    if (page.method) stores.meta.put({ key: "method", value: page.method });
    stores.meta.put({ key: "gap", value: page.gap ?? null });
    if (page.village) stores.meta.put({ key: "village", value: page.village });
    stores.meta.put({ key: "roster_format", value: ROSTER_FORMAT });
  });
  return households.length + trees.length;
}

async function pull(ctx) {
  let cursor = await pullCursor();
  let received = 0;
  for (;;) {
    const path = `/api/v1/sync/pull?cursor=${cursor}&limit=${PULL_LIMIT}`;
    const page = await callJson(ctx, "GET", path);
    received += await keepPage(page, cursor, `GET ${path}`);
    cursor = page.cursor;
    if (!page.more) return received;
  }
}

// How far the phone's clock is off the server's, as last seen (ms; + when the phone is ahead).
export const clockOffsetMs = () => getMeta("clock_offset_ms");

async function rememberClock(ctx) {
  if (ctx.clockOffsetMs !== undefined) await setMeta("clock_offset_ms", Math.round(ctx.clockOffsetMs));
}

// Push, then photos, then pull. Resolves with status() plus counts; throws an ApiError.
export async function syncOnce({ baseUrl = "", fetchImpl = fetch, onProgress } = {}) {
  const device = await getMeta("device");
  if (!device?.token) {
    throw new ApiError("this phone is not enrolled", { code: "not_enrolled", permanent: true });
  }
  const ctx = { baseUrl, fetchImpl, token: device.token, deviceId: device.device_id, pulled: 0, pullMore: true };
  try {
    const pushed = await push(ctx);
    const photos = await uploadPhotos(ctx, onProgress);
    // The pull after the push is skipped when the push's answer carried every change and no
    // photo went up since (a photo made whole changes its tree's awaiting_photo).
    const pulled = ctx.pullMore || photos ? ctx.pulled + await pull(ctx) : ctx.pulled;
    return { ...(await status()), pushed, photos, pulled };
  } finally {
    await rememberClock(ctx);
  }
}

// Enrol this phone with a one-time code. A new device numbers its operations from 1 and may
// belong to another village, so the outbox must be empty: sync first (or export it).
export async function enrol(code, label, { baseUrl = "", fetchImpl = fetch } = {}) {
  const before = await status();
  if (before.pending || before.photosPending) {
    const reason = { code: "outbox_not_empty", permanent: true };
    throw new ApiError("unsynced records would be lost", reason);
  }
  const ctx = { baseUrl, fetchImpl };
  const answer = await callJson(ctx, "POST", "/api/v1/devices/enrol", {
    body: JSON.stringify({ code, label }),
    headers: { "Content-Type": "application/json" },
    auth: false,
  });
  const { device_id, token, village_code } = answer;
  if (![device_id, token, village_code].every((v) => typeof v === "string")) {
    throw garbled("POST /api/v1/devices/enrol");
  }
  const device = { device_id, token, village_code };
  const stores = ["ops", "photos", "meta", "households", "trees"];
  await withStore(stores, "readwrite", (s) => { // start afresh: synced history, old village
    for (const name of ["ops", "photos", "households", "trees"]) s[name].clear();
    for (const key of SYNC_META) s.meta.delete(key);
    s.meta.put({ key: "device", value: device });
  });
  await rememberClock(ctx);
  return device;
}
