"""The server's VAPID key pair (RFC 8292): made on first run, kept in the instance folder."""

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid, b64urlencode

KEY_FILE = "vapid_private.pem"


def load_or_create(instance: str | Path) -> Vapid:
    """The instance's VAPID key, generated (mode 0600) the first time it is needed."""
    path = Path(instance) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        vapid = Vapid()
        vapid.generate_keys()
        pem = vapid.private_pem()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    return Vapid.from_pem(path.read_bytes())


def public_key(vapid: Vapid) -> str:
    """The applicationServerKey a browser subscribes with: the raw P-256 point, base64url."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(raw)
