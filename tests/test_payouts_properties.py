"""Random sequences of sales, payments, T+1 batches and transfer outcomes; after every step
Σ household accruals + collective + maintenance + commission = Σ paid orders, to the fen,
and no household is ever settled more than it was owed."""

import shutil
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from server.db import connect, get_db
from server.errors import ApiError
from server.payouts import settlement
from server.registry import bundles, issuance, orders, verification
from tests import registry_world as rw
from tests.helpers_snapshot import Snapshot

pytestmark = pytest.mark.slow  # Hypothesis: 50 runs of 20 steps

VILLAGES = ("360423101202", "360423101203")


def build_snapshot(app) -> dict:
    """Two grown villages of unequal households, issued into one published bundle."""
    world = app.world
    db = get_db()
    made = rw.bundle(
        db,
        commission_bp=137,
        individual_commission_bp=61,
        collective_pct=23,
        maintenance_pct=12,
    )
    for n, code in enumerate(VILLAGES):
        grown = rw.grow_village(
            db, code, households_count=2 + n, trees_per_household=3 + 2 * n, end_mm=330 + 10 * n
        )
        found = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])
        issuance.issue(
            db,
            verification.get_verification(db, found["id"]),
            bundles.get_bundle(db, made["id"]),
            None,
        )
    bundles.publish(db, bundles.get_bundle(db, made["id"]))
    return {"bundle": made["id"], "enterprise": world.user_ids["enterprise"]}


