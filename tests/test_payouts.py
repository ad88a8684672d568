"""Payouts: the split of each paid order, households' accruals pro rata to their grams
(written with the payment), T+1 batches, transfers, bank return files."""

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.db import first
from server.errors import ApiError
from server.payouts import returns, settlement
from server.payouts.split import split_sale
from server.registry import bundles, orders
from server.units import largest_remainder
from tests import registry_world as rw
from tests.helpers_orders import paid_order


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@given(
    total=st.integers(0, 10**9),
    weights=st.dictionaries(st.integers(1, 10**6), st.integers(0, 10**9), min_size=1),
)
def test_largest_remainder_shares_every_fen(total, weights):
    if not sum(weights.values()):
        weights = {**weights, 1: 1}
    shares = largest_remainder(total, weights)
    assert sum(shares.values()) == total
    weight = sum(weights.values())
    for key, w in weights.items():
        exact_floor = total * w // weight
        assert shares[key] in (exact_floor, exact_floor + 1)


@given(
    amount=st.integers(1, 10**10),
    commission_bp=st.integers(0, 10_000),
    individual_bp=st.integers(0, 10_000),
    households=st.integers(60, 100),
    collective=st.integers(0, 40),
    kind=st.sampled_from(["individual", "enterprise"]),
)
def test_split_adds_up_to_the_amount_and_matches_the_farmers_share(
    amount, commission_bp, individual_bp, households, collective, kind
):
    collective = min(collective, 100 - households)
    policy = {
        "commission_bp": commission_bp,
        "individual_commission_bp": individual_bp,
        "households_pct": households,
        "collective_pct": collective,
        "maintenance_pct": 100 - households - collective,
    }
    parts = split_sale(amount, policy, kind)
    fen = [parts[k] for k in ("commission_fen", "households_fen", "collective_fen")]
    assert sum(fen) + parts["maintenance_fen"] == amount
    assert min(fen + [parts["maintenance_fen"]]) >= 0
    assert parts["households_fen"] == bundles.farmers_fen(amount, policy, kind)
    assert parts["households_fen"] * 100 >= (amount - parts["commission_fen"]) * 60 - 100


def test_default_policy_halves_the_commission_for_individuals():
    policy = dict(bundles.DEFAULTS)
    individual = split_sale(10_000, policy, "individual")
    enterprise = split_sale(10_000, policy, "enterprise")
    assert individual == {
        "commission_bp": 50,
        "commission_fen": 50,
        "households_fen": 6467,
        "collective_fen": 1990,
        "maintenance_fen": 1493,
    }
    assert enterprise["commission_fen"] == 100 and enterprise["households_fen"] == 6435


def test_a_paid_order_accrues_each_household_pro_rata_with_the_payment(db, world, ctx):
    bundle, _, grown = rw.stocked_bundle(
        db, world.user_ids["verifier"], households_count=3, trees_per_household=2
    )
    paid = paid_order(db, bundle["id"], tonnes=2)
    split = first(db, "SELECT * FROM sale_splits WHERE order_id = ?", [paid["id"]])
    assert split["amount_fen"] == 20_000 and split["households_fen"] == paid["farmers_fen"]
    assert split["policy_sha256"] == bundle["rules_sha256"]
    grams = dict(
        db.execute(
            """SELECT household_id, sum(grams) FROM issuance_households ih
               JOIN issuances i ON i.id = ih.issuance_id WHERE i.bundle_id = ?
               GROUP BY household_id""",
            [bundle["id"]],
        ).fetchall()
    )
    accrued = {
        row["household_id"]: row["amount_fen"]
        for row in db.query("SELECT * FROM accruals WHERE order_id = ?", [paid["id"]])
    }
    assert accrued == largest_remainder(split["households_fen"], grams)
    assert sum(accrued.values()) == paid["farmers_fen"]
    (village,) = db.query("SELECT * FROM village_accruals WHERE order_id = ?", [paid["id"]])
    assert village["collective_fen"] == split["collective_fen"]
    queued = [
        json.loads(row["payload"])
        for row in db.query("SELECT payload FROM chain_outbox WHERE kind = 'accrue' ORDER BY id")
    ]
    ids = [r["id"] for r in db.query("SELECT id FROM accruals ORDER BY id")]
    assert [q["id"] for q in queued] == [f"accrual:{i}" for i in ids]
    assert all(q["household"].startswith("0x") and len(q["household"]) == 66 for q in queued)
    assert sum(q["amount"] for q in queued) == paid["farmers_fen"]
    # the same payment again changes nothing
    again = orders.confirm_payment(db, paid, "bank", paid["payment_reference"], "user:3")
    assert again["id"] == paid["id"]
    assert db["accruals"].count == len(ids)
    actions = [r["action"] for r in db.query("SELECT action FROM audit_log ORDER BY seq")]
    assert actions.count("payout.accrued") == 1
    with pytest.raises(Exception, match="append-only"), db.conn:
        db.execute("UPDATE accruals SET amount_fen = amount_fen + 1")


