"""Push subscriptions: checked strictly (endpoint, P-256 key, auth secret), stored per owner
with the kinds the subscriber wants and, for farmers, their quiet hours."""

import base64
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from sqlite_utils import Database

from server import audit
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.push.kinds import KINDS, OWNER_KINDS

MAX_PER_OWNER = 20
B64URL = "^[A-Za-z0-9_-]+={0,2}$"
CLOCK = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
OWNER_FIELDS = {
    "household": {"type": "string", "maxLength": 40, "description": "household code"},
    "token": {
        "type": "string",
        "maxLength": 400,
        "description": "the household's push token, given after its second factor",
    },
    "order": {"type": "string", "minLength": 20, "maxLength": 64, "description": "order id"},
}
SUBSCRIBE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subscription"],
    "properties": {
        "subscription": {
            "type": "object",
            "additionalProperties": False,
            "required": ["endpoint", "keys"],
            "properties": {
                "endpoint": {"type": "string", "minLength": 12, "maxLength": 1024},
                "expirationTime": {"type": ["number", "null"]},
                "keys": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["p256dh", "auth"],
                    "properties": {
                        "p256dh": {"type": "string", "maxLength": 100, "pattern": B64URL},
                        "auth": {"type": "string", "maxLength": 30, "pattern": B64URL},
                    },
                },
            },
        },
        "kinds": {
            "type": "array",
            "items": {"enum": sorted(KINDS)},
            "uniqueItems": True,
            "minItems": 1,
            "maxItems": len(KINDS),
            "description": "the kinds wanted; all of the owner's kinds when left out",
        },
        "quiet_hours": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["start", "end"],
            "properties": {"start": CLOCK, "end": CLOCK},
            "description": "households only: held until `end` (county time); null for none",
        },
    }
    | OWNER_FIELDS,
    "example": {
        "subscription": {
            "endpoint": "https://push.example.net/send/abc123",
            "keys": {
                "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u"
                "-Ts1XbjhazAkj7I99e8QcYP7DkM",
                "auth": "tBHItJI5svbpez7KI4CCXg",
            },
        },
        "kinds": ["certificate_ready"],
        "order": "Gq0c2yD3Lr6cJ5m1bWkQq2Zt",
    },
}
UNSUBSCRIBE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["endpoint"],
    "properties": {"endpoint": {"type": "string", "minLength": 12, "maxLength": 1024}}
    | OWNER_FIELDS,
    "example": {
        "endpoint": "https://push.example.net/send/abc123",
        "order": "Gq0c2yD3Lr6cJ5m1bWkQq2Zt",
    },
}


def _problem(field: str, problem: str) -> ApiError:
    return ApiError(
        422,
        "validation_failed",
        "The body does not match the schema.",
        [{"field": field, "problem": problem}],
    )


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def check_endpoint(url: str, allow_loopback_http: bool) -> str:
    """A push service URL: https to a public host (http to loopback only when allowed)."""
    field = "subscription/endpoint"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as error:
        raise _problem(field, "is not a URL") from error
    if parts.username or parts.password or not host or parts.fragment:
        raise _problem(field, "must be a plain https URL")
    if any(ord(char) < 33 for char in url):
        raise _problem(field, "contains spaces or control characters")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if parts.scheme == "http" and loopback and allow_loopback_http:
        return url
    if parts.scheme != "https":
        raise _problem(field, "must use https")
    if loopback or (address is not None and not address.is_global):
        raise _problem(field, "must name a public push service")
    return url


def check_keys(keys: dict[str, str]) -> tuple[str, str]:
    """The subscription's P-256 public key (65 bytes, on the curve) and 16-byte auth secret,
    as unpadded base64url."""
    p256dh, auth = _decode(keys["p256dh"]), _decode(keys["auth"])
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        if len(p256dh) != 65:
            raise ValueError
    except ValueError as error:
        raise _problem("subscription/keys/p256dh", "is not an uncompressed P-256 point") from error
    if len(auth) != 16:
        raise _problem("subscription/keys/auth", "must be 16 bytes")
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return encode(p256dh), encode(auth)


