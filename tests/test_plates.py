"""Door plates: the public household page, invalid plates, replacement, forged codes."""

import json
import logging

import pytest
from conftest import BANK, ID_NUMBER, PHONE, bearer
from hypothesis import given
from hypothesis import strategies as st

from server import households, trees
from server.db import get_db
from village_kits import codes

SEEDED_NAME = "张三丰"
PERSONAL = (SEEDED_NAME, "张*丰", PHONE, ID_NUMBER, BANK, PHONE[-4:], BANK[-4:], ID_NUMBER[-4:])
INVALID = "这个门牌无效"
MISTYPED = "the code is mistyped or the plate is damaged"
UNKNOWN = "no household has this plate"
REPLACED = "this plate was replaced by a new one"
IN_CHINESE = {
    MISTYPED: "编码有误，或门牌已损坏",
    UNKNOWN: "没有农户登记这个门牌",
    REPLACED: "这户已补发新门牌，旧门牌作废",
}


def changed(code: str, index: int, char: str) -> str:
    return code[:index] + char + code[index + 1 :]


def plate_warnings(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "invalid plate" in record.getMessage()
    ]


def assert_no_personal_data(text: str) -> None:
    for secret in PERSONAL:
        assert secret not in text, secret


def replace(client, world, code: str, reason: str = "lost", role: str = "admin"):
    return client.post(
        f"/api/v1/households/{code}/plates",
        json={"reason": reason},
        headers=bearer(world.tokens[role]),
    )


# --- the public page ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["lower", "upper", "lower path, upper code", "spaces"])
def test_a_plate_opens_the_households_public_page(client, world, case):
    code = world.household_a
    path = {
        "lower": f"/h/{code.lower()}",
        "upper": f"/H/{code.upper()}",
        "lower path, upper code": f"/h/{code}",
        "spaces": f"/H/%20{code}%20",
    }[case]

    response = client.get(path)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "长水村" in html and "武宁县" in html
    assert "第 0001 户" in html
    assert code in html
    assert "杉木" in html  # the seeded Chinese fir, by its Chinese name
    assert "宅旁" in html  # its position, in Chinese
    assert INVALID not in html
    assert_no_personal_data(html)


def test_the_public_page_lists_every_tree_with_its_species(app, client, world):
    with app.app_context():
        db = get_db()
        household = households.get_household(world.household_a)
        trees.register_tree(
            db,
            household,
            tree_id="0190f0a0-0000-7000-8000-00000000000c",
            species_id="cinnamomum_camphora",
            position="road",
        )

    html = client.get(f"/h/{world.household_a}").get_data(as_text=True)

    assert "杉木" in html and "樟树" in html and "路旁" in html
    assert html.count('<li class="tree') == 2  # one card per tree


def test_the_public_summary_holds_no_personal_data(app, world):
    with app.app_context():
        summary = households.public_summary(households.get_household(world.household_a))

    text = json.dumps(summary, ensure_ascii=False)
    assert summary["code"] == world.household_a and summary["seq"] == 1
    assert summary["village"]["name"] == "长水村"
    assert [tree["species"] for tree in summary["trees"]] == ["杉木"]
    assert_no_personal_data(text)
    assert not any(key.endswith(("_enc", "_masked", "_index")) for key in summary)


# --- invalid plates -----------------------------------------------------------------------------


def forged_code(village_code: str, seq: int, mac_symbol: str) -> str:
    """A well-formed code with a made-up keyed check: passes the checksum, not the key."""
    body = f"{village_code}-{seq:04d}-{mac_symbol}"
    return body + codes.checksum_symbol(body)


def invalid_cases(app, world) -> dict[str, tuple[str, str]]:
    code = world.household_a
    typo = changed(code, 14, "9" if code[14] != "9" else "8")
    with app.app_context():
        secret = households.code_secret("360423")
    other = [s for s in codes.CHECK_SYMBOLS if s != code[-2]][0]  # not the keyed check
    not_checksum = [s for s in codes.CHECK_SYMBOLS if s != code[-1]][0]
    return {
        "unknown household number": (codes.make_code(secret, world.village_a, 77), UNKNOWN),
        "unknown village": (codes.make_code(secret, "360423999999", 1), UNKNOWN),
        "one character changed": (typo, MISTYPED),
        "check character changed": (changed(code, len(code) - 1, not_checksum), MISTYPED),
        "forged check": (forged_code(world.village_a, 1, other), UNKNOWN),
        "not a code": ("hello", MISTYPED),
        "html": ("<img src=x onerror=alert(1)>", MISTYPED),
        "too long": ("3" * 300, MISTYPED),
    }


