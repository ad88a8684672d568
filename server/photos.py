"""Tree photos: kept whole under their sha256 (content-addressed, uploaded in resumable
chunks), and shown on public pages re-encoded small, with no metadata (no GPS, no camera)."""

import fcntl
import hashlib
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from flask import Response, current_app
from PIL import Image, ImageOps
from sqlite_utils import Database
from werkzeug.exceptions import ClientDisconnected

from server.backup import sha256_file
from server.carbon import evidence
from server.clock import now_iso
from server.db import transaction
from server.errors import ApiError

MAX_BYTES = 4 * 1024 * 1024
LOCKS = "locks/photos"
LOCK_WAIT_S = 20.0  # then 503: the phone tries again later
_HEX = frozenset("0123456789abcdef")


def blob_paths(sha256: str) -> tuple[Path, Path]:
    """Where a whole photo is kept, and where its upload grows until it is whole."""
    root = Path(current_app.config["INSTANCE_PATH"]) / "blobs"
    return root / sha256[:2] / sha256, root / "partial" / f"{sha256}.part"


def check_sha(sha256: str) -> None:
    """A photo is named by its lower-case sha256; anything else is not found."""
    if len(sha256) != 64 or not _HEX.issuperset(sha256):
        raise ApiError(404, "not_found", "A blob is named by its lower-case sha256.")


def held(sha256: str) -> tuple[int, bool]:
    """How many bytes of the photo the server holds, and whether it is whole."""
    final, partial = blob_paths(sha256)
    if final.exists():
        return final.stat().st_size, True
    return (partial.stat().st_size if partial.exists() else 0), False


class OffsetMismatch(Exception):
    """A chunk that does not start where the server's copy ends."""

    def __init__(self, have: int):
        super().__init__(f"The server holds {have} bytes.")
        self.have = have


def receive_chunk(
    db: Database, sha256: str, offset: int, length: int, size: int | None, stream: IO[bytes]
) -> tuple[int, bool]:
    """Append a chunk at `offset` (fsynced, kept even when the link drops); once `length`
    bytes are held, check the hash and keep the photo. Returns (bytes held, whole).

    One request at a time per photo: a phone that lost its link resumes on a new connection
    while the server may still be reading the old request's body, and two writers appending
    to one file would interleave their bytes."""
    if not 0 < length <= MAX_BYTES:
        raise ApiError(413, "payload_too_large", f"A photo is at most {MAX_BYTES} bytes.")
    final, partial = blob_paths(sha256)
    with _upload_lock(sha256):
        if final.exists():
            return final.stat().st_size, True
        partial.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        if offset != have:
            raise OffsetMismatch(have)
        if have + (size or 0) > length:
            raise ApiError(422, "past_the_end", "This chunk goes past Upload-Length.")
        have += _append_what_arrives(partial, stream)
        if have < length:
            return have, False
        if sha256_file(partial) != sha256:
            partial.unlink()
            raise ApiError(422, "hash_mismatch", "The bytes do not match their sha256; send again.")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
    _received(db, sha256, length, final)
    return have, True


@contextmanager
def _upload_lock(sha256: str) -> Iterator[None]:
    """An exclusive lock for uploads of this photo, across threads and worker processes
    (one lock file per first byte of the hash, so the files stay few; never backed up)."""
    locks = Path(current_app.config["INSTANCE_PATH"]) / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / sha256[:2], "a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ApiError(
                        503, "upload_busy", "This photo is being received; try again shortly."
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _received(db: Database, sha256: str, size: int, final: Path) -> None:
    with transaction(db):
        if db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", [sha256]).fetchone():
            return
        db.execute(
            "INSERT INTO blobs (sha256, size, received_at) VALUES (?, ?, ?)",
            [sha256, size, now_iso()],
        )
        # Trees awaiting this photo changed: the phones' next pull must say so.
        db.execute(
            """INSERT INTO change_log (village_id, entity, entity_id)
               SELECT DISTINCT h.village_id, 'tree', t.id FROM measurements m
               JOIN trees t ON t.id = m.tree_id JOIN households h ON h.id = t.household_id
               WHERE m.photo_sha256 = ?""",
            [sha256],
        )
        evidence.fingerprint(db, sha256, final)  # a re-encoded copy of another tree's?


def _append_what_arrives(partial: Path, stream: IO[bytes]) -> int:
    """Append the body to the partial file as it arrives; keep what came if the link drops."""
    written = 0
    with open(partial, "ab") as handle:
        try:
            while piece := stream.read(1 << 14):
                handle.write(piece)
                written += len(piece)
        except ClientDisconnected:
            pass  # the phone will ask where we are (HEAD) and go on from there
        finally:
            handle.flush()
            os.fsync(handle.fileno())
    return written


def store(db: Database, data: bytes, received_at: str | None = None) -> str:
    """Keep a photo's bytes under their sha256, as a finished upload does; returns the sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    path = blob_paths(sha256)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    db.execute(
        "INSERT OR IGNORE INTO blobs (sha256, size, received_at) VALUES (?, ?, ?)",
        [sha256, len(data), received_at or now_iso()],
    )
    return sha256


def small_jpeg(sha256: str, side: int = 800) -> Response:
    """The stored photo `sha256` as a fresh JPEG at most `side` px, or a 404 JSON error."""
    path = blob_paths(sha256)[0]
    if not path.exists():
        raise ApiError(404, "not_found", "照片还在上传中。")
    try:
        with Image.open(path) as original:
            picture = ImageOps.exif_transpose(original).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ApiError(404, "not_found", "照片无法显示。") from error
    picture.thumbnail((side, side))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)  # written fresh: no EXIF, no location
    return Response(
        out.getvalue(), mimetype="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}
    )
