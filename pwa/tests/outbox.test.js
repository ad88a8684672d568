// The outbox on a real (in-memory) IndexedDB: atomic writes, sequence, results, status, export.
import "fake-indexeddb/auto";
import { IDBFactory } from "fake-indexeddb";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { beforeEach, test } from "node:test";

import { closeDb, request, withStore } from "../js/idb.js";
import {
  applyResults, exportOutbox, getMeta, MAX_PHOTO_BYTES, opsByState, pendingOps,
  recordOperation, recordOperations, setMeta, status,
} from "../js/outbox.js";

beforeEach(async () => {
  await closeDb();
  globalThis.indexedDB = new IDBFactory();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const measure = (extra = {}) => ({
  kind: "tree.measure", recordId: "tree-1", payload: { stems_mm: [183], height_cm: 1260 }, ...extra,
});
const jpeg = (text) => new Blob([`\xff\xd8 photo ${text}`], { type: "image/jpeg" });
const hex = async (blob) => createHash("sha256").update(Buffer.from(await blob.arrayBuffer())).digest("hex");
const all = (name) => withStore(name, "readonly", (store) => store.getAll());

test("meta values round-trip and a missing key is undefined", async () => {
  assert.equal(await getMeta("cursor"), undefined);
  await setMeta("cursor", 42);
  await setMeta("device", { device_id: "d1", token: "t" });
  assert.equal(await getMeta("cursor"), 42);
  assert.deepEqual(await getMeta("device"), { device_id: "d1", token: "t" });
});

test("an operation is stored whole, pending, with the next device_seq", async () => {
  const before = Date.now();
  const op = await recordOperation(measure({ baseVersion: 3 }));
  assert.match(op.op_id, UUID);
  assert.equal(op.device_seq, 1);
  assert.match(op.client_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(op.created_at >= before && op.created_at <= Date.now());
  assert.deepEqual(
    { ...op, op_id: 0, client_time: 0, created_at: 0 },
    {
      op_id: 0, device_seq: 1, record_id: "tree-1", kind: "tree.measure",
      payload: { stems_mm: [183], height_cm: 1260 }, client_time: 0, base_version: 3,
      state: "pending", result: null, created_at: 0,
    },
  );
  assert.deepEqual(await all("ops"), [op]);
  assert.equal(await getMeta("next_seq"), 2);
});

test("device_seq strictly increases, also for saves made at the same moment", async () => {
  const first = await recordOperation(measure());
  const together = await Promise.all(Array.from({ length: 10 }, (_, i) =>
    recordOperation(measure({ recordId: `tree-${i}` }))));
  const seqs = [first, ...together].map((op) => op.device_seq);
  assert.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: 11 }, (_, i) => i + 1));
  assert.equal(new Set(together.map((op) => op.op_id)).size, 10);
  assert.equal(await getMeta("next_seq"), 12);
});

test("a photo is hashed and stored with its operation in the same transaction", async () => {
  const photo = jpeg("a");
  const sha = await hex(photo);
  const op = await recordOperation(measure({ photo, thumbnail: "data:image/jpeg;base64,AA==" }));
  assert.equal(op.payload.photo_sha256, sha);
  const [stored] = await all("photos");
  assert.equal(stored.sha256, sha);
  assert.deepEqual(
    { size: stored.size, state: stored.state, offset: stored.offset, thumbnail: stored.thumbnail },
    { size: photo.size, state: "pending", offset: 0, thumbnail: "data:image/jpeg;base64,AA==" },
  );
  assert.equal(await hex(stored.blob), sha);
  assert.deepEqual((await all("ops")).map((o) => o.payload.photo_sha256), [sha]);
});