CASES = [
    "unknown household number",
    "unknown village",
    "one character changed",
    "check character changed",
    "forged check",
    "not a code",
    "html",
    "too long",
]


@pytest.mark.parametrize("case", CASES)
def test_an_invalid_plate_is_a_404_page_and_is_logged(app, client, world, caplog, case):
    code, reason = invalid_cases(app, world)[case]
    assert code != world.household_a
    caplog.set_level(logging.WARNING)

    response = client.get(f"/h/{code}")

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert INVALID in html
    assert IN_CHINESE[reason] in html and reason not in html  # Chinese only; the log has it
    assert "<img src=x" not in html
    assert_no_personal_data(html)
    [warning] = plate_warnings(caplog)
    assert reason in warning
    assert code[:40] in warning
    assert len(warning) < 200
    assert_no_personal_data(warning)


def test_a_forged_code_with_a_valid_checksum_is_not_the_household(client, world):
    code = world.household_a
    for symbol in codes.CHECK_SYMBOLS:
        forged = forged_code(world.village_a, 1, symbol)
        assert codes.is_well_formed(forged)
        if forged != code:
            assert client.get(f"/H/{forged}").status_code == 404, forged


def test_every_single_character_change_of_a_real_plate_is_a_404(client, world):
    code = world.household_a
    tried = 0
    for index, original in enumerate(code):
        for char in codes.ALPHABET + "-":
            if char == original:
                continue
            tried += 1
            response = client.get(f"/H/{changed(code, index, char)}")
            assert response.status_code == 404, changed(code, index, char)
    assert tried == len(code) * 32


# --- replacing a plate --------------------------------------------------------------------------