def test_a_payment_that_fails_leaves_no_accrual(db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    first_order = paid_order(db, bundle["id"], reference="SAME-REF")
    second = rw.order(db, bundle["id"])
    with pytest.raises(ApiError, match="another order"):
        orders.confirm_payment(db, second, "bank", "SAME-REF", "user:3")
    assert {r["order_id"] for r in db.query("SELECT order_id FROM accruals")} == {first_order["id"]}


def household_owed(db, household_id):
    return first(db, "SELECT * FROM household_payouts WHERE household_id = ?", [household_id])


def test_t_plus_1_batch_minimum_carry_forward_transfer_and_failure(db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(
        db, world.user_ids["verifier"], households_count=3, trees_per_household=2
    )
    paid = paid_order(db, bundle["id"])
    today = first(db, "SELECT accrued_on FROM accruals LIMIT 1")["accrued_on"]
    # the day's own sales wait for T+1
    same_day, created = settlement.create_batch(db, today, 100, "user:3")
    assert created and same_day["households"] == 0
    # under the minimum: carried forward
    per_household = max(r["amount_fen"] for r in db.query("SELECT amount_fen FROM accruals"))
    small, _ = settlement.create_batch(db, "2099-01-01", per_household + 1, "user:3")
    assert small["households"] == 0
    paid_order(db, bundle["id"])
    batch, created = settlement.create_batch(db, "2099-01-02", per_household + 1, "user:3")
    assert created and batch["households"] == 3
    assert batch["total_fen"] == 2 * paid["farmers_fen"]
    again, created = settlement.create_batch(db, "2099-01-02", 100, "user:3")
    assert not created and again["id"] == batch["id"]
    rows = list(db.query("SELECT * FROM settlements WHERE batch_id = ? ORDER BY id", [batch["id"]]))
    done, changed = settlement.record_transfer(db, rows[0]["id"], "ICBC-T1-0001", "user:3")
    assert changed and done["status"] == "paid"
    same, changed = settlement.record_transfer(db, rows[0]["id"], "ICBC-T1-0001", "user:3")
    assert not changed
    with pytest.raises(ApiError, match="已经登记"):
        settlement.record_transfer(db, rows[0]["id"], "ICBC-T1-0002", "user:3")
    with pytest.raises(ApiError) as used:
        settlement.record_transfer(db, rows[1]["id"], "ICBC-T1-0001", "user:3")
    assert used.value.code == "reference_used"
    failed, _ = settlement.record_failure(db, rows[1]["id"], "账户已销户", "user:3")
    assert failed["status"] == "failed"
    assert household_owed(db, rows[0]["household_id"])["owed_fen"] == 0
    assert household_owed(db, rows[1]["household_id"])["owed_fen"] == rows[1]["amount_fen"]
    settle_rows = list(db.query("SELECT payload FROM chain_outbox WHERE kind = 'settle'"))
    assert [json.loads(r["payload"])["amount"] for r in settle_rows] == [rows[0]["amount_fen"]]
    # the failed transfer joins the next batch; the paid and pending ones do not
    following, _ = settlement.create_batch(db, "2099-01-03", 100, "user:3")
    queued = list(db.query("SELECT * FROM settlements WHERE batch_id = ?", [following["id"]]))
    assert [(r["household_id"], r["amount_fen"]) for r in queued] == [
        (rows[1]["household_id"], rows[1]["amount_fen"])
    ]


def test_a_settlement_larger_than_owed_is_refused_by_the_database(db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    paid_order(db, bundle["id"])
    accrual = first(db, "SELECT * FROM accruals")
    batch, _ = settlement.create_batch(db, "2099-02-01", 100, "user:3")
    with pytest.raises(Exception, match="cannot exceed"), db.conn:
        db.execute(
            """INSERT INTO settlements (batch_id, household_id, village_id, county_id,
                   amount_fen, household_hash, created_at) VALUES (?, ?, ?, ?, 1, ?, 'x')""",
            [
                batch["id"],
                accrual["household_id"],
                accrual["village_id"],
                accrual["county_id"],
                accrual["household_hash"],
            ],
        )


def return_file_csv(rows: list[tuple]) -> bytes:
    lines = ["明细编号,金额,状态,流水号,失败原因"]
    lines += [",".join(str(c) for c in row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_bank_return_file_applies_once(db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(
        db, world.user_ids["verifier"], households_count=3, trees_per_household=2
    )
    paid_order(db, bundle["id"])
    batch, _ = settlement.create_batch(db, "2099-03-01", 100, "user:3")
    rows = list(db.query("SELECT * FROM settlements WHERE batch_id = ? ORDER BY id", [batch["id"]]))

    def yuan(fen):
        return f"{fen // 100}.{fen % 100:02d}"

    data = return_file_csv(
        [
            (rows[0]["id"], yuan(rows[0]["amount_fen"]), "成功", "BK-0001", ""),
            (rows[1]["id"], yuan(rows[1]["amount_fen"]), "失败", "", "户名不符"),
            (rows[2]["id"], yuan(rows[2]["amount_fen"] + 1), "成功", "BK-0003", ""),
            (999999, "1.00", "成功", "BK-0004", ""),
        ]
    )
    applied = returns.apply_file(db, "return.csv", data, "user:3")
    assert (applied["paid"], applied["failed"], applied["ignored"]) == (1, 1, 2)
    statuses = [r["status"] for r in db.query("SELECT status FROM settlements ORDER BY id")]
    assert statuses == ["paid", "failed", "pending"]
    before = [db[t].count for t in ("settlements", "chain_outbox", "audit_log")]
    twice = returns.apply_file(db, "return-again.csv", data, "user:3")
    assert twice["duplicate"] is True and twice["id"] == applied["id"]
    assert [db[t].count for t in ("settlements", "chain_outbox", "audit_log")] == before
    # the same rows in a different file (XLSX) change nothing either
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["settlement", "amount_fen", "status", "reference", "reason"])
    sheet.append([rows[0]["id"], rows[0]["amount_fen"], "paid", "BK-0001", None])
    sheet.append([rows[2]["id"], float(rows[2]["amount_fen"]), "paid", "BK-0003", None])
    out = io.BytesIO()
    book.save(out)
    xlsx = returns.apply_file(db, "return.xlsx", out.getvalue(), "user:3")
    assert (xlsx["paid"], xlsx["ignored"]) == (1, 1)
    assert first(db, "SELECT status FROM settlements WHERE id = ?", [rows[2]["id"]])["status"] == (
        "paid"
    )


def test_yuan_amounts_are_read_exactly():
    assert returns.yuan_to_fen("12.30") == 1230
    assert returns.yuan_to_fen("¥1,234.05") == 123405
    with pytest.raises(ValueError):
        returns.yuan_to_fen("0.001")
    assert returns.whole("1230.0") == 1230 and returns.whole(" 7 ") == 7
    for bad in ("", "1.5", "x"):
        with pytest.raises(ValueError):
            returns.whole(bad)
