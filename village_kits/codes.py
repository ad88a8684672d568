"""Household codes: `<12-digit village code>-<4-digit seq>-<2-character keyed check>`.

The check is a keyed MAC (per-county secret), so a mistyped or forged plate is caught. The QR
on the door plate holds an upper-case URL so it encodes in QR alphanumeric mode.
"""

import hashlib
import hmac
import re

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O or U
CODE_PATTERN = re.compile(r"^(\d{12})-(\d{4})-([0-9A-Z]{2})$")


class InvalidCode(ValueError):
    """A household code that is malformed or whose check does not match."""


def county_secret(master_key: bytes, county_code: str) -> bytes:
    """The per-county secret, derived from the instance's master code key."""
    return hmac.new(master_key, f"household-code:{county_code}".encode(), hashlib.sha256).digest()


def check_characters(secret: bytes, village_code: str, seq: int) -> str:
    digest = hmac.new(secret, f"{village_code}-{seq:04d}".encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest[:2], "big") >> 6  # 10 bits
    return ALPHABET[value >> 5] + ALPHABET[value & 31]


def make_code(secret: bytes, village_code: str, seq: int) -> str:
    """The household code for a village's household number `seq` (1–9999)."""
    if not (len(village_code) == 12 and village_code.isdigit() and 1 <= seq <= 9999):
        raise ValueError(f"cannot make a code for village {village_code!r}, seq {seq!r}")
    return f"{village_code}-{seq:04d}-{check_characters(secret, village_code, seq)}"


def parse_code(code: str) -> tuple[str, int, str]:
    """Split a (case-insensitive) code into village code, seq and check; no key needed."""
    match = CODE_PATTERN.match(code.strip().upper())
    if match is None:
        raise InvalidCode(f"not a household code: {code[:40]!r}")
    return match.group(1), int(match.group(2)), match.group(3)


def verify_code(secret: bytes, code: str) -> str:
    """The normalised code if its check matches, else InvalidCode."""
    village_code, seq, check = parse_code(code)
    if seq == 0 or not hmac.compare_digest(check, check_characters(secret, village_code, seq)):
        raise InvalidCode("the check characters do not match: a typo or a forged plate")
    return f"{village_code}-{seq:04d}-{check}"


def plate_url(base_url: str, code: str) -> str:
    """The door plate's QR content, e.g. `HTTPS://HOST/H/360423101201-0042-K7`."""
    return f"{base_url.rstrip('/')}/H/{code}".upper()