def test_a_new_plate_revokes_the_old_one(app, client, db, world, caplog):
    old = world.household_a
    trees_before = list(db.query("SELECT id, household_id FROM trees ORDER BY id"))

    response = replace(client, world, old, "lost")

    assert response.status_code == 201, response.get_json()
    household = response.get_json()["household"]
    new = household["code"]
    assert new != old and new[:17] == old[:17]
    assert codes.is_well_formed(new)
    assert household["seq"] == 1 and household["head_name"] == "张*丰"
    assert PHONE not in response.get_data(as_text=True)
    [row] = db.query("SELECT * FROM households WHERE code = ?", [new])
    assert row["plate_no"] == 2
    [revoked] = db["revoked_plates"].rows
    assert revoked["code"] == old and revoked["reason"] == "lost" and revoked["plate_no"] == 1
    entry = list(db.query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1"))[0]
    assert entry["action"] == "plate.replaced"
    assert entry["subject"] == f"household:{new}"
    assert json.loads(entry["detail"]) == {"old_code": old, "reason": "lost"}
    assert entry["actor"] == f"user:{world.user_ids['admin']}"
    assert list(db.query("SELECT id, household_id FROM trees ORDER BY id")) == trees_before

    caplog.set_level(logging.WARNING)
    gone = client.get(f"/h/{old}")
    assert gone.status_code == 404
    assert INVALID in gone.get_data(as_text=True) and REPLACED not in gone.get_data(as_text=True)
    assert IN_CHINESE[REPLACED] in gone.get_data(as_text=True)
    assert any(REPLACED in warning for warning in plate_warnings(caplog))
    page = client.get(f"/H/{new}")
    assert page.status_code == 200
    assert "第 0001 户" in page.get_data(as_text=True) and "杉木" in page.get_data(as_text=True)
    staff = client.get(f"/api/v1/households/{old}", headers=bearer(world.tokens["admin"]))
    assert staff.status_code == 404
    assert client.get(f"/api/v1/households/{new}", headers=bearer(world.tokens["admin"])).json[
        "household"
    ]["trees"] == len(trees_before)

    with app.app_context():
        current = households.get_household(new)
        revealed = {
            field: households.reveal(get_db(), current, field, "test")
            for field in ("head_name", "phone", "id_number", "bank_account")
        }
    assert revealed == {
        "head_name": SEEDED_NAME,
        "phone": PHONE,
        "id_number": ID_NUMBER,
        "bank_account": BANK,
    }


def test_a_plate_replaced_twice_keeps_only_the_newest(client, db, world):
    first = world.household_a
    second = replace(client, world, first, "damaged").get_json()["household"]["code"]
    third = replace(client, world, second, "other").get_json()["household"]["code"]

    assert len({first, second, third}) == 3
    assert client.get(f"/h/{first}").status_code == 404
    assert client.get(f"/h/{second}").status_code == 404
    assert client.get(f"/h/{third}").status_code == 200
    assert replace(client, world, first).status_code == 404
    assert sorted(r["code"] for r in db["revoked_plates"].rows) == sorted([first, second])


@pytest.mark.parametrize("role", ["bureau", "verifier", "finance", "enterprise", "measurer"])
def test_only_an_admin_replaces_a_plate(client, db, world, role):
    response = replace(client, world, world.household_a, role=role)

    assert response.status_code == 403
    assert db["revoked_plates"].count == 0
    assert client.get(f"/h/{world.household_a}").status_code == 200


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"reason": "stolen"}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
        ({"reason": 1}, 422, "validation_failed"),
        ({"reason": "lost", "code": "x"}, 422, "validation_failed"),
        (None, 415, "unsupported_media_type"),
    ],
    ids=["unknown reason", "no reason", "number", "extra field", "no body"],
)
def test_a_bad_replacement_request_is_refused_and_changes_nothing(
    client, db, world, body, status, code
):
    before = db["audit_log"].count

    response = client.post(
        f"/api/v1/households/{world.household_a}/plates",
        json=body,
        headers=bearer(world.tokens["admin"]),
    )

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert db["revoked_plates"].count == 0 and db["audit_log"].count == before
    assert client.get(f"/h/{world.household_a}").status_code == 200


def test_a_plate_of_an_unknown_household_cannot_be_replaced(client, world):
    assert replace(client, world, "360423101201-0077-00").status_code == 404


# --- every single-character change is caught (no key needed) -----------------------------------

village_codes = st.from_regex(r"\A[1-6][0-9]{11}\Z")


@given(
    st.binary(min_size=32, max_size=32),
    village_codes,
    st.integers(min_value=1, max_value=codes.MAX_SEQ),
    st.integers(min_value=1, max_value=20),
)
def test_every_single_character_change_of_a_code_is_rejected(key, village, seq, plate):
    secret = codes.county_secret(key, village[:6])
    code = codes.make_code(secret, village, seq, plate)
    assert codes.is_well_formed(code) and codes.is_well_formed(code.lower())
    for index in range(len(code)):
        for char in codes.ALPHABET:
            if char != code[index]:
                assert not codes.is_well_formed(changed(code, index, char)), (code, index, char)
                assert not codes.is_well_formed(changed(code, index, char).lower())


@given(village_codes, st.integers(min_value=1, max_value=99_999))
def test_every_single_character_change_of_a_tag_is_rejected(village, number):
    tag = codes.make_tag(village, number)
    assert codes.is_tag(tag) and codes.is_tag(tag.lower())
    for index in range(len(tag)):
        for char in codes.ALPHABET:
            if char != tag[index]:
                assert not codes.is_tag(changed(tag, index, char)), (tag, index, char)


def test_a_revoked_code_is_never_issued_again(client, db, world):
    codes_seen = [world.household_a]
    for _ in range(20):  # the keyed check has 31 values: repeats would show
        answer = replace(client, world, codes_seen[-1], "lost")
        assert answer.status_code == 201
        codes_seen.append(answer.get_json()["household"]["code"])
    assert len(set(codes_seen)) == len(codes_seen)
    for old in codes_seen[:-1]:
        assert client.get(f"/h/{old}").status_code == 404
