// The durable outbox (docs/sync.md): every change is written here, with its photo, in one
// IndexedDB transaction before the app says "saved". Queued operations are never edited;
// only their sync state and the server's answer change. Mirrors sync/client.py.

import { request, withStore } from "./idb.js";

export const MAX_PHOTO_BYTES = 4 * 1024 * 1024; // the server refuses larger blobs (413)

const STATE_OF = { applied: "done", duplicate: "done", rejected: "rejected", held: "held" };
const WAITING = ["pending", "held"];

export async function getMeta(key) {
  const row = await withStore("meta", "readonly", (meta) => meta.get(key));
  return row?.value;
}

export function setMeta(key, value) {
  return withStore("meta", "readwrite", (meta) => { meta.put({ key, value }); });
}

// Lower-case hex sha256 of a Blob, as the server names photos.
export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Queue one operation (and its photo) atomically; resolves with the stored operation.
export async function recordOperation(operation) {
  return (await recordOperations([operation]))[0];
}

// Queue operations (with their photos) in one transaction, in order: all are stored or none.
export async function recordOperations(operations) {
  const prepared = [];
  for (const { kind, recordId, payload, baseVersion = null, photo = null, thumbnail = null } of operations) {
    if (photo && photo.size > MAX_PHOTO_BYTES) {
      const error = new RangeError(`a photo of ${photo.size} bytes is over the server's limit`);
      throw Object.assign(error, { code: "photo_too_large" });
    }
    const sha256 = photo ? await sha256Hex(photo) : null; // hashed before the transaction opens
    const op = {
      op_id: crypto.randomUUID(),
      record_id: recordId,
      kind,
      payload: sha256 ? { ...payload, photo_sha256: sha256 } : { ...payload },
      client_time: new Date().toISOString(),
      base_version: baseVersion,
      state: "pending",
      result: null,
      created_at: Date.now(),
    };
    prepared.push({ op, photo, sha256, thumbnail });
  }
  return withStore(["ops", "photos", "meta"], "readwrite", async ({ ops, photos, meta }) => {
    let seq = (await request(meta.get("next_seq")))?.value ?? 1;
    for (const { op, photo, sha256, thumbnail } of prepared) {
      if (photo && !(await request(photos.count(sha256)))) { // a photo already queued is kept
        photos.add({
          sha256, blob: photo, size: photo.size, type: photo.type, thumbnail,
          state: "pending", offset: 0, created_at: op.created_at,
        });
      }
      op.device_seq = seq++;
      ops.add(op);
    }
    meta.put({ key: "next_seq", value: seq });
    return prepared.map(({ op }) => op);
  });
}

// Operations still to send (pending or held behind a gap), lowest device_seq first.
export function pendingOps(limit = 25) {
  return withStore("ops", "readonly", async (ops) => {
    const index = ops.index("state");
    const lists = await Promise.all(WAITING.map((state) => request(index.getAll(state, limit))));
    return lists.flat().sort((a, b) => a.device_seq - b.device_seq).slice(0, limit);
  });
}

// Store the server's answers; returns how many operations they settled (held ones do not).
export function applyResults(results) {
  return withStore("ops", "readwrite", async (ops) => {
    let settled = 0;
    for (const result of results) {
      const state = STATE_OF[result.status];
      const op = state && (await request(ops.index("op_id").get(result.op_id)));
      if (!op) continue; // not ours, or an answer we cannot read
      ops.put({ ...op, state, result });
      if (state !== "held") settled++;
    }
    return settled;
  });
}

// What the measurer sees: counts and the age of the oldest unsynced operation.
export function status() {
  return withStore(["ops", "photos"], "readonly", async ({ ops, photos }) => {
    const byState = ops.index("state");
    const [pending, held, done, rejected, photosPending, photosDamaged, firstPending, firstHeld] =
      await Promise.all([
        request(byState.count("pending")),
        request(byState.count("held")),
        request(byState.count("done")),
        request(byState.count("rejected")),
        request(photos.index("state").count("pending")),
        request(photos.index("state").count("damaged")), // to be taken again (sync.js)
        request(byState.get("pending")), // lowest device_seq in that state, so the oldest
        request(byState.get("held")),
      ]);
    const created = [firstPending, firstHeld].filter(Boolean).map((op) => op.created_at);
    return {
      pending: pending + held,
      done,
      rejected,
      photosPending,
      photosDamaged,
      oldestPendingMs: created.length ? Date.now() - Math.min(...created) : null,
    };
  });
}

