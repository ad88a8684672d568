// When to sync (docs/sync.md, "The scheduler"): now when kicked (app open, online, after a
// save, visible again), every 30 s while anything waits, and after a failure a full-jitter
// backoff from 2 s to 5 min that never comes sooner than the server's Retry-After.

export const WAITING_INTERVAL_MS = 30_000;

// A screen's broken callback must not stop syncing.
function notify(callback, snapshot) {
  try { callback(snapshot); } catch (error) { console.error(error); }
}

export class SyncScheduler {
  // run: async () => whether anything still waits; it throws to fail ({retryAfterMs, permanent}).
  constructor({
    run, base = 2000, cap = 300000, random = Math.random,
    setTimer = setTimeout, clearTimer = clearTimeout, now = Date.now,
  }) {
    Object.assign(this, { run, base, cap, random, setTimer, clearTimer, now });
    this.state = "idle";
    this.failures = 0;
    this.nextRunAt = null;
    this.lastError = null;
    this.notBefore = 0; // the server's Retry-After: no run, not even a kicked one, before it
    this.timer = null;
    this.again = false; // kicked while running: run once more when this run ends
    this.subscribers = new Set();
  }

  // The wait after `failures` failures in a row: uniform in [0, min(cap, base·2^(failures−1))].
  delay(failures, retryAfterMs = 0) {
    const ceiling = Math.min(this.cap, this.base * 2 ** Math.max(failures - 1, 0));
    return Math.max(this.random() * ceiling, retryAfterMs || 0);
  }

  // Sync now unless a run is under way (then once more after it); kicks coalesce.
  kick(reason = "kick") {
    this.lastReason = reason;
    if (this.state === "running") {
      this.again = true;
    } else if (this.now() >= this.notBefore) {
      this.start();
    }
  }

  // Call back with {state, failures, nextRunAt, lastError} now and on every change.
  subscribe(callback) {
    this.subscribers.add(callback);
    notify(callback, this.snapshot());
    return () => this.subscribers.delete(callback);
  }

  snapshot() {
    const { state, failures, nextRunAt, lastError } = this;
    return { state, failures, nextRunAt, lastError };
  }

  // One more failure in a row: wait the backoff (at least retryAfterMs), then run again.
  onFailure(retryAfterMs = 0) {
    this.failures++;
    if (retryAfterMs > 0) this.notBefore = this.now() + retryAfterMs;
    this.schedule(this.delay(this.failures, retryAfterMs));
  }

  // A run went through: back to idle, or run again in 30 s while anything still waits.
  onSuccess(stillWaiting) {
    this.failures = 0;
    this.lastError = null;
    if (stillWaiting) {
      this.schedule(WAITING_INTERVAL_MS);
    } else {
      this.cancel();
      this.setState("idle");
    }
  }

  // Forget any planned run (the page is going away, or a test is done).
  stop() {
    this.again = false;
    this.cancel();
    if (this.state !== "running") this.setState("idle");
  }

  schedule(ms) {
    this.cancel();
    this.nextRunAt = this.now() + ms;
    const { setTimer } = this; // called bare: window.setTimeout refuses any other `this`
    this.timer = setTimer(() => {
      this.timer = null;
      this.start();
    }, ms);
    this.setState("waiting");
  }

  cancel() {
    const { clearTimer } = this;
    if (this.timer !== null) clearTimer(this.timer);
    this.timer = null;
    this.nextRunAt = null;
  }

  async start() {
    this.cancel();
    this.again = false;
    this.setState("running");
    let failed = false;
    try {
      const stillWaiting = await this.run();
      this.onSuccess(stillWaiting);
    } catch (error) {
      failed = true;
      this.lastError = error;
      if (error?.permanent) { // the same request would fail again: wait for the next kick
        this.failures++;
        this.setState("idle");
      } else {
        this.onFailure(error?.retryAfterMs);
      }
    }
    if (this.again && !failed) this.kick(this.lastReason); // a kick came in while we ran
    this.again = false;
  }

  setState(state) {
    this.state = state;
    const snapshot = this.snapshot();
    for (const callback of this.subscribers) notify(callback, snapshot);
  }
}
