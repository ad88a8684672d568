"""Every setting Sipang reads, declared once with its default and help text.

Each setting can be given to `create_app(test_config)` or, for deployment, in the
environment as `SIPANG_<NAME>` (numbers and booleans are read as JSON, the rest as text).
"""

from dataclasses import dataclass
from typing import Any

from server.provider_settings import PROVIDER_SETTINGS


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
        "Signs session cookies and CSRF tokens. Generated into the instance folder "
        "(`secret_key`) on first run when not given; kept there from then on.",
    ),
    Setting(
        "PASSWORD_HASH_TIME_COST",
        3,
        "Argon2id passes over memory for a new password hash (with PASSWORD_HASH_MEMORY_KIB: "
        "RFC 9106's second recommended option, argon2-cffi's default). A stored hash is "
        "verified at the cost it records.",
    ),
    Setting(
        "PASSWORD_HASH_MEMORY_KIB",
        65536,
        "Argon2id memory in KiB for a new password hash (64 MiB).",
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
        "Password attempts allowed per client address (every attempt), and wrong passwords "
        "per account from one address: a guesser is locked out of that account, its owner at "
        "another address is not.",
    ),
    Setting(
        "SOCKETIO_MESSAGE_QUEUE",
        None,
        "Redis URL (redis://host:port/db) through which several server processes of one site "
        "pass Socket.IO events, so a dashboard hears what another process announced; unset "
        "for one process.",
    ),
    Setting(
        "RATELIMIT_STORAGE_URI",
        "memory://",
        "Where rate-limit counters live; with several server processes use the site's Redis "
        "(redis://host:port/db), so each limit counts every process's requests.",
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
        "CHAIN_WORKER",
        True,
        "Whether `sipang serve` runs the chain worker; without CHAIN_RPC it also starts a local "
        "anvil kept in the instance folder. Set false when `sipang chain work` runs instead "
        "(one worker per signing key).",
    ),
    Setting(
        "CHAIN_KEY",
        None,
        "Hex private key that signs ledger transactions on CHAIN_RPC (give it in the "
        "environment, never in a file in the repository); see also CHAIN_KEYSTORE.",
    ),
    Setting(
        "CHAIN_KEYSTORE",
        None,
        "Path of an encrypted eth-account keystore file holding the signing key, used when "
        "CHAIN_KEY is not given; its password comes from CHAIN_KEYSTORE_PASSWORD.",
    ),
    Setting(
        "CHAIN_KEYSTORE_PASSWORD",
        None,
        "Password of CHAIN_KEYSTORE; give it in the environment.",
    ),
    Setting(
        "CHAIN_CONTRACT",
        None,
        "Address of the deployed ledger contract on CHAIN_RPC; unset means deploy it on first "
        "use and record the deployment in the database.",
    ),
    Setting(
        "CHAIN_BATCH_SIZE",
        64,
        "Most outbox rows of one kind sent in one batch transaction (the contract takes 128).",
    ),
    Setting(
        "CHAIN_RECEIPT_TIMEOUT",
        30,
        "Seconds the chain worker waits for a transaction's receipt before leaving it to the "
        "next round.",
    ),
    Setting(
        "CHAIN_RETRY_MAX_SECONDS",
        300,
        "Longest full-jitter backoff of the chain worker after a node or network error "
        "(it starts at 2 seconds and doubles).",
    ),
    Setting(
        "AUDIT_ANCHOR_SECONDS",
        600,
        "How often the chain worker anchors the audit log's newest entry on the ledger (when "
        "it changed), so deleted or re-chained audit rows show in `sipang reconcile`.",
    ),
    Setting(
        "ORDER_RATE_LIMIT",
        "120 per minute",
        "Orders (API and buy form together) allowed per client address; a village office "
        "or company behind one address shares it.",
    ),
    Setting(
        "ORDER_RESERVATION_SECONDS",
        900,
        "How long an order's reserved tonnes wait for payment before they go back on sale.",
    ),
    Setting(
        "PAYOUT_MIN_TRANSFER_FEN",
        100,
        "The smallest transfer to a household, in fen (100 = ¥1); smaller amounts owed carry "
        "forward to a later T+1 batch.",
    ),
    Setting(
        "MAX_RETURN_FILE_BYTES",
        16 * 1024 * 1024,
        "Largest bank return file (CSV or XLSX) finance may upload, in bytes.",
    ),
    Setting(
        "PAYMENT_WEBHOOK_TOLERANCE_SECONDS",
        300,
        "How far a payment webhook's signed timestamp may be from the server clock.",
    ),
    Setting(
        "TESTPAY_ENABLED",
        False,
        "Accept webhooks from the `testpay` test payment provider (for tests and demos only).",
    ),
    Setting(
        "TESTPAY_SECRET",
        None,
        "HMAC secret of the `testpay` provider; generated into the instance folder as "
        "`testpay.key` at start when the provider is on and this is not given.",
    ),
    Setting(
        "PUSH_WORKER",
        True,
        "Whether `sipang serve` runs the Web Push worker thread; set false when "
        "`sipang push work` runs instead (from cron with `--once`, or as its own process).",
    ),
    Setting(
        "PUSH_CONTACT",
        "mailto:push@localhost",
        "The VAPID `sub` claim push services may use to reach the operator: a `mailto:` or "
        "`https:` URL. Set a real address in production.",
    ),
    Setting(
        "PUSH_TIMEOUT_SECONDS",
        10,
        "How long the push worker waits for a push service to answer one message.",
    ),
    Setting(
        "PUSH_RETRY_MAX_SECONDS",
        3600,
        "Longest full-jitter backoff before a push is retried after a 5xx, 429 or network "
        "error (it starts at 10 seconds and doubles; Retry-After is honoured).",
    ),
    Setting(
        "PUSH_MAX_ATTEMPTS",
        8,
        "Attempts before a push message is given up as failed.",
    ),
    Setting(
        "PUSH_QUIET_HOURS",
        "21:00-07:00",
        "Farmers' default quiet hours in county time (Asia/Shanghai), `HH:MM-HH:MM`; their "
        "notices wait until the hours end. Each subscription may set its own; empty for none.",
    ),
    Setting(
        "PUSH_HOUSEHOLD_TOKEN_SECONDS",
        3600,
        "How long the push token a farmer gets after the household's second factor lets "
        "that browser subscribe to the household's notices.",
    ),
    Setting(
        "PUSH_ALLOW_HTTP_ENDPOINTS",
        False,
        "Accept plain-http push endpoints on loopback addresses, and send to them (tests and "
        "local push services only); otherwise endpoints must be https to a public host.",
    ),
    Setting(
        "FARMER_UNLOCK_RATE_LIMIT",
        "10 per minute",
        "Attempts at a household's second factor (last 4 phone digits) allowed per client "
        "address, right or wrong.",
    ),
    Setting(
        "FARMER_UNLOCK_LOCKOUT",
        "5 per 15 minutes",
        "Wrong second-factor answers a household's plate accepts (from any address) before it "
        "is locked for the rest of the window; each lockout is written to the audit log.",
    ),
    Setting(
        "FARMER_UNLOCK_DAILY",
        "20 per day",
        "Wrong second-factor answers a household accepts in a day from all addresses together; "
        "bounds guessing whatever the number of addresses (10,000 codes would take years).",
    ),
    Setting(
        "PROXY_HOPS",
        0,
        "How many reverse proxies (nginx) stand in front of the app; the client address, "
        "scheme and host are read from that many X-Forwarded-* entries and no more. 0 when "
        "clients connect directly; 1 behind deploy/nginx.conf.",
    ),
    Setting(
        "HSTS_SECONDS",
        0,
        "max-age of the Strict-Transport-Security header sent on HTTPS requests; 0 sends none. "
        "Set e.g. 31536000 in production behind TLS.",
    ),
    Setting(
        "FARMER_UNLOCK_MINUTES",
        10,
        "How long a browser that passed a household's second factor sees its payments.",
    ),
    Setting(
        "ORDER_BANK_RESERVATION_SECONDS",
        3 * 24 * 3600,
        "How long tonnes stay reserved once a buyer chooses a bank or digital-RMB transfer "
        "(long enough to make one; finance confirms it on /finance/payments).",
    ),
    Setting(
        "BUYER_CODE_RATE_LIMIT",
        "5 per hour",
        "One-time codes for 我的证书 sent to one phone number (and, separately, asked for from "
        "one client address) in the window.",
    ),
    Setting(
        "BUYER_CODE_SECONDS",
        600,
        "How long a 我的证书 one-time code is valid; five wrong answers void it.",
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        "Log level of the server's own log lines (personal data is never logged).",
    ),
    Setting(
        "MAP_TILE_URL",
        None,
        "The county's map tile service, as a URL template with `{z}`, `{x}` and `{y}` "
        "(e.g. `https://tiles.example.gov.cn/{z}/{x}/{y}.png`). When set, the village map, the "
        "door plate's map and the bureau's map are drawn over its tiles (fetched by the server, "
        "kept in the instance folder, served from `/app/tiles/`); unset, maps are drawn from "
        "coordinates alone.",
    ),
) + tuple(Setting(*entry) for entry in PROVIDER_SETTINGS)


def defaults() -> dict[str, Any]:
    """Every setting's default, keyed by name."""
    return {setting.name: setting.default for setting in SETTINGS}