// Every operation grouped by state, lowest device_seq first, each with its photo's progress.
export async function opsByState() {
  const [all, photos] = await withStore(["ops", "photos"], "readonly", ({ ops, photos }) =>
    Promise.all([request(ops.getAll()), request(photos.getAll())]));
  const progress = new Map(photos.map(({ blob, ...rest }) => [rest.sha256, rest]));
  const groups = { pending: [], held: [], done: [], rejected: [] };
  for (const op of all) {
    const photo = progress.get(op.payload?.photo_sha256) ?? null;
    (groups[op.state] ??= []).push({ ...op, photo });
  }
  return groups;
}

// --- The verifier's re-measurements ----------------------------------------------------------
// A verifier's outcome for a sampled tree (re-measured, or not found / dead / felled) waits here
// until the server has it. Each carries a client_id made on the phone, so a retry never counts
// twice. States: pending → sent, or refused (with the server's reason; the tree may be redone).

const byCreation = (a, b) => a.created_at - b.created_at || (a.client_id < b.client_id ? -1 : 1);

// Queue one outcome; a refused one for the same tree of the same sample is replaced by it.
export function queueRemeasurement(item) {
  return withStore("remeasurements", "readwrite", async (store) => {
    const all = await request(store.getAll());
    for (const old of all) {
      if (old.verification_id === item.verification_id && old.tree_id === item.tree_id && old.state === "refused") {
        store.delete(old.client_id);
      }
    }
    const queued = { ...item, state: "pending", error: null, created_at: Date.now() };
    store.add(queued);
    return queued;
  });
}

// The queued outcomes, oldest first: all of them, or those in `state`.
export async function remeasurements(state = null) {
  const all = await withStore("remeasurements", "readonly", (store) =>
    (state ? store.index("state").getAll(state) : store.getAll()));
  return all.sort(byCreation);
}

// Store the server's answer for one outcome: {state: "sent" | "refused", error}.
export function settleRemeasurement(clientId, { state, error = null }) {
  return withStore("remeasurements", "readwrite", async (store) => {
    const item = await request(store.get(clientId));
    if (item) store.put({ ...item, state, error });
    return !!item;
  });
}

export const pendingRemeasurements = () =>
  withStore("remeasurements", "readonly", (store) => store.index("state").count("pending"));

// A decided sample's report (a PDF Blob), kept so it opens with no signal.
export const keepReport = (verificationId, blob) =>
  withStore("reports", "readwrite", (store) => { store.put({ verification_id: verificationId, blob }); });
export const keptReport = async (verificationId) =>
  (await withStore("reports", "readonly", (store) => store.get(verificationId)))?.blob ?? null;

// Forget the reports of samples no longer on the phone (all but `keep`, verification ids);
// with no `keep` (sign-out), the verifier's queue and every report.
export function forgetVerifier(keep = null) {
  return withStore(["remeasurements", "reports"], "readwrite", async ({ remeasurements: queue, reports }) => {
    if (keep === null) queue.clear();
    for (const id of await request(reports.getAllKeys())) if (!keep?.includes(id)) reports.delete(id);
  });
}

// Base64 of a Blob, in slices small enough for String.fromCharCode.
async function base64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

// The whole outbox as a JSON file a measurer can save: operations and photos (base64).
// The device token is left out: the file may be copied around.
export async function exportOutbox() {
  const [ops, photos, device, nextSeq] = await withStore(["ops", "photos", "meta"], "readonly",
    ({ ops, photos, meta }) => Promise.all([
      request(ops.getAll()),
      request(photos.getAll()),
      request(meta.get("device")),
      request(meta.get("next_seq")),
    ]));
  const files = [];
  for (const { blob, thumbnail, ...photo } of photos) { // read the Blobs after the transaction
    files.push({
      ...photo,
      data: await base64(blob),
      thumbnail: thumbnail instanceof Blob ? await base64(thumbnail) : thumbnail ?? null,
    });
  }
  const { token, ...deviceInfo } = device?.value ?? {};
  const file = {
    format: "sipang-outbox",
    version: 1,
    exported_at: new Date().toISOString(),
    device: device ? deviceInfo : null,
    next_seq: nextSeq?.value ?? 1,
    ops,
    photos: files,
  };
  return new Blob([JSON.stringify(file, null, 1)], { type: "application/json" });
}
