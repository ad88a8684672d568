"""The Python reference client: a durable outbox on the phone's side of the sync protocol.

Every change is written to a local SQLite outbox (with its photo, by sha256) before anything
is sent; `sync()` pushes pending operations in small gzipped batches in sequence order,
uploads photos in resumable chunks whose size adapts to the link, then pulls the village's
changes. `SyncScheduler` retries with full-jitter backoff and honours `Retry-After`. The PWA
mirrors this behaviour in JavaScript.
"""

import gzip
import hashlib
import http.client
import json
import random
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BATCH_OPS = 25
BATCH_BYTES = 16 * 1024  # gzipped
MIN_CHUNK, START_CHUNK, MAX_CHUNK = 16 * 1024, 32 * 1024, 256 * 1024
ASSUMED_BYTES_PER_S = 2_000  # 16 kbps: timeouts allow at least this
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    device_seq INTEGER PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, record_id TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, client_time TEXT NOT NULL, base_version INTEGER,
    state TEXT NOT NULL DEFAULT 'pending', result TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending');
"""


class TransientError(Exception):
    """The network or server failed in a way worth retrying (after `retry_after` seconds)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The server refused the request itself; retrying the same request will not help."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(f"HTTP {status}: {body.get('error', body)}")
        self.status = status
        self.body = body


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def answer(data: bytes) -> dict[str, Any]:
    """A successful answer's JSON; a garbled one (cut by the network) is worth a retry."""
    try:
        parsed = json.loads(data)
    except ValueError as error:
        raise TransientError("the answer was garbled or cut short") from error
    if not isinstance(parsed, dict):
        raise TransientError("the answer was not a JSON object")
    return parsed


