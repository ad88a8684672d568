"""Moving a household to another village of its county, through the admin's real pages: a
new code and plate, the old plate refused, trees and money following, the ledger unchanged
(sipang reconcile stays clean and later sales and transfers land on the same ledger name),
and the refusals (an unissued period, an unsettled batch, another county) changing nothing."""

import json

from server import households
from server.chain.worker import Worker
from server.db import first
from server.payouts import settlement
from server.registry import baseline, orders
from tests import registry_world as rw
from tests.language import english_words, iso_times, readable_text
from tests.test_reconcile import flow, lines  # noqa: F401  (the fixture: sold, settled, on chain)
from tests.workspace_helpers import post_form, sign_in_form


def move(client, code: str, village: str, reason: str = "登记时村别有误"):
    """The admin's two steps: the form on the household page, then the confirmation."""
    confirm = client.get(f"/admin/households/{code}/move?village={village}&reason={reason}")
    assert confirm.status_code == 200
    page = confirm.get_data(as_text=True)
    text = readable_text(page)
    assert english_words(text) + iso_times(text) == []  # the confirmation reads as Chinese
    if "确认迁移" not in page:
        return page
    return post_form(
        client,
        f"/admin/households/{code}/move?village={village}&reason={reason}",
        f"/admin/households/{code}/move",
        {"village": village, "reason": reason},
    ).get_data(as_text=True)


def snapshot(db, household_id: int) -> dict:
    return {
        "household": first(db, "SELECT * FROM households WHERE id = ?", [household_id]),
        "moves": db.execute("SELECT count(*) FROM household_moves").fetchone()[0],
        "revoked": db.execute("SELECT count(*) FROM revoked_plates").fetchone()[0],
        "audit": db.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'household.moved'"
        ).fetchone()[0],
    }


def test_a_household_in_an_unissued_period_is_refused_and_nothing_changes(client, db, world):
    sign_in_form(client, "admin")
    row = first(db, "SELECT * FROM households WHERE code = ?", [world.household_a])
    before = snapshot(db, row["id"])

    page = move(client, world.household_a, world.village_b)

    assert "现在不能迁移" in page
    assert f"第 {world.calculation_id} 号核算" in page
    assert "确认迁移" not in page
    # Posting anyway (a stale confirmation page) is refused the same way.
    refused = post_form(
        client,
        f"/admin/households/{world.household_a}",
        f"/admin/households/{world.household_a}/move",
        {"village": world.village_b, "reason": "登记时村别有误"},
    ).get_data(as_text=True)
    assert "尚未签发的核算期" in refused
    assert snapshot(db, row["id"]) == before


