"""QR codes for plates, tags and enrolment: alphanumeric mode, level Q, small versions."""

import qrcode
from qrcode.constants import ERROR_CORRECT_Q

MAX_VERSION = 3
ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


class QrTooLarge(ValueError):
    """The content does not fit the QR version a 2.5 cm plate can carry."""


def qr_matrix(content: str, max_version: int = MAX_VERSION) -> list[list[bool]]:
    """Dark/light modules (with the 4-module quiet zone) of `content` at level Q."""
    if not set(content) <= ALPHANUMERIC:
        raise ValueError(f"not QR alphanumeric (use upper case): {content!r}")
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, border=4)
    code.add_data(content)
    code.make(fit=True)
    if code.version > max_version:
        raise QrTooLarge(
            f"{content!r} needs QR version {code.version}; at most "
            f"{max_version} fits a plate: shorten the public address"
        )
    return code.get_matrix()
