"""Personal data: encrypted at rest, never logged, masked in every view, each reveal audited."""

import hashlib
import json
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import BANK, ID_NUMBER, PHONE, bearer
from cryptography.exceptions import InvalidTag

from server import create_app, households, pii
from server.audit import audit_key, verify_chain
from server.db import get_db
from village_kits.personal_data import id_check_character, luhn_check_digit

# Two more households, registered through the API with the numbers typed as people type them.
OTHER_ID = "36042319800101123" + id_check_character("36042319800101123")
OTHER_BANK = "621700000012345" + luhn_check_digit("621700000012345")
OTHER_PHONE = "18679001234"
SPACED_PHONE = f"{PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}"
DASHED_BANK = "-".join(BANK[i : i + 4] for i in range(0, len(BANK), 4))
SEEDED_NAME = "张三丰"
NEW_HOUSEHOLDS = [
    {
        "head_name": "欧阳明月",
        "phone": SPACED_PHONE,
        "id_number": OTHER_ID.lower(),
        "bank_account": DASHED_BANK,
        "consent_date": "2026-03-02",
    },
    {"head_name": "司马光", "phone": OTHER_PHONE, "bank_account": OTHER_BANK},
]
NAMES = [SEEDED_NAME, "欧阳明月", "司马光"]
NUMBERS = [PHONE, BANK, ID_NUMBER, OTHER_ID, OTHER_BANK, OTHER_PHONE, SPACED_PHONE, DASHED_BANK]


def secrets_as_text() -> set[str]:
    """Every spelling of the personal data that must not be found: as typed, digits only, ..."""
    found = set(NAMES)
    for number in NUMBERS:
        found |= {number, number.lower(), re.sub(r"\D", "", number)}
    return found


def needles() -> dict[str, bytes]:
    """The same as bytes, in every encoding a database or log file might hold them in."""
    return {
        f"{text!r} ({encoding})": text.encode(encoding)
        for text in secrets_as_text()
        for encoding in ("utf-8", "utf-16-le", "utf-16-be", "gb18030")
    }


