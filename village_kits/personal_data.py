"""Checks for the personal data on a household roster: phone, ID number, bank card."""

import re

_PHONE = re.compile(r"^1[3-9]\d{9}$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def normalise_digits(value: str) -> str:
    """Drop spaces and dashes people type into numbers."""
    return re.sub(r"[\s-]", "", value)


def is_mobile_phone(value: str) -> bool:
    """A mainland mobile number: 11 digits starting 13–19."""
    return bool(_PHONE.match(normalise_digits(value)))


def is_id_number(value: str) -> bool:
    """An 18-character resident ID number whose GB 11643 check character is right."""
    value = normalise_digits(value).upper()
    if not re.fullmatch(r"\d{17}[\dX]", value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17]


def id_check_character(first17: str) -> str:
    """The check character that completes 17 ID-number digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def is_bank_card(value: str) -> bool:
    """A 12–19 digit card number passing the Luhn check."""
    digits = normalise_digits(value)
    if not re.fullmatch(r"\d{12,19}", digits):
        return False
    return luhn_sum(digits) % 10 == 0


def luhn_sum(digits: str) -> int:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` pass the Luhn check."""
    return str((10 - luhn_sum(partial + "0") % 10) % 10)
