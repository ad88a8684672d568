"""Tree photos: kept whole under their sha256, and shown on public pages re-encoded small,
with no metadata (no GPS, no camera)."""

import hashlib
import io

from flask import Response
from PIL import Image, ImageOps

from server.clock import now_iso
from server.errors import ApiError


def store(db, data: bytes, received_at: str | None = None) -> str:
    """Keep a photo's bytes under their sha256, as a finished upload does; returns the sha256."""
    from server.sync_api import blob_paths

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
    from server.sync_api import blob_paths

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