test("the same photo twice is stored once, and a photo already sent stays sent", async () => {
  const photo = jpeg("same");
  await recordOperation(measure({ photo }));
  await withStore("photos", "readwrite", async (photos) => {
    const row = await request(photos.get(await hex(photo)));
    photos.put({ ...row, state: "done", offset: row.size });
  });
  await recordOperation(measure({ photo: jpeg("same") }));
  const photos = await all("photos");
  assert.equal(photos.length, 1);
  assert.equal(photos[0].state, "done");
  assert.equal((await all("ops")).length, 2);
});

test("a failure mid-transaction leaves neither the photo nor the operation", async () => {
  await recordOperation(measure());
  await setMeta("next_seq", 1); // the next op collides with device_seq 1, after its photo is added
  await assert.rejects(recordOperation(measure({ photo: jpeg("b") })), { name: "ConstraintError" });
  assert.deepEqual(await all("photos"), []);
  assert.equal((await all("ops")).length, 1);
  assert.equal(await getMeta("next_seq"), 1);
});

test("an operation that cannot be stored takes its photo and sequence number with it", async () => {
  const payload = { stems_mm: [183], note: () => "functions cannot be cloned" };
  await assert.rejects(recordOperation(measure({ payload, photo: jpeg("c") })), { name: "DataCloneError" });
  assert.deepEqual(await all("photos"), []);
  assert.deepEqual(await all("ops"), []);
  assert.equal(await getMeta("next_seq"), undefined);
  assert.equal((await recordOperation(measure())).device_seq, 1);
});

test("a photo over the server's limit is refused before anything is written", async () => {
  const photo = new Blob([new Uint8Array(MAX_PHOTO_BYTES + 1)], { type: "image/jpeg" });
  await assert.rejects(recordOperation(measure({ photo })), { code: "photo_too_large" });
  assert.deepEqual(await all("ops"), []);
});

test("pendingOps lists pending and held operations by device_seq, up to the limit", async () => {
  for (let i = 0; i < 6; i++) await recordOperation(measure({ recordId: `t${i}` }));
  const ops = await all("ops");
  await applyResults([
    { op_id: ops[0].op_id, status: "applied" },
    { op_id: ops[1].op_id, status: "rejected", code: "invalid" },
    { op_id: ops[3].op_id, status: "held" },
  ]);
  assert.deepEqual((await pendingOps()).map((op) => op.device_seq), [3, 4, 5, 6]);
  assert.deepEqual((await pendingOps(2)).map((op) => [op.device_seq, op.state]), [[3, "pending"], [4, "held"]]);
});

test("applyResults stores each answer and counts what it settled", async () => {
  const [a, b, c, d] = await Promise.all(["a", "b", "c", "d"].map((r) => recordOperation(measure({ recordId: r }))));
  const results = [
    { op_id: a.op_id, device_seq: 1, status: "applied", version: 2, flags: [] },
    { op_id: b.op_id, device_seq: 2, status: "duplicate", version: 1 },
    { op_id: c.op_id, device_seq: 3, status: "rejected", code: "unknown_tree", reason: "no tree" },
    { op_id: d.op_id, device_seq: 4, status: "held", reason: "waiting for device_seq 3" },
    { op_id: "not-ours", device_seq: 9, status: "applied" },
  ];
  assert.equal(await applyResults(results), 3);
  const stored = await all("ops");
  assert.deepEqual(stored.map((op) => op.state), ["done", "done", "rejected", "held"]);
  assert.deepEqual(stored.map((op) => op.result), results.slice(0, 4));
  assert.deepEqual(stored.map((op) => op.payload), [a, b, c, d].map((op) => op.payload)); // never edited
});

test("status counts operations and photos and ages the oldest waiting one", async (t) => {
  assert.deepEqual(await status(), { pending: 0, done: 0, rejected: 0, photosPending: 0, photosDamaged: 0, oldestPendingMs: null });
  let clock = 1_000_000;
  t.mock.method(Date, "now", () => clock);
  const a = await recordOperation(measure({ photo: jpeg("x") }));
  clock += 5_000;
  const b = await recordOperation(measure());
  clock += 5_000;
  await recordOperation(measure());
  clock += 60_000;
  await applyResults([{ op_id: a.op_id, status: "applied" }, { op_id: b.op_id, status: "held" }]);
  assert.deepEqual(await status(), { pending: 2, done: 1, rejected: 0, photosPending: 1, photosDamaged: 0, oldestPendingMs: 65_000 });
});

