// The verifier's re-measurements in the outbox, on a real (in-memory) IndexedDB: queued durably,
// oldest first, settled by the server's answer, a refused one replaced when the tree is redone,
// and the decided samples' reports kept for offline reading.
import "fake-indexeddb/auto";
import { IDBFactory } from "fake-indexeddb";
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { closeDb } from "../js/idb.js";
import {
  forgetVerifier, keepReport, keptReport, pendingRemeasurements, queueRemeasurement,
  remeasurements, settleRemeasurement, status,
} from "../js/outbox.js";

beforeEach(async () => {
  await closeDb();
  globalThis.indexedDB = new IDBFactory();
});

const outcome = (clientId, treeId, extra = {}) => ({
  verification_id: 7, client_id: clientId, tree_id: treeId, measured_at: "2026-12-07T08:00:00Z",
  outcome: "measured", dbh_cm: 36.1, height_m: 20.2, species_id: "cunninghamia_lanceolata", ...extra,
});
const strip = (items) => items.map(({ created_at, ...item }) => item);

test("queued outcomes wait as pending, oldest first, apart from the measurer's operations", async (t) => {
  let clock = 1000;
  t.mock.method(Date, "now", () => clock++);
  await queueRemeasurement(outcome("c-b", "t2", { outcome: "not_found", dbh_cm: undefined }));
  await queueRemeasurement(outcome("c-a", "t1"));
  assert.deepEqual((await remeasurements()).map((item) => item.client_id), ["c-b", "c-a"]);
  assert.deepEqual(strip(await remeasurements("pending"))[1], { ...outcome("c-a", "t1"), state: "pending", error: null });
  assert.equal(await pendingRemeasurements(), 2);
  assert.equal((await status()).pending, 0); // the measurer's banner counts only its own records
});

test("the server's answer settles one outcome: sent, or refused with the reason", async () => {
  await queueRemeasurement(outcome("c1", "t1"));
  await queueRemeasurement(outcome("c2", "t2"));
  assert.equal(await settleRemeasurement("c1", { state: "sent" }), true);
  assert.equal(await settleRemeasurement("c2", { state: "refused", error: "tree_not_in_sample" }), true);
  assert.equal(await settleRemeasurement("unknown", { state: "sent" }), false);
  const byId = Object.fromEntries((await remeasurements()).map((item) => [item.client_id, item]));
  assert.deepEqual([byId.c1.state, byId.c1.error], ["sent", null]);
  assert.deepEqual([byId.c2.state, byId.c2.error], ["refused", "tree_not_in_sample"]);
  assert.equal(await pendingRemeasurements(), 0);
  assert.deepEqual(await remeasurements("pending"), []);
});

test("redoing a refused tree replaces the refusal; a sent outcome is never replaced", async () => {
  await queueRemeasurement(outcome("c1", "t1"));
  await settleRemeasurement("c1", { state: "refused", error: "invalid" });
  await queueRemeasurement(outcome("c2", "t2"));
  await settleRemeasurement("c2", { state: "sent" });
  await queueRemeasurement(outcome("c3", "t1", { dbh_cm: 30 }));
  await queueRemeasurement(outcome("c4", "t2"));
  assert.deepEqual((await remeasurements()).map((i) => [i.client_id, i.state]).sort(),
    [["c2", "sent"], ["c3", "pending"], ["c4", "pending"]]);
});

test("a refused queue write keeps nothing: a client_id is queued once", async () => {
  await queueRemeasurement(outcome("c1", "t1"));
  await assert.rejects(queueRemeasurement(outcome("c1", "t9")), { name: "ConstraintError" });
  assert.deepEqual((await remeasurements()).map((i) => i.tree_id), ["t1"]);
});

test("reports are kept for the samples still on the phone; sign-out forgets the queue", async () => {
  const pdf = new Blob(["%PDF-1.7 report"], { type: "application/pdf" });
  await keepReport(7, pdf);
  await keepReport(8, new Blob(["%PDF-1.7 other"], { type: "application/pdf" }));
  assert.equal(await keptReport(9), null);
  assert.equal(await (await keptReport(7)).text(), "%PDF-1.7 report");
  await queueRemeasurement(outcome("c1", "t1"));

  await forgetVerifier([7]); // sample 8 left the phone's list
  assert.ok(await keptReport(7));
  assert.equal(await keptReport(8), null);
  assert.equal((await remeasurements()).length, 1); // the queue stays while the verifier does
  await forgetVerifier([]); // no sample left on the phone: still nothing unsent is lost
  assert.equal(await keptReport(7), null);
  assert.equal((await remeasurements()).length, 1);
  await keepReport(7, pdf);

  await forgetVerifier(); // signed out
  assert.equal(await keptReport(7), null);
  assert.deepEqual(await remeasurements(), []);
});
