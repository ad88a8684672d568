"""Household codes: format, keyed check characters, plate URLs."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from village_kits import codes
from village_kits.personal_data import (
    id_check_character,
    is_bank_card,
    is_id_number,
    is_mobile_phone,
    luhn_check_digit,
)

SECRET = codes.county_secret(b"k" * 32, "360423")
villages = st.from_regex(r"\A360423[0-9]{6}\Z")
seqs = st.integers(min_value=1, max_value=9999)


@given(villages, seqs)
def test_codes_round_trip_and_match_the_format(village, seq):
    code = codes.make_code(SECRET, village, seq)
    assert re.fullmatch(r"\d{12}-\d{4}-[0-9A-HJKMNP-TV-Z]{2}", code)
    assert codes.verify_code(SECRET, code) == code
    assert codes.verify_code(SECRET, f"  {code.lower()} ") == code


@given(villages, seqs, st.integers(min_value=0, max_value=1), st.sampled_from(codes.ALPHABET))
def test_a_changed_check_character_is_refused(village, seq, position, replacement):
    code = codes.make_code(SECRET, village, seq)
    index = len(code) - 2 + position
    forged = code[:index] + replacement + code[index + 1 :]
    if forged != code:
        with pytest.raises(codes.InvalidCode):
            codes.verify_code(SECRET, forged)


@given(villages, seqs, st.data())
def test_every_single_character_change_is_caught_without_the_key(village, seq, data):
    code = codes.make_code(SECRET, village, seq)
    positions = [i for i, char in enumerate(code) if char != "-"]
    for index in positions:
        for replacement in codes.ALPHABET:
            changed = code[:index] + replacement + code[index + 1 :]
            if changed != code:
                assert not codes.is_well_formed(changed), changed
                with pytest.raises(codes.InvalidCode):
                    codes.verify_code(SECRET, changed)
    index = data.draw(st.sampled_from(positions[:-1]))
    swapped = code[:index] + code[index + 1] + code[index] + code[index + 2 :]
    if swapped != code and "-" not in swapped[index : index + 2]:
        assert not codes.is_well_formed(swapped), swapped  # neighbours swapped


def test_a_replaced_plate_no_longer_verifies():
    first_plate = codes.make_code(SECRET, "360423101201", 42, plate=1)
    second_plate = codes.make_code(SECRET, "360423101201", 42, plate=2)
    if first_plate != second_plate:
        assert codes.verify_code(SECRET, second_plate, plate=2) == second_plate
        with pytest.raises(codes.InvalidCode):
            codes.verify_code(SECRET, first_plate, plate=2)


def test_codes_made_with_another_key_do_not_verify():
    forger = codes.county_secret(b"x" * 32, "360423")
    accepted = 0
    for seq in range(1, 1001):
        try:
            codes.verify_code(SECRET, codes.make_code(forger, "360423101201", seq))
            accepted += 1
        except codes.InvalidCode:
            pass
    assert accepted < 60  # the keyed character: about one guess in 31 gets through


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "360423101201-0042",
        "36042310120-0042-K7",
        "360423101201-0000-K7",
        "360423101201-0042-KI",
        "x" * 500,
    ],
)
def test_malformed_codes_are_refused(bad):
    with pytest.raises(codes.InvalidCode):
        codes.verify_code(SECRET, bad)


def test_plate_url_is_qr_alphanumeric():
    url = codes.plate_url("https://sipang.example.cn", "360423101201-0042-K7")
    assert url == "HTTPS://SIPANG.EXAMPLE.CN/H/360423101201-0042-K7"
    assert re.fullmatch(r"[0-9A-Z $%*+\-./:]+", url)


def test_personal_data_checks():
    assert is_mobile_phone("139 1234 5678") and not is_mobile_phone("12912345678")
    assert is_id_number("11010519491231002X") and not is_id_number("110105194912310021")
    assert id_check_character("11010519491231002") == "X"
    card = "622202020011234567"
    assert is_bank_card(card + luhn_check_digit(card))
    assert not is_bank_card(card + str((int(luhn_check_digit(card)) + 1) % 10))
