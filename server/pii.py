"""Personal data at rest: AES-256-GCM encryption, blind indexes, and masking for display.

Ciphertexts are bound to the row and field they belong to (associated data), so a value
copied into another household or column fails to decrypt.
"""

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

VERSION = "v1"


def _key() -> bytes:
    return bytes.fromhex(current_app.config["PII_KEY"])


def encrypt(value: str | None, context: str) -> str | None:
    """Encrypt `value` for the place named by `context` (e.g. `household:<code>:phone`)."""
    if value is None:
        return None
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, value.encode(), context.encode())
    return f"{VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt(token: str | None, context: str) -> str | None:
    """Decrypt a value written by `encrypt` for the same context."""
    return decrypt_with_key(current_app.config["PII_KEY"], token, context)


def decrypt_with_key(key_hex: str, token: str | None, context: str) -> str | None:
    """`decrypt` with the key given (outside a request: reconcile, backups)."""
    if token is None:
        return None
    version, _, payload = token.partition(":")
    if version != VERSION:
        raise ValueError(f"unknown PII format {version!r}")
    raw = base64.b64decode(payload)
    return AESGCM(bytes.fromhex(key_hex)).decrypt(raw[:12], raw[12:], context.encode()).decode()


def blind_index(value: str, purpose: str) -> str:
    """A keyed hash that finds equal values (duplicates) without storing them."""
    key = hmac.new(_key(), f"blind-index:{purpose}".encode(), hashlib.sha256).digest()
    return hmac.new(key, value.strip().upper().encode(), hashlib.sha256).hexdigest()


def mask_name(name: str) -> str:
    """张三丰 → 张*丰, 张三 → 张*."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_tail(value: str | None, keep: int = 4) -> str | None:
    """Show only the last `keep` characters: 13800001234 → *******1234."""
    if value is None:
        return None
    digits = value.replace(" ", "")
    return "*" * max(len(digits) - keep, 0) + digits[-keep:]


def mask_phone(value: str | None) -> str | None:
    """A phone shown by its first 3 digits only: 13812345678 → 138********. Never the last 4:
    they are the door plate's second factor."""
    if value is None:
        return None
    digits = value.replace(" ", "")
    return digits[:3] + "*" * max(len(digits) - 3, 0)


def phone_mask_for_view(masked: str | None) -> str | None:
    """A stored phone mask as views show it: masks stored before `mask_phone` kept the last
    4 digits (the plate's second factor), so those are shown as stars only."""
    if masked is None or masked[:1] != "*":
        return masked
    return "*" * len(masked)