def test_another_county_and_the_same_village_are_refused(client, db, world):
    sign_in_form(client, "admin")
    row = first(db, "SELECT * FROM households WHERE code = ?", [world.household_a])
    before = snapshot(db, row["id"])

    assert "只能迁到本县的村" in move(client, world.household_a, world.village_c)
    assert "该户已经在这个村" in move(client, world.household_a, world.village_a)
    assert "请选择要迁入的村" in client.get(
        f"/admin/households/{world.household_a}/move?village=000000000000",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert snapshot(db, row["id"]) == before


def test_a_moved_household_keeps_its_trees_money_and_ledger_name(app, client, db, world, flow):  # noqa: F811
    old = first(
        db,
        """SELECT h.* FROM households h JOIN accruals a ON a.household_id = h.id
           JOIN settlements s ON s.household_id = h.id AND s.status = 'paid' LIMIT 1""",
    )
    hashes = {
        r[0]
        for r in db.execute(
            "SELECT household_hash FROM accruals WHERE household_id = ?", [old["id"]]
        )
    }
    trees = db.execute("SELECT count(*) FROM trees WHERE household_id = ?", [old["id"]]).fetchone()[
        0
    ]
    with app.app_context():
        phone_before = households.reveal(db, old, "head_name", "test")
        totals_before = households.public_summary(old)
    sign_in_form(client, "admin")

    page = move(client, old["code"], world.village_a)

    moved = first(db, "SELECT * FROM households WHERE id = ?", [old["id"]])
    assert moved["code"] != old["code"] and moved["code"].startswith(world.village_a + "-")
    assert f"新户码 {moved['code']}" in page and "迁移记录" in page
    assert moved["ledger_key"] == old["code"][:17]
    assert (
        db.execute("SELECT count(*) FROM trees WHERE household_id = ?", [old["id"]]).fetchone()[0]
        == trees
    )
    # The old plate is refused (and says it was replaced); the new one shows the same money.
    assert client.get(f"/h/{old['code']}").status_code == 404
    assert client.get(f"/h/{moved['code']}").status_code == 200
    with app.app_context():
        assert households.reveal(db, moved, "head_name", "test") == phone_before
        after = households.public_summary(moved)
    for key in ("accrued_fen", "owed_fen", "paid_fen", "issued_g", "alive"):
        assert after[key] == totals_before[key]
    audit = first(db, "SELECT * FROM audit_log WHERE action = 'household.moved'")
    detail = json.loads(audit["detail"])
    assert detail["old_code"] == old["code"] and detail["to_village"] == world.village_a
    assert "农户" not in audit["detail"]  # no name in the trail
    assert lines(app, db, flow) == []  # the ledger still agrees: nothing on chain changed

    # A later sale and its transfer land on the same ledger name, and the chain accepts them.
    with app.app_context():
        bundle = first(db, "SELECT * FROM bundles WHERE status = 'on_sale'")
        sold = rw.order(db, bundle["id"], 2)
        orders.confirm_payment(db, sold, "bank", "ICBC-REC-9", "user:3")
        later = {
            r[0]
            for r in db.execute(
                "SELECT household_hash FROM accruals WHERE household_id = ?", [old["id"]]
            )
        }
        assert later == hashes
        batch, _ = settlement.create_batch(db, "2099-02-01", 100, "user:3")
        row = first(
            db,
            "SELECT * FROM settlements WHERE batch_id = ? AND household_id = ?",
            [batch["id"], old["id"]],
        )
        settlement.record_transfer(db, row["id"], "ICBC-T2-REC1", "user:3")
    Worker(flow, db, receipt_timeout=5).run_until_idle()
    assert lines(app, db, flow) == []
    assert first(db, "SELECT state FROM chain_outbox WHERE state != 'confirmed'") is None


def test_a_household_in_an_unsettled_batch_waits_for_finance(app, client, db, world, flow):  # noqa: F811
    with app.app_context():
        bundle = first(db, "SELECT * FROM bundles WHERE status = 'on_sale'")
        sold = rw.order(db, bundle["id"], 2)
        orders.confirm_payment(db, sold, "bank", "ICBC-REC-8", "user:3")
        batch, _ = settlement.create_batch(db, "2099-03-01", 1, "user:3")
    pending = first(
        db, "SELECT * FROM settlements WHERE batch_id = ? AND status = 'pending'", [batch["id"]]
    )
    household = first(db, "SELECT * FROM households WHERE id = ?", [pending["household_id"]])
    sign_in_form(client, "admin")

    page = move(client, household["code"], world.village_a)

    assert "未结清的结算批次" in page
    assert (
        first(db, "SELECT code FROM households WHERE id = ?", [household["id"]])["code"]
        == (household["code"])
    )


def test_a_household_in_a_baseline_check_underway_waits_for_it(app, client, db, world):
    with app.app_context():
        grown = rw.grow_village(db, "360423101205", households_count=1, trees_per_household=3)
        db.execute(
            "UPDATE credit_calculations SET status = 'void' WHERE id = ?", [grown["calculation_id"]]
        )
        db.conn.commit()
        baseline.assign(db, grown["village"], world.user_ids["verifier"], world.user_ids["admin"])
    code = grown["households"][0]
    sign_in_form(client, "admin")

    page = move(client, code, world.village_a)

    assert "进行中的基线复核" in page and "确认迁移" not in page
    assert first(db, "SELECT 1 FROM households WHERE code = ?", [code])
