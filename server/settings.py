"""Every setting Sipang reads, declared once with its default and help text.

Each setting can be given to `create_app(test_config)` or, for deployment, in the
environment as `SIPANG_<NAME>` (values are parsed as JSON where they parse).
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "INSTANCE_PATH",
        "./instance",
        "Folder holding the database, generated secrets and keys (also `--instance`).",
    ),
    Setting(
        "SECRET_KEY",
        None,
        "Signs session cookies and CSRF tokens. Generated into the instance folder on first "
        "run when not given; the app refuses to start without one.",
    ),
    Setting(
        "PII_KEY",
        None,
        "32-byte key (hex) encrypting names, phones, ID and bank numbers at rest. Generated "
        "into the instance folder on first run when not given.",
    ),
    Setting(
        "CODE_KEY",
        None,
        "32-byte key (hex) from which each county's household-code secret is derived. "
        "Generated into the instance folder on first run when not given.",
    ),
    Setting(
        "AUDIT_KEY",
        None,
        "32-byte key (hex) keying the audit log's hash chain. Generated into the instance "
        "folder on first run when not given.",
    ),
    Setting(
        "DATABASE",
        None,
        "Path of the SQLite database file; defaults to `sipang.db` in the instance folder.",
    ),
    Setting(
        "MAX_CONTENT_LENGTH",
        1_048_576,
        "Largest request body in bytes; larger bodies get 413.",
    ),
    Setting(
        "MAX_ROSTER_BYTES",
        64 * 1024 * 1024,
        "Largest roster upload (CSV or XLSX) in bytes; a 100,000-household XLSX is about 8 MB.",
    ),
    Setting(
        "PUBLIC_BASE_URL",
        "http://127.0.0.1:5000",
        "Address printed in door-plate and tree-tag QR codes (upper-cased). Keep it short: a "
        "plate's URL must fit QR version 3 at level Q (47 characters).",
    ),
    Setting(
        "SESSION_COOKIE_SECURE",
        False,
        "Send the session cookie only over HTTPS; set true behind TLS in production.",
    ),
    Setting(
        "LOGIN_RATE_LIMIT",
        "10 per minute",
        "Password attempts allowed per client address, and separately per username.",
    ),
    Setting(
        "RATELIMIT_STORAGE_URI",
        "memory://",
        "Where rate-limit counters live; use a shared store (e.g. redis://) with several "
        "server processes.",
    ),
    Setting(
        "TOKEN_TTL_DAYS",
        30,
        "Lifetime of bearer tokens made from a password; device tokens last until revoked.",
    ),
    Setting(
        "ENROLMENT_CODE_TTL_HOURS",
        72,
        "How long a one-time device enrolment code stays valid.",
    ),
    Setting(
        "CHAIN_RPC",
        None,
        "JSON-RPC URL of the EVM node holding the ledger; unset means no chain is configured.",
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        "Log level of the server's own log lines (personal data is never logged).",
    ),
)


def defaults() -> dict[str, Any]:
    """Every setting's default, keyed by name."""
    return {setting.name: setting.default for setting in SETTINGS}
