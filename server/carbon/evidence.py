"""Tree photos as evidence: a photo counts only once its bytes are stored under their
sha256, and a photo used for one tree is not evidence for another (byte for byte, or
re-encoded: a 64-bit difference hash)."""

from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlite_utils import Database

from server.carbon import rules
from server.carbon.flags import write_flags
from server.carbon.plausibility import photo_flags
from server.clock import now_iso
from server.db import first


def difference_hash(path: Path) -> int:
    """dHash: 9×8 grey thumbnail, one bit per horizontal neighbour pair (signed 64-bit)."""
    with Image.open(path) as image:
        small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
        pixels = small.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            left, right = pixels[row * 9 + col], pixels[row * 9 + col + 1]
            bits = (bits << 1) | (left > right)
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def _bits_apart(a: int, b: int) -> int:
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def stored(db: Database, sha256: str | None) -> bool:
    """Whether the photo's bytes arrived and matched their hash."""
    return bool(sha256) and first(db, "SELECT 1 FROM blobs WHERE sha256 = ?", [sha256]) is not None


def reused_on(db: Database, sha256: str, tree_id: str) -> list[dict[str, Any]]:
    """Other trees whose measurements carry this exact photo."""
    return list(
        db.query(
            "SELECT DISTINCT tree_id FROM measurements WHERE photo_sha256 = ? AND tree_id != ?",
            [sha256, tree_id],
        )
    )


def similar_on(db: Database, sha256: str, tree_id: str, village_id: int) -> list[dict]:
    """Other trees of the village whose photo is this one re-encoded."""
    mine = first(db, "SELECT dhash FROM photo_fingerprints WHERE sha256 = ?", [sha256])
    if mine is None:
        return []
    rows = db.query(
        """SELECT DISTINCT m.tree_id, f.dhash FROM photo_fingerprints f
           JOIN measurements m ON m.photo_sha256 = f.sha256
           JOIN trees t ON t.id = m.tree_id JOIN households h ON h.id = t.household_id
           WHERE h.village_id = ? AND m.tree_id != ? AND f.sha256 != ?""",
        [village_id, tree_id, sha256],
    )
    return [
        {"tree_id": r["tree_id"]}
        for r in rows
        if _bits_apart(r["dhash"], mine["dhash"]) <= rules.SIMILAR_PHOTO_BITS
    ]


def fingerprint(db: Database, sha256: str, path: Path) -> None:
    """Record a newly stored photo's difference hash, and flag the measurements that use it
    when it is another tree's photo re-encoded (inside the caller's transaction)."""
    if first(db, "SELECT 1 FROM photo_fingerprints WHERE sha256 = ?", [sha256]):
        return
    try:
        dhash = difference_hash(path)
    except (UnidentifiedImageError, OSError, ValueError):
        return  # not an image: it can never count as a photo of a tree
    db["photo_fingerprints"].insert({"sha256": sha256, "dhash": dhash, "computed_at": now_iso()})
    users = db.query(
        """SELECT m.id, m.tree_id, h.village_id FROM measurements m
           JOIN trees t ON t.id = m.tree_id JOIN households h ON h.id = t.household_id
           WHERE m.photo_sha256 = ?""",
        [sha256],
    )
    for measurement in list(users):
        similar = similar_on(db, sha256, measurement["tree_id"], measurement["village_id"])
        if similar:
            write_flags(db, measurement, photo_flags([], similar))