class Payouts(RuleBasedStateMachine):
    """Each run starts on its own copy of the snapshot's database; `seen` collects, across
    the runs of one test, which money movements happened."""

    def __init__(self, app, snapshot: Snapshot, seen: set[str]):
        super().__init__()
        self.app, self.snapshot, self.ids, self.seen = app, snapshot, snapshot.data, seen

    @initialize()
    def fresh(self):
        self.folder = Path(tempfile.mkdtemp(prefix="sipang-payout-run-"))
        shutil.copyfile(self.snapshot.folder / "sipang.db", self.folder / "db")
        self.db = connect(self.folder / "db")
        self.context = self.app.app_context()
        self.context.push()
        self.enterprise = self.db["users"].get(self.ids["enterprise"])
        self.day = date(2099, 1, 1)
        self.reserved: list[dict] = []

    def teardown(self):
        if hasattr(self, "context"):
            self.db.close()
            self.context.pop()
            shutil.rmtree(self.folder, ignore_errors=True)

    @rule(tonnes=st.integers(1, 3), enterprise=st.booleans(), pay_now=st.booleans())
    def sell(self, tonnes, enterprise, pay_now):
        data = {"request_id": uuid.uuid4().hex, "bundle_id": self.ids["bundle"], "tonnes": tonnes}
        try:
            order, _ = orders.reserve(self.db, data, self.enterprise if enterprise else None)
        except ApiError as error:
            assert error.code == "sold_out"
            return
        if pay_now:
            orders.confirm_payment(self.db, order, "bank", f"REF-{order['id']}", "user:3")
        else:
            self.reserved.append(order)

    @precondition(lambda self: self.reserved)
    @rule(data=st.data())
    def pay_later(self, data):
        order = data.draw(st.sampled_from(self.reserved))
        orders.confirm_payment(self.db, order, "bank", f"REF-{order['id']}", "user:3")
        orders.confirm_payment(self.db, order, "bank", f"REF-{order['id']}", "user:3")

    @rule(minimum=st.sampled_from([1, 100, 2_000, 50_000]), skip=st.integers(1, 3))
    def settle(self, minimum, skip):
        self.day += timedelta(days=skip)
        batch, created = settlement.create_batch(self.db, self.day.isoformat(), minimum, "t")
        assert created
        for row in self.db.query(
            "SELECT amount_fen FROM settlements WHERE batch_id = ?", [batch["id"]]
        ):
            assert row["amount_fen"] >= minimum

    @rule()
    def a_whole_day(self):
        """Sell and pay a tonne, make the next T+1 batch and pay its first transfer: the path a
        random walk reaches only sometimes, taken on purpose in every run that draws it."""
        self.sell(1, False, True)
        self.settle(1, 1)
        pending = self.db.execute(
            "SELECT id FROM settlements WHERE status = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if pending:
            settlement.record_transfer(self.db, pending[0], f"BK-{pending[0]}", "t")

    @rule(data=st.data(), outcome=st.sampled_from(["paid", "failed", "over"]))
    def record(self, data, outcome):
        pending = [
            r["id"] for r in self.db.query("SELECT id FROM settlements WHERE status = 'pending'")
        ]
        if not pending:
            return
        settlement_id = data.draw(st.sampled_from(pending))
        if outcome == "paid":
            settlement.record_transfer(self.db, settlement_id, f"BK-{settlement_id}", "t")
        elif outcome == "failed":
            settlement.record_failure(self.db, settlement_id, "退票", "t")
        else:  # try to pay a household one fen more than it is owed: refused
            row = settlement.get_settlement(self.db, settlement_id)
            household = row["household_id"]
            owed = self.db.execute(
                """SELECT (SELECT sum(amount_fen) FROM accruals WHERE household_id = ?)
                        - (SELECT coalesce(sum(amount_fen), 0) FROM settlements
                           WHERE household_id = ? AND status IN ('pending', 'paid'))""",
                [household, household],
            ).fetchone()[0]
            other = self.db.execute(
                """SELECT id FROM settlement_batches WHERE id NOT IN
                   (SELECT batch_id FROM settlements WHERE household_id = ?) LIMIT 1""",
                [household],
            ).fetchone()
            if other is None:
                return
            before = self.db["settlements"].count
            try:
                with self.db.conn:
                    self.db.execute(
                        """INSERT INTO settlements (batch_id, household_id, village_id,
                           county_id, amount_fen, household_hash, created_at)
                           VALUES (?, ?, ?, ?, ?, ?, 'x')""",
                        [
                            other[0],
                            household,
                            row["village_id"],
                            row["county_id"],
                            owed + 1,
                            row["household_hash"],
                        ],
                    )
            except Exception as error:  # noqa: BLE001
                assert "cannot exceed" in str(error)
            else:
                raise AssertionError("a settlement above what is owed was stored")
            assert self.db["settlements"].count == before

    @invariant()
    def money_is_conserved(self):
        if not hasattr(self, "db"):
            return
        db = self.db

        def total(sql):
            return db.execute(sql).fetchone()[0] or 0

        paid_orders = total("SELECT sum(amount_fen) FROM orders WHERE paid_at IS NOT NULL")
        parts = total(
            "SELECT sum(commission_fen + collective_fen + maintenance_fen) FROM sale_splits"
        )
        households = total("SELECT sum(amount_fen) FROM accruals")
        assert households + parts == paid_orders
        assert total("SELECT count(*) FROM orders WHERE paid_at IS NOT NULL") == total(
            "SELECT count(*) FROM sale_splits"
        )
        assert total("SELECT sum(households_fen) FROM sale_splits") == households
        assert total("SELECT sum(collective_fen) FROM village_accruals") == total(
            "SELECT sum(collective_fen) FROM sale_splits"
        )
        queued = total(
            "SELECT sum(json_extract(payload, '$.amount')) FROM chain_outbox WHERE kind = 'accrue'"
        )
        assert queued == households
        settled = total(
            "SELECT sum(json_extract(payload, '$.amount')) FROM chain_outbox WHERE kind = 'settle'"
        )
        assert settled == total("SELECT sum(amount_fen) FROM settlements WHERE status = 'paid'")
        self.seen |= {name for name, n in (("sale", paid_orders), ("transfer", settled)) if n}
        for row in db.query("SELECT * FROM household_payouts"):
            assert 0 <= row["paid_fen"] <= row["paid_fen"] + row["pending_fen"]
            assert row["paid_fen"] + row["pending_fen"] <= row["accrued_fen"]


def test_random_sales_and_settlements_conserve_every_fen(app, snapshots, seeded):
    snapshot = snapshots.build("payout_properties", build_snapshot, on=seeded)
    seen: set[str] = set()
    run_state_machine_as_test(
        lambda: Payouts(app, snapshot, seen),
        settings=settings(
            max_examples=50,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    assert seen == {"sale", "transfer"}  # the runs did sell and pay households
