// The IndexedDB wrapper on a real (in-memory) IndexedDB: schema, upgrades, transactions.
import "fake-indexeddb/auto";
import { IDBFactory } from "fake-indexeddb";
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { closeDb, DB_NAME, openDatabase, openDb, request, UPGRADES, withStore } from "../js/idb.js";

beforeEach(async () => {
  await closeDb();
  globalThis.indexedDB = new IDBFactory(); // a fresh, empty browser for every test
});

const indexes = (store) =>
  Object.fromEntries([...store.indexNames].map((n) => [n, [store.index(n).keyPath, store.index(n).unique]]));

test("a fresh database has every store, key path and index at the latest version", async () => {
  const db = await openDb();
  assert.equal(db.name, DB_NAME);
  assert.equal(db.version, UPGRADES.length);
  assert.deepEqual([...db.objectStoreNames].sort(),
    ["households", "meta", "ops", "photos", "remeasurements", "reports", "trees"]);
  const tx = db.transaction([...db.objectStoreNames]);
  const keyPaths = Object.fromEntries([...db.objectStoreNames].map((n) => [n, tx.objectStore(n).keyPath]));
  assert.deepEqual(keyPaths, {
    households: "code", meta: "key", ops: "device_seq", photos: "sha256", trees: "id",
    remeasurements: "client_id", reports: "verification_id",
  });
  assert.deepEqual(indexes(tx.objectStore("ops")), { op_id: ["op_id", true], state: ["state", false] });
  assert.deepEqual(indexes(tx.objectStore("photos")), { state: ["state", false] });
  assert.deepEqual(indexes(tx.objectStore("remeasurements")), { state: ["state", false] });
});

test("openDb opens once and hands every caller the same connection", async () => {
  const [a, b] = await Promise.all([openDb(), openDb()]);
  assert.equal(a, b);
  assert.equal(await openDb(), a);
});

test("upgrade steps run in order, and only the ones a database is missing", async () => {
  const ran = [];
  const step = (n) => (db) => { ran.push(n); db.createObjectStore(`s${n}`); };
  const v2 = await openDatabase("order", [step(1), step(2)]);
  assert.deepEqual(ran, [1, 2]);
  v2.close();
  const v4 = await openDatabase("order", [step(1), step(2), step(3), step(4)]);
  assert.deepEqual(ran, [1, 2, 3, 4]);
  assert.equal(v4.version, 4);
  assert.deepEqual([...v4.objectStoreNames], ["s1", "s2", "s3", "s4"]);
  v4.close();
});

test("a version 1 database is upgraded in place and keeps its outbox", async () => {
  const v1 = await openDatabase(DB_NAME, UPGRADES.slice(0, 1));
  const tx = v1.transaction("ops", "readwrite");
  tx.objectStore("ops").add({ device_seq: 1, op_id: "a", state: "pending" });
  await new Promise((resolve) => { tx.oncomplete = resolve; });
  assert.deepEqual([...v1.objectStoreNames].sort(), ["meta", "ops", "photos"]);
  v1.close();

  const db = await openDb();
  assert.equal(db.version, UPGRADES.length);
  assert.ok(db.objectStoreNames.contains("households") && db.objectStoreNames.contains("trees"));
  assert.deepEqual(await withStore("ops", "readonly", (ops) => ops.get(1)),
    { device_seq: 1, op_id: "a", state: "pending" });
});

test("a version 2 database moves the verifier's queue from meta into its own store", async () => {
  const v2 = await openDatabase(DB_NAME, UPGRADES.slice(0, 2));
  const tx = v2.transaction("meta", "readwrite");
  const queue = [
    { verification_id: 7, client_id: "c2", tree_id: "t2", outcome: "not_found", state: "pending", error: null },
    { verification_id: 7, client_id: "c1", tree_id: "t1", outcome: "dead", state: "sent", error: null },
  ];
  tx.objectStore("meta").put({ key: "verifier_queue", value: queue });
  await new Promise((resolve) => { tx.oncomplete = resolve; });
  v2.close();

  await openDb();
  const moved = await withStore("remeasurements", "readonly", (s) => s.getAll());
  assert.deepEqual(moved.sort((a, b) => a.created_at - b.created_at),
    queue.map((item, i) => ({ created_at: i, ...item })));
  assert.equal(await withStore("meta", "readonly", (meta) => meta.get("verifier_queue")), undefined);
});

test("withStore resolves with fn's value once the transaction has committed", async () => {
  const value = await withStore("meta", "readwrite", (meta) => {
    meta.put({ key: "a", value: 1 });
    return "written";
  });
  assert.equal(value, "written");
  assert.deepEqual(await withStore("meta", "readonly", (meta) => meta.get("a")), { key: "a", value: 1 });
});

test("withStore gives a list of stores by name and lets fn await requests", async () => {
  const read = await withStore(["meta", "trees"], "readwrite", async ({ meta, trees }) => {
    meta.put({ key: "k", value: "v" });
    await request(trees.put({ id: "t1" }));
    return [await request(meta.get("k")), await request(trees.count())];
  });
  assert.deepEqual(read, [{ key: "k", value: "v" }, 1]);
});

test("an exception in fn aborts the transaction: nothing is written", async () => {
  const boom = new Error("boom");
  await assert.rejects(withStore("meta", "readwrite", (meta) => {
    meta.put({ key: "a", value: 1 });
    throw boom;
  }), boom);
  assert.equal(await withStore("meta", "readonly", (meta) => meta.count()), 0);
});

test("a rejection after awaited requests aborts the transaction: nothing is written", async () => {
  await assert.rejects(withStore(["meta", "trees"], "readwrite", async ({ meta, trees }) => {
    await request(meta.put({ key: "a", value: 1 }));
    await request(trees.put({ id: "t1" }));
    throw new Error("late");
  }), /late/);
  const counts = await withStore(["meta", "trees"], "readonly", ({ meta, trees }) =>
    Promise.all([request(meta.count()), request(trees.count())]));
  assert.deepEqual(counts, [0, 0]);
});

test("a failed request aborts the transaction and rolls back earlier writes", async () => {
  await withStore("ops", "readwrite", (ops) => { ops.add({ device_seq: 1, op_id: "a", state: "done" }); });
  await assert.rejects(withStore(["ops", "meta"], "readwrite", ({ ops, meta }) => {
    meta.put({ key: "next_seq", value: 3 });
    ops.add({ device_seq: 2, op_id: "a", state: "pending" }); // op_id is unique
  }), { name: "ConstraintError" });
  assert.equal(await withStore("meta", "readonly", (meta) => meta.get("next_seq")), undefined);
  assert.equal(await withStore("ops", "readonly", (ops) => ops.count()), 1);
});

test("the connection lets go when another page deletes or upgrades the database", { timeout: 5000 }, async () => {
  await withStore("meta", "readwrite", (meta) => { meta.put({ key: "a", value: 1 }); });
  const deleting = indexedDB.deleteDatabase(DB_NAME);
  await new Promise((resolve, reject) => {
    deleting.onsuccess = resolve;
    deleting.onerror = () => reject(deleting.error);
    deleting.onblocked = () => reject(new Error("blocked: the old connection stayed open"));
  });
  assert.equal(await withStore("meta", "readonly", (meta) => meta.count()), 0); // reopened afresh
});
