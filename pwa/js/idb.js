// A tiny IndexedDB wrapper: one memoized connection, a versioned schema upgraded in order,
// and transactions as promises that settle only when IndexedDB has committed (or aborted).

export const DB_NAME = "sipang";

// Schema steps: UPGRADES[i] takes the database from version i to i + 1. Steps run in order
// inside the upgrade transaction; once a step has shipped, never edit it — append a new one.
export const UPGRADES = [
  // 1: the outbox — operations by device_seq, photos by sha256, small key/value settings.
  (db) => {
    const ops = db.createObjectStore("ops", { keyPath: "device_seq" });
    ops.createIndex("op_id", "op_id", { unique: true });
    ops.createIndex("state", "state");
    const photos = db.createObjectStore("photos", { keyPath: "sha256" });
    photos.createIndex("state", "state");
    db.createObjectStore("meta", { keyPath: "key" });
  },
  // 2: the village pulled from the server — households by code, trees by id.
  (db) => {
    db.createObjectStore("households", { keyPath: "code" });
    db.createObjectStore("trees", { keyPath: "id" });
  },
  // 3: the verifier's re-measurements join the outbox (they were a list in meta) by client_id,
  // and the reports of decided samples are kept by verification id.
  (db, tx) => {
    const store = db.createObjectStore("remeasurements", { keyPath: "client_id" });
    store.createIndex("state", "state");
    db.createObjectStore("reports", { keyPath: "verification_id" });
    const meta = tx.objectStore("meta");
    meta.get("verifier_queue").onsuccess = (event) => {
      (event.target.result?.value ?? []).forEach((item, i) => store.put({ created_at: i, ...item }));
      meta.delete("verifier_queue");
    };
  },
];

// A request's result as a promise; await it inside withStore's fn to keep the transaction alive.
export function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

// Open `name` at version upgrades.length, running the missing steps in order (not memoized).
export function openDatabase(name, upgrades, factory = indexedDB) {
  return new Promise((resolve, reject) => {
    const req = factory.open(name, upgrades.length);
    req.onupgradeneeded = (event) => {
      for (let version = event.oldVersion; version < upgrades.length; version++) {
        upgrades[version](req.result, req.transaction);
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => {}; // another tab holds an old version: it closes on versionchange
  });
}

let opening = null;

// The app's database, opened once per page; a newer version elsewhere makes us let go.
export function openDb() {
  opening ??= openDatabase(DB_NAME, UPGRADES).then(
    (db) => {
      db.onversionchange = () => closeDb();
      return db;
    },
    (error) => {
      opening = null; // let the next call try again
      throw error;
    },
  );
  return opening;
}

// Close the memoized connection (tests, or before deleting the database).
export async function closeDb() {
  const pending = opening;
  opening = null;
  if (pending) (await pending.catch(() => null))?.close();
}

// Run fn(stores, tx) in one transaction over `names` (a store name or a list of them).
// fn gets the store itself for a single name, or {name: store} for a list. It may return a
// value, an IDBRequest (resolved to its result) or a promise that awaits only IDB requests.
// Resolves once the transaction has committed; rejects — and writes nothing — when fn throws,
// its promise rejects, a request fails or the transaction aborts.
export async function withStore(names, mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    // "strict": a saved record has reached the disk before the app says "saved".
    const tx = db.transaction(names, mode, mode === "readwrite" ? { durability: "strict" } : undefined);
    const stores = typeof names === "string"
      ? tx.objectStore(names)
      : Object.fromEntries(names.map((name) => [name, tx.objectStore(name)]));
    let failure = null;
    const abort = (error) => {
      failure ??= error;
      try { tx.abort(); } catch { /* already finished */ }
    };
    let outcome;
    try {
      outcome = Promise.resolve(fn(stores, tx));
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.catch(abort);
    tx.oncomplete = () => outcome.then(
      (value) => resolve(value instanceof IDBRequest ? value.result : value),
      reject,
    );
    tx.onabort = () => reject(failure ?? tx.error ?? new DOMException("aborted", "AbortError"));
  });
}
