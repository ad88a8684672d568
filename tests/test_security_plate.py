"""The farmer's second factor holds under attack: every limit counts on the household the
plate resolves to, and a household takes a bounded number of wrong answers a day."""

import pytest

from tests.conftest import PHONE


def unlock(client, path_code: str, digits: str, address: str = "203.0.113.7"):
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]
    return client.post(
        f"/h/{path_code}/unlock",
        data={"phone_tail": digits},
        headers={"X-CSRFToken": token},
        environ_overrides={"REMOTE_ADDR": address},
    )


def wrong_digits() -> str:
    return "0000" if PHONE[-4:] != "0000" else "1111"


def spellings(code: str) -> list[str]:
    return [code, f"%20{code}", f"%09{code}", f"{code}%20", code.lower(), f"%0A{code}"]


def test_every_spelling_of_a_code_shares_the_household_lockout(client, world, db):
    code = world.household_a
    variants = spellings(code)
    answers = [unlock(client, v, wrong_digits()).status_code for v in variants[:5]]
    assert answers == [403] * 5  # each spelling reaches the same household

    for variant in variants:  # none of them starts a fresh allowance
        locked = unlock(client, variant, PHONE[-4:], address="198.51.100.9")
        assert locked.status_code == 429, variant
        assert "已暂时锁定" in locked.get_data(as_text=True)
    actions = [
        r["action"]
        for r in db.query(
            "SELECT action FROM audit_log WHERE subject = ? AND action LIKE 'household.unlock%'",
            [f"household:{code}"],
        )
    ]
    assert actions.count("household.unlock_failed") == 5
    assert "household.unlocked" not in actions
    assert "household.unlock_locked" in actions


def test_a_household_takes_a_bounded_number_of_guesses_a_day_from_any_number_of_addresses(
    app, client, world
):
    app.config["FARMER_UNLOCK_LOCKOUT"] = "1000 per minute"  # leave only the daily bound
    code = world.household_a
    for n in range(20):
        assert unlock(client, code, wrong_digits(), address=f"10.0.{n}.1").status_code == 403

    refused = unlock(client, code, PHONE[-4:], address="10.9.9.9")
    assert refused.status_code == 429
    assert "已暂时锁定" in refused.get_data(as_text=True)


def test_another_households_guesses_do_not_lock_this_one(client, world, db):
    from server import households
    from server.db import get_db

    with client.application.app_context():
        village = get_db()["villages"].rows_where("code = ?", [world.village_a]).__next__()
        other = households.create_household(get_db(), village, head_name="王五", phone=PHONE)
    for _ in range(5):
        assert unlock(client, other["code"], wrong_digits()).status_code == 403
    assert unlock(client, other["code"], PHONE[-4:]).status_code == 429
    assert unlock(client, world.household_a, PHONE[-4:], address="10.1.1.1").status_code == 303


@pytest.mark.parametrize("digits", ["12a4", "", "123"])
def test_malformed_answers_are_not_counted_against_the_household(client, world, digits):
    for n in range(8):
        assert unlock(client, world.household_a, digits, address=f"10.2.{n}.1").status_code == 422
    assert unlock(client, world.household_a, PHONE[-4:], address="10.3.0.1").status_code == 303
