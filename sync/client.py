"""The Python reference client: a durable outbox on the phone's side of the sync protocol.

Every change is written to a local SQLite outbox (with its photo, by sha256) before anything
is sent. `sync()` pushes pending operations in gzipped batches in sequence order, over one
kept-alive connection; a batch's size adapts to the link (it starts small, doubles after a
quick answer up to a byte cap, halves after a failure). The last push asks for the village's
changes, which come back with its answer when few are waiting (else pulls follow); a phone
that never pulled sends its first pull pipelined behind the last push.
Photos go in resumable chunks, pipelined, whose size adapts to the link as well.
`SyncScheduler` retries with full-jitter backoff and honours `Retry-After`. The PWA mirrors
this behaviour in JavaScript.
"""

import gzip
import hashlib
import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync.connection import Connection, PermanentError, Request, TransientError, checked
from sync.protocol import MAX_BATCH_OPS
from sync.scheduler import SyncScheduler

__all__ = ["PermanentError", "SyncClient", "SyncScheduler", "TransientError"]

MIN_BATCH, START_BATCH, MAX_BATCH = 1024, 4 * 1024, 32 * 1024  # gzipped bytes a push
PULL_LIMIT = 5000  # changes a pull page: over 2G a round trip costs more than bytes
MIN_CHUNK, START_CHUNK, MAX_CHUNK = 16 * 1024, 32 * 1024, 256 * 1024
QUICK_S = 4.0  # an answer within this grows the next batch or chunk

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops (
    device_seq INTEGER PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, record_id TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, client_time TEXT NOT NULL, base_version INTEGER,
    state TEXT NOT NULL DEFAULT 'pending', result TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending');
"""


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
        self.connection = Connection(token)
        self.chunk_size = START_CHUNK
        self.batch_bytes = START_BATCH
        self.batch_ops = MAX_BATCH_OPS
        self.quick_s = QUICK_S
        self._photos_tried: set[str] = set()
        self.pulled_with_push = False
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
        photos = dict(
            self.db.execute("SELECT state, count(*) FROM photos GROUP BY state").fetchall()
        )
        return {
            "pending": counts.get("pending", 0) + counts.get("held", 0),
            "done": counts.get("done", 0),
            "rejected": counts.get("rejected", 0),
            "photos_pending": photos.get("pending", 0),
            "photos_damaged": photos.get("damaged", 0),  # to be taken again
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

    @property
    def bytes_sent(self) -> int:
        return self.connection.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.connection.bytes_received

    def close(self) -> None:
        """Close the outbox and the kept connection."""
        self.connection.close()
        self.db.close()

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = Request(method, path, body or b"", headers or {})
        (reply,) = self.connection.exchange(self.base_url, [request])
        done = checked(request, reply)
        return done.status, done.headers, done.data

    # --- push ---------------------------------------------------------------------------

    def _next_batch(self) -> tuple[list[dict[str, Any]], bytes]:
        """The next pending operations in order, as many as fit `batch_bytes` gzipped."""
        rows = self.db.execute(
            "SELECT * FROM ops WHERE state IN ('pending', 'held') ORDER BY device_seq LIMIT ?",
            [self.batch_ops],
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
            body = self._body(ops)
            if len(body) <= self.batch_bytes or len(ops) == 1:
                return ops, body
            ops = ops[: max(1, len(ops) * self.batch_bytes // len(body))]
        return [], b""

    def _body(self, ops: list[dict[str, Any]], **extra: Any) -> bytes:
        batch = {"device_id": self.device_id, "sent_at": utc_now(), "ops": ops, **extra}
        return gzip.compress(json.dumps(batch, ensure_ascii=False).encode())

    def _cursor(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return int(row[0]) if row else 0

    def push_once(self, ask_pull: bool = False) -> int:
        """Send one batch; returns how many operations it settled (0: nothing to send).
        With `ask_pull` on the last batch the village's changes come in the same round trip:
        in the push's answer (`pull_cursor`), or, for a phone that never pulled (the whole
        village waits), as a pull pipelined behind the push."""
        ops, body = self._next_batch()
        if not ops:
            return 0
        last = ask_pull and len(ops) == self._waiting()
        cursor = self._cursor()
        if last and cursor:
            body = self._body(ops, pull_cursor=cursor)
        gzipped_json = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        requests = [Request("POST", "/api/v1/sync/push", body, gzipped_json)]
        if last and not cursor:
            requests.append(Request("GET", f"/api/v1/sync/pull?cursor=0&limit={PULL_LIMIT}"))
        started = time.monotonic()
        replies = self.connection.exchange(self.base_url, requests)
        try:
            reply = answer(checked(requests[0], replies[0]).data)
        except TransientError:
            self.batch_bytes = max(MIN_BATCH, self.batch_bytes // 2)
            raise
        if time.monotonic() - started < self.quick_s:
            self.batch_bytes = min(MAX_BATCH, self.batch_bytes * 2)
        settled = 0
        for result in reply["results"]:
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
        page = reply.get("pull") if last else None
        if len(requests) == 2:
            try:
                page = answer(checked(requests[1], replies[1]).data)
            except (TransientError, PermanentError):
                page = None  # the pull follows on its own
        if page:
            self._keep_page(page)
        self.pulled_with_push = bool(page and not page["more"])
        return settled

    def _waiting(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM ops WHERE state IN ('pending', 'held')"
        ).fetchone()[0]

    # --- photos -------------------------------------------------------------------------

    def _photo_bytes(self, sha256: str) -> bytes | None:
        """The photo as kept on the phone; None, and the photo set aside as damaged, when its
        bytes are gone or no longer hash to its name (the phone's storage failed): the server
        could never accept them, so they are not sent, and the other photos and the pull go on
        while the measurer takes it again."""
        try:
            data = (self.folder / "photos" / sha256).read_bytes()
        except OSError:
            data = None
        if data is not None and hashlib.sha256(data).hexdigest() == sha256:
            return data
        self.db.execute("UPDATE photos SET state = 'damaged' WHERE sha256 = ?", [sha256])
        return None

    def upload_photo(self, sha256: str) -> None:
        """Send a photo from where the server's copy ends: its chunks pipelined over the
        kept connection (one round trip when all goes well), their size adapted to the link."""
        data = self._photo_bytes(sha256)
        if data is None:
            return
        path = f"/api/v1/blobs/{sha256}"
        offset, complete, restarts = 0, False, 0
        if sha256 in self._photos_tried:  # a first try starts at 0; a 409 would correct it
            _, headers, _ = self._request("HEAD", path)
            offset = int(headers.get("Upload-Offset", 0))
            complete = headers.get("Upload-Complete") == "true"
        self._photos_tried.add(sha256)
        while not complete:
            chunks = [
                Request(
                    "PUT",
                    path,
                    data[start : start + self.chunk_size],
                    {
                        "Upload-Offset": str(start),
                        "Upload-Length": str(len(data)),
                        "Content-Type": "application/octet-stream",
                    },
                )
                for start in range(offset, len(data), self.chunk_size)
            ]
            started = time.monotonic()
            replies = self.connection.exchange(self.base_url, chunks)
            answered = 0
            try:
                for chunk, reply in zip(chunks, replies, strict=True):
                    reached = answer(checked(chunk, reply).data)
                    offset, complete = reached["offset"], reached["complete"]
                    answered += 1
                    if complete:  # the rest (if any) went for nothing: the photo is whole
                        break
            except TransientError:
                if answered:  # closed after some answers: go on from the offset reached
                    continue
                self.chunk_size = max(MIN_CHUNK, self.chunk_size // 2)
                raise
            except PermanentError as error:
                if error.status == 409:  # the server holds a different amount: resume there
                    offset = int(error.body["error"]["details"]["offset"])
                    continue
                # The server dropped bytes that did not add up (ours do): send them again.
                if error.code == "hash_mismatch" and restarts < 2:
                    offset, restarts = 0, restarts + 1
                    continue
                raise
            if time.monotonic() - started < self.quick_s * len(chunks):
                self.chunk_size = min(MAX_CHUNK, self.chunk_size * 2)
        self.db.execute("UPDATE photos SET state = 'done' WHERE sha256 = ?", [sha256])

    # --- pull ---------------------------------------------------------------------------

    def _keep_page(self, page: dict[str, Any]) -> int:
        for household in page["households"]:
            self.village["households"][household["code"]] = household
        for tree in page["trees"]:
            self.village["trees"][tree["id"]] = tree
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('cursor', ?)", [str(page["cursor"])]
        )
        return len(page["households"]) + len(page["trees"])

    def pull(self) -> int:
        """Fetch the village's changes since the stored cursor; returns how many arrived."""
        received = 0
        while True:
            query = f"cursor={self._cursor()}&limit={PULL_LIMIT}"
            _, _, data = self._request("GET", f"/api/v1/sync/pull?{query}")
            page = answer(data)
            received += self._keep_page(page)
            if not page["more"]:
                return received

    def sync(self) -> dict[str, Any]:
        """Push everything pending, then photos, then pull (carried by the last push's answer
        when few changes wait and no photo follows). Raises on a failure to retry."""
        photos = [
            sha
            for (sha,) in self.db.execute(
                "SELECT sha256 FROM photos WHERE state = 'pending' ORDER BY rowid"
            ).fetchall()
        ]
        self.pulled_with_push = False
        while self.push_once(ask_pull=not photos):
            pass
        for sha in photos:
            self.upload_photo(sha)
        if photos or not self.pulled_with_push:
            self.pull()
        return self.status()