def create_households(client, world) -> list[str]:
    codes = []
    for body in NEW_HOUSEHOLDS:
        response = client.post(
            f"/api/v1/villages/{world.village_b}/households",
            json=body,
            headers=bearer(world.tokens["admin"]),
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        codes.append(response.json["household"]["code"])
    return codes


def database_bytes(instance: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(instance.glob("sipang.db*"))}


def test_personal_data_is_not_in_the_database_files(client, world, db, instance):
    codes = create_households(client, world)  # `db` stays open, so the WAL file stays too
    files = database_bytes(instance)
    assert {"sipang.db", "sipang.db-wal"} <= set(files)
    everything = b"".join(files.values())
    # The scan sees what was written: public codes and masked values are there.
    for code in (world.household_a, *codes):
        assert code.encode() in everything
    assert b"139********" in everything and "欧**月".encode() in everything
    for what, needle in needles().items():
        for name, content in files.items():
            assert needle not in content, f"{what} found in {name}"


def test_personal_data_is_stored_encrypted_per_row(client, world, db):
    create_households(client, world)
    rows = list(db.query("SELECT * FROM households ORDER BY id"))
    assert len(rows) == 4
    for row in rows:
        assert row["head_name_enc"].startswith("v1:")
    # The same phone and bank number in two rows: different ciphertexts, nothing to link them.
    same_phone = [row for row in rows if row["phone_masked"] == "139********"]
    assert len(same_phone) == 2
    assert same_phone[0]["phone_enc"] != same_phone[1]["phone_enc"]
    assert same_phone[0]["bank_account_enc"] != same_phone[1]["bank_account_enc"]
    # Duplicate ID numbers are found by a keyed index, not a plain hash anyone could compute.
    plain = {hashlib.sha256(n.encode()).hexdigest() for n in (ID_NUMBER, OTHER_ID)}
    indexes = {row["id_number_index"] for row in rows if row["id_number_index"]}
    assert len(indexes) == 2 and not indexes & plain


@pytest.fixture
def all_logs(caplog):
    """Capture every log record of every logger, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_text(caplog) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    return "\n".join(parts)


def test_personal_data_is_never_logged(app, client, world, db, all_logs):
    headers = bearer(world.tokens["admin"])
    codes = create_households(client, world)
    listed = client.get(f"/api/v1/villages/{world.village_b}/households", headers=headers)
    assert listed.status_code == 200
    assert client.get(f"/api/v1/households/{codes[0]}", headers=headers).status_code == 200
    bad_phone = {**NEW_HOUSEHOLDS[1], "phone": PHONE[:-1]}
    refused = client.post(
        f"/api/v1/villages/{world.village_b}/households", json=bad_phone, headers=headers
    )
    assert refused.status_code == 422
    duplicate = {**NEW_HOUSEHOLDS[0], "id_number": ID_NUMBER}
    conflict = client.post(
        f"/api/v1/villages/{world.village_b}/households", json=duplicate, headers=headers
    )
    assert conflict.status_code == 409
    # An unexpected failure mid-write is logged with its traceback: still no personal data.
    db.execute(
        "CREATE TRIGGER test_boom BEFORE INSERT ON households BEGIN SELECT * FROM missing; END"
    )
    failed = client.post(
        f"/api/v1/villages/{world.village_b}/households", json=NEW_HOUSEHOLDS[1], headers=headers
    )
    assert failed.status_code == 500
    assert failed.json["error"]["code"] == "internal_error"
    assert any(record.exc_info for record in all_logs.records), "the failure was not logged"
    logged = log_text(all_logs)
    assert "missing" in logged
    for text in secrets_as_text():
        assert text not in logged, f"{text!r} was logged"
    assert db["households"].count == 4


def test_api_views_show_masked_values_only(client, world):
    headers = bearer(world.tokens["admin"])
    created = client.post(
        f"/api/v1/villages/{world.village_b}/households", json=NEW_HOUSEHOLDS[0], headers=headers
    )
    assert created.status_code == 201
    one = client.get(f"/api/v1/households/{world.household_a}", headers=headers)
    listed = client.get(f"/api/v1/villages/{world.village_a}/households", headers=headers)
    assert one.status_code == listed.status_code == 200
    assert one.json["household"] == listed.json["households"][0]
    view = one.json["household"]
    assert (view["head_name"], view["phone"], view["bank_account"]) == (
        "张*丰",
        "139********",
        "***************5679",
    )
    assert "id_number" not in view
    assert view["trees"] == 1
    new = created.json["household"]
    assert (new["head_name"], new["phone"], new["bank_account"]) == (
        "欧**月",
        "139********",
        "***************5679",
    )
    assert new["trees"] == 0
    for response in (created, one, listed):
        text = json.dumps(response.json, ensure_ascii=False)
        for secret in secrets_as_text():
            assert secret not in text, f"{secret!r} shown"


def test_masked_views_for_every_role_that_may_read(client, world):
    for role in ("admin", "bureau", "verifier", "measurer"):
        response = client.get(
            f"/api/v1/households/{world.household_a}", headers=bearer(world.tokens[role])
        )
        assert response.status_code == 200, role
        text = response.get_data(as_text=True)
        assert PHONE not in text and BANK not in text and ID_NUMBER[:17] not in text
        assert response.json["household"]["phone"] == "139********"


def test_ciphertext_only_decrypts_in_its_own_row_and_field(app, world):
    with app.app_context():
        row = households.get_household(world.household_a)
        own = households.pii_context(world.household_a, "x").removesuffix(":x")
        assert pii.decrypt(row["phone_enc"], f"{own}:phone") == PHONE
        assert pii.decrypt(row["bank_account_enc"], f"{own}:bank_account") == BANK
        assert pii.decrypt(row["id_number_enc"], f"{own}:id_number") == ID_NUMBER
        assert pii.decrypt(row["head_name_enc"], f"{own}:head_name") == SEEDED_NAME
        for wrong_context in (
            households.pii_context(world.household_c, "phone"),  # another household
            f"{own}:bank_account",  # another field of the same household
            f"{own}:phone ",
            "",
        ):
            with pytest.raises(InvalidTag):
                pii.decrypt(row["phone_enc"], wrong_context)


def test_ciphertext_copied_into_another_row_fails_to_reveal(app, world, db):
    before = db["audit_log"].count
    source = next(db.query("SELECT phone_enc FROM households WHERE code = ?", [world.household_a]))
    db.execute(
        "UPDATE households SET phone_enc = ? WHERE code = ?",
        [source["phone_enc"], world.household_c],
    )
    with app.app_context():
        target = households.get_household(world.household_c)
        with pytest.raises(InvalidTag):
            households.reveal(get_db(), target, "phone", "settlement")
    assert db["audit_log"].count == before


def test_tampered_ciphertext_fails_to_decrypt(app, world):
    with app.app_context():
        row = households.get_household(world.household_a)
        version, _, payload = row["phone_enc"].partition(":")
        flipped = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
        with pytest.raises(InvalidTag):
            pii.decrypt(f"{version}:{flipped}", households.pii_context(world.household_a, "phone"))


def test_another_key_cannot_decrypt(app, world, instance):
    other = create_app({"INSTANCE_PATH": str(instance), "PII_KEY": "11" * 32})
    with other.app_context():
        row = households.get_household(world.household_a)
        with pytest.raises(InvalidTag):
            pii.decrypt(row["phone_enc"], households.pii_context(world.household_a, "phone"))


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("phone", PHONE),
        ("bank_account", BANK),
        ("id_number", ID_NUMBER),
        ("head_name", SEEDED_NAME),
    ],
)
def test_reveal_decrypts_and_is_audited(app, world, db, field, expected):
    before = db["audit_log"].count
    with app.app_context():
        row = households.get_household(world.household_a)
        assert households.reveal(get_db(), row, field, "T+1 settlement") == expected
    entries = list(db.query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", [before]))
    assert [(e["action"], e["subject"], e["actor"]) for e in entries] == [
        ("pii.revealed", f"household:{world.household_a}", "system")
    ]
    assert json.loads(entries[0]["detail"]) == {"field": field, "purpose": "T+1 settlement"}
    assert expected not in entries[0]["detail"]
    with app.app_context():
        assert verify_chain(get_db(), audit_key())["intact"] is True


def test_reveal_of_a_number_typed_with_spaces_gives_the_normalised_number(app, client, world):
    code = create_households(client, world)[0]
    with app.app_context():
        row = households.get_household(code)
        assert households.reveal(get_db(), row, "phone", "settlement") == PHONE
        assert households.reveal(get_db(), row, "bank_account", "settlement") == BANK
        assert households.reveal(get_db(), row, "id_number", "settlement") == OTHER_ID


def test_database_holds_no_plaintext_after_a_checkpoint(client, world, instance):
    create_households(client, world)
    conn = sqlite3.connect(instance / "sipang.db")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    everything = b"".join(database_bytes(instance).values())
    assert world.household_a.encode() in everything
    for what, needle in needles().items():
        assert needle not in everything, f"{what} found"


def test_staff_never_see_the_phone_digits_the_door_plate_asks_for(client, world):
    """The plate's second factor is the phone's last 4 digits: no masked view shows them."""
    for role in ("admin", "bureau", "verifier", "measurer"):
        view = client.get(
            f"/api/v1/households/{world.household_a}", headers=bearer(world.tokens[role])
        ).json["household"]
        assert PHONE[-4:] not in view["phone"], role
        assert view["phone"] == PHONE[:3] + "*" * 8


def test_phone_masks_stored_with_their_last_digits_are_shown_as_stars():
    assert pii.mask_phone(PHONE) == "139********"
    assert pii.phone_mask_for_view("*******5678") == "***********"
    assert pii.phone_mask_for_view("139********") == "139********"
    assert pii.phone_mask_for_view(None) is None
