// The sync scheduler with a seeded random and a fake clock: backoff, Retry-After, kicks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SyncScheduler, WAITING_INTERVAL_MS } from "../js/scheduler.js";

// mulberry32: a small seeded generator, so every run draws the same "random" numbers.
function seeded(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Timers that fire only when the test moves the clock; like window's, they refuse a `this`.
function fakeClock() {
  let now = 0;
  let ids = 0;
  const timers = new Map();
  const bare = (self) => { if (self !== undefined) throw new TypeError("Illegal invocation"); };
  return {
    timers,
    now: () => now,
    setTimer(fn, ms) { bare(this); timers.set(++ids, { fn, at: now + ms }); return ids; },
    clearTimer(id) { bare(this); timers.delete(id); },
    async advance(ms) {
      now += ms;
      for (const [id, timer] of [...timers]) {
        if (timer.at <= now) { timers.delete(id); timer.fn(); }
      }
      await settle();
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

// A run the test finishes by hand: resolve(stillWaiting) or reject(error).
function manualRun() {
  const calls = [];
  const run = () => new Promise((resolve, reject) => calls.push({ resolve, reject }));
  return { calls, run };
}

function scheduler(run, options = {}) {
  const clock = fakeClock();
  const s = new SyncScheduler({
    run, random: seeded(42), setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now, ...options,
  });
  return { s, clock };
}

const transient = (retryAfterMs = null) => Object.assign(new Error("HTTP 503"), { retryAfterMs });

test("backoff is full jitter: within [0, min(5 min, 2 s × 2^(failures − 1))]", () => {
  const { s } = scheduler(async () => false);
  for (let failures = 1; failures <= 12; failures++) {
    const ceiling = Math.min(300_000, 2000 * 2 ** (failures - 1));
    const draws = Array.from({ length: 500 }, () => s.delay(failures));
    assert.ok(draws.every((d) => d >= 0 && d <= ceiling), `failures=${failures}`);
    assert.ok(Math.max(...draws) > 0.9 * ceiling, "the draws reach near the ceiling");
    assert.ok(Math.min(...draws) < 0.1 * ceiling, "and near zero");
  }
  assert.equal(new SyncScheduler({ run: null, random: () => 0.999999 }).delay(30), 0.999999 * 300_000);
  assert.equal(new SyncScheduler({ run: null, random: () => 0.5 }).delay(1), 1000);
});

test("Retry-After is a floor under the backoff", () => {
  const { s } = scheduler(async () => false, { random: () => 0.99 });
  assert.equal(s.delay(1, 60_000), 60_000);
  assert.equal(s.delay(1, 0), 0.99 * 2000);
  assert.equal(s.delay(20, 60_000), 0.99 * 300_000);
});

test("a failure waits the backoff, then runs again; a success resets the count", async () => {
  const { calls, run } = manualRun();
  const { s, clock } = scheduler(run, { random: () => 0.5 });
  s.kick("open");
  calls[0].reject(transient());
  await settle();
  assert.deepEqual(s.snapshot().state, "waiting");
  assert.equal(s.failures, 1);
  assert.equal(s.nextRunAt, 1000);
  await clock.advance(999);
  assert.equal(calls.length, 1);
  await clock.advance(1);
  assert.equal(calls.length, 2);
  calls[1].reject(transient());
  await settle();
  assert.equal(s.failures, 2);
  assert.equal(s.nextRunAt, 1000 + 2000); // 0.5 × 4 s
  await clock.advance(2000);
  calls[2].resolve(false);
  await settle();
  assert.deepEqual(s.snapshot(), { state: "idle", failures: 0, nextRunAt: null, lastError: null });
  assert.equal(clock.timers.size, 0);
});

test("a server's Retry-After holds off the next run, even a kicked one", async () => {
  const { calls, run } = manualRun();
  const { s, clock } = scheduler(run, { random: () => 0.1 });
  s.kick("open");
  calls[0].reject(transient(120_000));
  await settle();
  assert.equal(s.nextRunAt, 120_000);
  await clock.advance(60_000);
  s.kick("online");
  assert.equal(calls.length, 1, "kicked inside the Retry-After window: still waiting");
  await clock.advance(60_000);
  assert.equal(calls.length, 2);
});

test("without Retry-After a kick cuts the backoff short (the network came back)", async () => {
  const { calls, run } = manualRun();
  const { s, clock } = scheduler(run, { random: () => 0.9 });
  s.kick("open");
  calls[0].reject(transient());
  await settle();
  s.kick("online");
  assert.equal(calls.length, 2);
  assert.equal(clock.timers.size, 0);
});

test("kicks while a run is under way coalesce into one more run", async () => {
  const { calls, run } = manualRun();
  const { s } = scheduler(run);
  s.kick("open");
  s.kick("save");
  s.kick("save");
  s.kick("visible");
  assert.equal(calls.length, 1);
  calls[0].resolve(false);
  await settle();
  assert.equal(calls.length, 2, "one follow-up for all the kicks");
  calls[1].resolve(false);
  await settle();
  assert.equal(calls.length, 2);
  assert.equal(s.state, "idle");
});

test("while anything still waits it runs again every 30 s", async () => {
  const { calls, run } = manualRun();
  const { s, clock } = scheduler(run);
  s.kick("open");
  calls[0].resolve(true);
  await settle();
  assert.deepEqual(s.snapshot(), { state: "waiting", failures: 0, nextRunAt: WAITING_INTERVAL_MS, lastError: null });
  await clock.advance(WAITING_INTERVAL_MS);
  assert.equal(calls.length, 2);
});

test("a permanent error stops retrying until the next kick", async () => {
  const { calls, run } = manualRun();
  const { s, clock } = scheduler(run);
  const refused = Object.assign(new Error("HTTP 401"), { permanent: true });
  s.kick("open");
  calls[0].reject(refused);
  await settle();
  assert.deepEqual(s.snapshot(), { state: "idle", failures: 1, nextRunAt: null, lastError: refused });
  assert.equal(clock.timers.size, 0);
  s.kick("save");
  assert.equal(calls.length, 2);
});

test("subscribers hear every change until they unsubscribe", async () => {
  const { calls, run } = manualRun();
  const { s } = scheduler(run, { random: () => 0.5 });
  const heard = [];
  const unsubscribe = s.subscribe((snapshot) => heard.push(snapshot));
  const failure = transient();
  s.kick("open");
  calls[0].reject(failure);
  await settle();
  s.kick("online");
  calls[1].resolve(false);
  await settle();
  assert.deepEqual(heard, [
    { state: "idle", failures: 0, nextRunAt: null, lastError: null },
    { state: "running", failures: 0, nextRunAt: null, lastError: null },
    { state: "waiting", failures: 1, nextRunAt: 1000, lastError: failure },
    { state: "running", failures: 1, nextRunAt: null, lastError: failure },
    { state: "idle", failures: 0, nextRunAt: null, lastError: null },
  ]);
  unsubscribe();
  s.kick("save");
  assert.equal(heard.length, 5);
});

test("a subscriber that throws does not stop the scheduler or the others", async (t) => {
  t.mock.method(console, "error", () => {});
  const { calls, run } = manualRun();
  const { s } = scheduler(run);
  const heard = [];
  s.subscribe(() => { throw new Error("broken screen"); });
  s.subscribe(({ state }) => heard.push(state));
  s.kick("open");
  calls[0].resolve(false);
  await settle();
  assert.deepEqual(heard, ["idle", "running", "idle"]);
});