test("opsByState groups operations for the sync screen with their photo's progress", async () => {
  const a = await recordOperation(measure({ photo: jpeg("p") }));
  const b = await recordOperation(measure());
  await applyResults([{ op_id: b.op_id, status: "rejected", code: "invalid" }]);
  const groups = await opsByState();
  assert.deepEqual(Object.keys(groups), ["pending", "held", "done", "rejected"]);
  assert.deepEqual(groups.pending.map((op) => op.op_id), [a.op_id]);
  assert.deepEqual(groups.rejected.map((op) => [op.op_id, op.photo]), [[b.op_id, null]]);
  const { photo } = groups.pending[0];
  // the thumbnail comes along for the upload screen's gallery; the photo's bytes do not
  assert.deepEqual(Object.keys(photo).sort(), ["created_at", "offset", "sha256", "size", "state", "thumbnail", "type"]);
  assert.equal(photo.sha256, a.payload.photo_sha256);
});

test("exportOutbox saves every operation and photo (bytes in base64) but not the token", async () => {
  await setMeta("device", { device_id: "d1", token: "secret", village_code: "V1" });
  const photo = jpeg("export");
  await recordOperation(measure({ photo }));
  await recordOperation({ kind: "tree.status", recordId: "tree-2", payload: { status: "dead" } });
  const file = await exportOutbox();
  assert.equal(file.type, "application/json");
  const text = await file.text();
  assert.doesNotMatch(text, /secret/);
  const saved = JSON.parse(text);
  assert.equal(saved.format, "sipang-outbox");
  assert.deepEqual(saved.device, { device_id: "d1", village_code: "V1" });
  assert.equal(saved.next_seq, 3);
  assert.deepEqual(saved.ops, await all("ops"));
  assert.equal(saved.photos.length, 1);
  const bytes = Buffer.from(saved.photos[0].data, "base64");
  assert.deepEqual(bytes, Buffer.from(await photo.arrayBuffer()));
  assert.equal(saved.photos[0].sha256, await hex(photo));
});

test("a new tree's registration and measurement are stored together, in order", async () => {
  const register = { kind: "tree.register", recordId: "tree-9", payload: { species_id: "ginkgo_biloba" } };
  const ops = await recordOperations([register, measure({ recordId: "tree-9", photo: jpeg("pair") })]);
  assert.deepEqual(ops.map((op) => [op.kind, op.device_seq]), [["tree.register", 1], ["tree.measure", 2]]);
  assert.equal((await all("ops")).length, 2);
  assert.equal((await all("photos")).length, 1);
  assert.equal(await getMeta("next_seq"), 3);
});

test("when the disk fills mid-write, neither operation nor the photo is stored", async () => {
  await recordOperation(measure()); // device_seq 1, already safe
  const add = IDBObjectStore.prototype.add;
  IDBObjectStore.prototype.add = function (...args) {
    if (this.name === "photos") throw new DOMException("The disk is full", "QuotaExceededError");
    return add.apply(this, args);
  };
  try {
    const register = { kind: "tree.register", recordId: "tree-9", payload: {} };
    await assert.rejects(
      recordOperations([register, measure({ recordId: "tree-9", photo: jpeg("full") })]),
      { name: "QuotaExceededError" },
    );
  } finally {
    IDBObjectStore.prototype.add = add;
  }
  assert.deepEqual((await all("ops")).map((op) => op.device_seq), [1]);
  assert.equal((await all("photos")).length, 0);
  assert.equal(await getMeta("next_seq"), 2); // no hole in the sequence
});
