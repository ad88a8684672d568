"""Household codes (一户一码): `<12-digit village code>-<4-digit seq>-<2 check characters>`.

The first check character is a keyed MAC (a per-county secret and the plate's number), so a
plate cannot be made up without the key and a replaced plate stops verifying. The second is
a weighted checksum over everything before it (mod 31, distinct non-zero weights), so every
single-character change and every swap of two neighbouring characters is caught, key or no
key. The QR on the door plate holds an upper-case URL so it encodes in QR alphanumeric mode.
"""

import hashlib
import hmac
import re

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O or U
CHECK_SYMBOLS = ALPHABET[:31]  # mod 31: a prime, so every single change shows
CODE_PATTERN = re.compile(r"^(\d{12})-(\d{4})-([0-9A-Z]{2})$")
MAX_SEQ = 9999


class InvalidCode(ValueError):
    """A household code that is malformed or whose check does not match."""


def county_secret(master_key: bytes, county_code: str) -> bytes:
    """The per-county secret, derived from the instance's master code key."""
    return hmac.new(master_key, f"household-code:{county_code}".encode(), hashlib.sha256).digest()


def _mac_symbol(secret: bytes, village_code: str, seq: int, plate: int) -> str:
    digest = hmac.new(secret, f"{village_code}-{seq:04d}-{plate}".encode(), hashlib.sha256)
    return CHECK_SYMBOLS[int.from_bytes(digest.digest()[:4], "big") % 31]


def checksum_symbol(body: str) -> str:
    """The symbol that makes Σ (position + 1) × value ≡ 0 (mod 31) over body + symbol."""
    values = [ALPHABET.index(char) for char in body.replace("-", "")]
    total = sum((position + 1) * value for position, value in enumerate(values))
    weight = len(values) + 1
    # weight × symbol ≡ −total (mod 31); weight < 31, so its inverse exists
    return CHECK_SYMBOLS[(-total * pow(weight, -1, 31)) % 31]


def make_code(secret: bytes, village_code: str, seq: int, plate: int = 1) -> str:
    """The code on plate number `plate` of a village's household number `seq` (1–9999)."""
    if not (len(village_code) == 12 and village_code.isdigit() and 1 <= seq <= MAX_SEQ):
        raise ValueError(f"cannot make a code for village {village_code!r}, seq {seq!r}")
    body = f"{village_code}-{seq:04d}-{_mac_symbol(secret, village_code, seq, plate)}"
    return body + checksum_symbol(body)


def parse_code(code: str) -> tuple[str, int, str]:
    """Split a code (any case, surrounding spaces ignored) into village code, seq and check."""
    match = CODE_PATTERN.match(code.strip().upper())
    if match is None:
        raise InvalidCode(f"not a household code: {code[:40]!r}")
    return match.group(1), int(match.group(2)), match.group(3)


def is_well_formed(code: str) -> bool:
    """Whether the checksum holds: catches typos without the key (e.g. on a phone)."""
    try:
        village_code, seq, check = parse_code(code)
    except InvalidCode:
        return False
    if seq < 1 or check[0] not in CHECK_SYMBOLS:
        return False
    return checksum_symbol(f"{village_code}-{seq:04d}-{check[0]}") == check[1]


def verify_code(secret: bytes, code: str, plate: int = 1) -> str:
    """The normalised code if it is the valid code of plate `plate`, else InvalidCode."""
    village_code, seq, check = parse_code(code)
    if not is_well_formed(code):
        raise InvalidCode("the check characters do not match: a typo or a damaged plate")
    if not hmac.compare_digest(check[0], _mac_symbol(secret, village_code, seq, plate)):
        raise InvalidCode("this plate was not issued by Sipang, or has been replaced")
    return f"{village_code}-{seq:04d}-{check}"


def plate_url(base_url: str, code: str) -> str:
    """The door plate's QR content, e.g. `HTTPS://SIPANG.CN/H/360423101201-0042-K7`."""
    return f"{base_url.rstrip('/')}/H/{code}".upper()


TAG_PATTERN = re.compile(r"^(\d{12})-T(\d{5})-([0-9A-Z])$")


def make_tag(village_code: str, number: int) -> str:
    """A pre-printed tree tag id, e.g. `360423101201-T00017-4` (the last symbol a checksum)."""
    if not (len(village_code) == 12 and village_code.isdigit() and 1 <= number <= 99_999):
        raise ValueError(f"cannot make tag {number!r} for village {village_code!r}")
    body = f"{village_code}-T{number:05d}"
    return f"{body}-{checksum_symbol(body)}"


def is_tag(text: str) -> bool:
    """Whether text is a well-formed tree tag (its checksum holds)."""
    match = TAG_PATTERN.match(text.strip().upper())
    return bool(match) and checksum_symbol(f"{match.group(1)}-T{match.group(2)}") == match.group(3)


def tag_url(base_url: str, tag: str) -> str:
    """A tree tag's QR content, e.g. `HTTPS://SIPANG.CN/T/360423101201-T00017-4`."""
    return f"{base_url.rstrip('/')}/T/{tag}".upper()