def parse_quiet_hours(text: str | None) -> tuple[str | None, str | None]:
    """`HH:MM-HH:MM` (the PUSH_QUIET_HOURS setting) as (start, end); (None, None) if empty."""
    if not text:
        return None, None
    found = re.fullmatch(
        r"\s*((?:[01]\d|2[0-3]):[0-5]\d)\s*-\s*((?:[01]\d|2[0-3]):[0-5]\d)\s*", text
    )
    if found is None or found[1] == found[2]:
        raise ValueError(f"PUSH_QUIET_HOURS must look like 21:00-07:00, not {text!r}")
    return found[1], found[2]


def check_kinds(owner_type: str, kinds: list[str] | None) -> list[str]:
    allowed = OWNER_KINDS[owner_type]
    if kinds is None:
        return list(allowed)
    wrong = [kind for kind in kinds if kind not in allowed]
    if wrong:
        raise _problem("kinds", f"{', '.join(wrong)} is not sent to a {owner_type}")
    return kinds


def save(
    db: Database,
    owner: tuple[str, str],
    data: dict[str, Any],
    *,
    allow_loopback_http: bool,
    default_quiet_hours: str | None,
) -> tuple[dict[str, Any], bool]:
    """Store a subscription, or update the kinds and quiet hours of the same one; returns
    (row, created)."""
    owner_type, owner_id = owner
    sub = data["subscription"]
    endpoint = check_endpoint(sub["endpoint"], allow_loopback_http)
    p256dh, auth = check_keys(sub["keys"])
    kinds = check_kinds(owner_type, data.get("kinds"))
    quiet = data.get("quiet_hours", "default")
    if owner_type != "household":
        if quiet not in ("default", None):
            raise _problem("quiet_hours", "are for households only")
        quiet_start = quiet_end = None
    elif quiet == "default":
        quiet_start, quiet_end = parse_quiet_hours(default_quiet_hours)
    elif quiet is None:
        quiet_start = quiet_end = None
    else:
        quiet_start, quiet_end = quiet["start"], quiet["end"]
        if quiet_start == quiet_end:
            raise _problem("quiet_hours", "start and end must differ")
    now = now_iso()
    values = {
        "p256dh": p256dh,
        "auth": auth,
        "kinds": json.dumps(kinds),
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "updated_at": now,
    }
    with transaction(db):
        existing = first(
            db,
            "SELECT id FROM push_subscriptions WHERE endpoint = ? AND owner_type = ? "
            "AND owner_id = ?",
            [endpoint, owner_type, owner_id],
        )
        if existing:
            db["push_subscriptions"].update(existing["id"], values)
            return get(db, existing["id"]), False
        count = db.execute(
            "SELECT count(*) FROM push_subscriptions WHERE owner_type = ? AND owner_id = ?",
            [owner_type, owner_id],
        ).fetchone()[0]
        if count >= MAX_PER_OWNER:
            raise ApiError(
                409,
                "too_many_subscriptions",
                f"At most {MAX_PER_OWNER} browsers may subscribe here; unsubscribe one first.",
            )
        row = values | {
            "owner_type": owner_type,
            "owner_id": owner_id,
            "endpoint": endpoint,
            "created_at": now,
        }
        sub_id = db["push_subscriptions"].insert(row).last_pk
        audit.record(
            db,
            "push.subscribed",
            f"{owner_type}:{owner_id}",
            {"subscription": sub_id, "kinds": kinds},
        )
    return get(db, sub_id), True


def remove(db: Database, owner: tuple[str, str], endpoint: str) -> int:
    """Delete the owner's subscription at `endpoint` (and its unsent messages); how many."""
    with transaction(db):
        gone = db.execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ? AND owner_type = ? AND owner_id = ?",
            [endpoint, *owner],
        ).rowcount
        if gone:
            audit.record(db, "push.unsubscribed", f"{owner[0]}:{owner[1]}")
    return gone


def get(db: Database, sub_id: int) -> dict[str, Any] | None:
    return first(db, "SELECT * FROM push_subscriptions WHERE id = ?", [sub_id])


def view(row: dict[str, Any]) -> dict[str, Any]:
    """A subscription as its owner sees it (no keys)."""
    quiet = {"start": row["quiet_start"], "end": row["quiet_end"]} if row["quiet_start"] else None
    return {
        "id": row["id"],
        "owner": row["owner_type"],
        "kinds": json.loads(row["kinds"]),
        "quiet_hours": quiet,
        "created_at": row["created_at"],
    }