class SyncClient:
    """One enrolled phone: its outbox, its photos, its pull cursor."""

    def __init__(self, base_url: str, token: str, device_id: str, folder: Path):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) address: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.device_id = device_id
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "photos").mkdir(exist_ok=True)
        self.db = sqlite3.connect(
            self.folder / "outbox.db", isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=wal")
        self.db.execute("PRAGMA synchronous=full")
        self.db.executescript(SCHEMA)
        self.chunk_size = START_CHUNK
        self.bytes_sent = 0
        self.bytes_received = 0
        self.village: dict[str, dict[str, Any]] = {"households": {}, "trees": {}}

    # --- the outbox -------------------------------------------------------------------

    def record(
        self,
        kind: str,
        record_id: str,
        payload: dict[str, Any],
        *,
        client_time: str | None = None,
        base_version: int | None = None,
        photo: bytes | None = None,
    ) -> dict[str, Any]:
        """Queue one operation (and its photo) durably, in one transaction; returns it."""
        if photo is not None:
            sha = hashlib.sha256(photo).hexdigest()
            path = self.folder / "photos" / sha
            if not path.exists():
                path.write_bytes(photo)
            payload = {**payload, "photo_sha256": sha}
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seq = self.db.execute("SELECT coalesce(max(device_seq), 0) + 1 FROM ops").fetchone()[0]
            op = {
                "op_id": str(uuid.uuid4()),
                "device_seq": seq,
                "record_id": record_id,
                "kind": kind,
                "payload": payload,
                "client_time": client_time or utc_now(),
                "base_version": base_version,
            }
            self.db.execute(
                "INSERT INTO ops (device_seq, op_id, record_id, kind, payload, client_time, "
                "base_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    seq,
                    op["op_id"],
                    record_id,
                    kind,
                    json.dumps(payload, ensure_ascii=False),
                    op["client_time"],
                    base_version,
                    time.time(),
                ],
            )
            if photo is not None:
                self.db.execute(
                    "INSERT OR IGNORE INTO photos (sha256, size) VALUES (?, ?)",
                    [payload["photo_sha256"], len(photo)],
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return op

    def status(self) -> dict[str, Any]:
        """What the measurer sees: counts by state and the age of the oldest waiting record."""
        counts = dict(self.db.execute("SELECT state, count(*) FROM ops GROUP BY state").fetchall())
        oldest = self.db.execute(
            "SELECT min(created_at) FROM ops WHERE state IN ('pending', 'held')"
        ).fetchone()[0]
        photos = self.db.execute("SELECT count(*) FROM photos WHERE state = 'pending'")
        return {
            "pending": counts.get("pending", 0) + counts.get("held", 0),
            "done": counts.get("done", 0),
            "rejected": counts.get("rejected", 0),
            "photos_pending": photos.fetchone()[0],
            "oldest_pending_s": None if oldest is None else time.time() - oldest,
        }

    def results(self) -> dict[str, dict[str, Any]]:
        """Each operation's state and the server's answer, by op_id."""
        return {
            row["op_id"]: {
                "state": row["state"],
                "result": json.loads(row["result"]) if row["result"] else None,
            }
            for row in self.db.execute("SELECT op_id, state, result FROM ops")
        }

    # --- HTTP ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        url = f"{self.base_url}{path}"  # http(s) only: checked in __init__
        request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept-Encoding", "gzip")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        timeout = 15 + (len(body or b"") + 20_000) / ASSUMED_BYTES_PER_S
        self.bytes_sent += len(body or b"")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                data = response.read()
                status, reply_headers = response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            data, status, reply_headers = error.read(), error.code, dict(error.headers)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise TransientError(f"{method} {path}: {error}") from error
        self.bytes_received += len(data)
        expected = reply_headers.get("Content-Length")
        if expected is not None and expected.isdigit() and int(expected) != len(data):
            raise TransientError(f"{method} {path}: the answer was cut short")
        if reply_headers.get("Content-Encoding") == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as error:
                raise TransientError(f"{method} {path}: the answer was cut short") from error
        if status in RETRYABLE:
            retry_after = reply_headers.get("Retry-After")
            raise TransientError(
                f"{method} {path}: HTTP {status}", float(retry_after) if retry_after else None
            )
        if status >= 400:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"error": data[:200].decode(errors="replace")}
            raise PermanentError(status, parsed)
        return status, reply_headers, data

    # --- push ---------------------------------------------------------------------------

    def _next_batch(self) -> tuple[list[dict[str, Any]], bytes]:
        rows = self.db.execute(
            "SELECT * FROM ops WHERE state IN ('pending', 'held') ORDER BY device_seq LIMIT ?",
            [BATCH_OPS],
        ).fetchall()
        ops = [
            {
                "op_id": r["op_id"],
                "device_seq": r["device_seq"],
                "record_id": r["record_id"],
                "kind": r["kind"],
                "payload": json.loads(r["payload"]),
                "client_time": r["client_time"],
                "base_version": r["base_version"],
            }
            for r in rows
        ]
        while ops:
            body = gzip.compress(
                json.dumps(
                    {"device_id": self.device_id, "sent_at": utc_now(), "ops": ops},
                    ensure_ascii=False,
                ).encode()
            )
            if len(body) <= BATCH_BYTES or len(ops) == 1:
                return ops, body
            ops = ops[: len(ops) // 2]
        return [], b""

    def push_once(self) -> int:
        """Send one batch; returns how many operations it settled (0: nothing to send)."""
        ops, body = self._next_batch()
        if not ops:
            return 0
        _, _, data = self._request(
            "POST",
            "/api/v1/sync/push",
            body,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        settled = 0
        for result in answer(data)["results"]:
            state = {
                "applied": "done",
                "duplicate": "done",
                "rejected": "rejected",
                "held": "held",
            }[result["status"]]
            self.db.execute(
                "UPDATE ops SET state = ?, result = ? WHERE op_id = ?",
                [state, json.dumps(result, ensure_ascii=False), result["op_id"]],
            )
            settled += state != "held"
        return settled

    # --- photos -------------------------------------------------------------------------

    def upload_photo(self, sha256: str) -> None:
        """Send a photo from where the server's copy ends, in chunks that adapt to the link."""
        data = (self.folder / "photos" / sha256).read_bytes()
        _, headers, _ = self._request("HEAD", f"/api/v1/blobs/{sha256}")
        offset = int(headers.get("Upload-Offset", 0))
        complete = headers.get("Upload-Complete") == "true"
        while not complete:
            chunk = data[offset : offset + self.chunk_size]
            started = time.monotonic()
            try:
                _, _, reply = self._request(
                    "PUT",
                    f"/api/v1/blobs/{sha256}",
                    chunk,
                    {
                        "Upload-Offset": str(offset),
                        "Upload-Length": str(len(data)),
                        "Content-Type": "application/octet-stream",
                    },
                )
            except TransientError:
                self.chunk_size = max(MIN_CHUNK, self.chunk_size // 2)
                raise
            except PermanentError as error:
                if error.status == 409:  # the server holds a different amount: resume there
                    offset = int(error.body["error"]["details"]["offset"])
                    continue
                raise
            reached = answer(reply)
            offset, complete = reached["offset"], reached["complete"]
            if time.monotonic() - started < 4:
                self.chunk_size = min(MAX_CHUNK, self.chunk_size * 2)
        self.db.execute("UPDATE photos SET state = 'done' WHERE sha256 = ?", [sha256])

    # --- pull ---------------------------------------------------------------------------

    def pull(self) -> int:
        """Fetch the village's changes since the stored cursor; returns how many arrived."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        cursor, received = int(row[0]) if row else 0, 0
        while True:
            _, _, data = self._request("GET", f"/api/v1/sync/pull?cursor={cursor}")
            page = answer(data)
            for household in page["households"]:
                self.village["households"][household["code"]] = household
            for tree in page["trees"]:
                self.village["trees"][tree["id"]] = tree
            received += len(page["households"]) + len(page["trees"])
            cursor = page["cursor"]
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('cursor', ?)", [str(cursor)]
            )
            if not page["more"]:
                return received

    def sync(self) -> dict[str, Any]:
        """Push everything pending, then photos, then pull. Raises on a failure to retry."""
        while self.push_once():
            pass
        for (sha,) in self.db.execute(
            "SELECT sha256 FROM photos WHERE state = 'pending' ORDER BY rowid"
        ).fetchall():
            self.upload_photo(sha)
        self.pull()
        return self.status()


class SyncScheduler:
    """Retry `sync` with full-jitter backoff (2 s → 5 min), honouring Retry-After."""

    def __init__(
        self,
        client: SyncClient,
        *,
        base: float = 2.0,
        cap: float = 300.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client, self.base, self.cap = client, base, cap
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.failures = 0

    def delay(self, retry_after: float | None = None) -> float:
        """The wait before the next attempt after `self.failures` failures in a row."""
        ceiling = min(self.cap, self.base * 2 ** max(self.failures - 1, 0))
        wait = self.rng.uniform(0, ceiling)
        return max(wait, retry_after or 0)

    def run(self, attempts: int = 50) -> dict[str, Any]:
        """Sync until everything is settled or `attempts` run out (then TransientError)."""
        last_error: TransientError | None = None
        for attempt in range(1, attempts + 1):
            try:
                status = self.client.sync()
            except TransientError as error:
                last_error = error
                self.failures += 1
                if attempt < attempts:  # no wait after the last attempt: give up at once
                    self.sleep(self.delay(error.retry_after))
                continue
            self.failures = 0
            if status["pending"] == 0 and status["photos_pending"] == 0:
                return status
        raise last_error or TransientError("gave up")
