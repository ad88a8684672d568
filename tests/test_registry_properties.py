"""Random operation sequences on the registry; the ledger invariants of DESIGN.md §6 hold
after every step: issued = available + reserved + held + retired + buffer + cancelled for
every bundle and vintage, serials never overlap, a serial is retired at most once, and a
replayed request creates nothing."""

import shutil
import sqlite3
import tempfile
import uuid
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

from server.carbon.records import credit_balance_g
from server.db import connect, get_db
from server.errors import ApiError
from server.registry import bundles, issuance, orders, verification
from server.trees import set_status
from tests import registry_world as rw
from tests.helpers_snapshot import Snapshot

pytestmark = pytest.mark.slow  # Hypothesis: 60 runs of 30 steps

VILLAGES = ("360423101202", "360423101203", "360423101204")


def build_snapshot(app) -> dict:
    """Three grown, verified, not yet issued villages and a published bundle."""
    world = app.world
    db = get_db()
    verified, trees = [], []
    for code in VILLAGES:
        grown = rw.grow_village(db, code, households_count=2, trees_per_household=2)
        verified.append(rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])["id"])
        trees += grown["trees"]
    bundle = rw.bundle(db)
    first = verification.get_verification(db, verified[0])
    issuance.issue(db, first, bundle, None)
    bundles.publish(db, bundles.get_bundle(db, bundle["id"]))
    return {
        "bundle": bundle["id"],
        "verified": verified,
        "trees": trees,
        "enterprise": world.user_ids["enterprise"],
    }


class Registry(RuleBasedStateMachine):
    """Each run starts on its own copy of the snapshot's database."""

    def __init__(self, app, snapshot: Snapshot):
        super().__init__()
        self.app, self.snapshot, self.ids = app, snapshot, snapshot.data

    @initialize()
    def fresh(self):
        self.folder = Path(tempfile.mkdtemp(prefix="sipang-run-"))
        shutil.copyfile(self.snapshot.folder / "sipang.db", self.folder / "db")
        self.db = connect(self.folder / "db")
        self.context = self.app.app_context()
        self.context.push()
        self.enterprise = self.db["users"].get(self.ids["enterprise"])
        self.requests: list[tuple[dict, bool]] = []
        self.orders: list[dict] = []
        self.issued = {self.ids["verified"][0]}
        self.reversed: set[str] = set()

    def teardown(self):
        if hasattr(self, "context"):
            self.db.close()
            self.context.pop()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _count(self, table: str) -> int:
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

    @rule(which=st.integers(0, 2))
    def issue(self, which):
        verification_id = self.ids["verified"][which]
        found = verification.get_verification(self.db, verification_id)
        bundle = bundles.get_bundle(self.db, self.ids["bundle"])
        try:
            issuance.issue(self.db, found, bundle, None)
            assert verification_id not in self.issued
            self.issued.add(verification_id)
        except ApiError as error:
            assert error.code in ("already_issued", "rules_not_met"), error.code

    @rule(
        tonnes=st.integers(1, 6),
        enterprise=st.booleans(),
        name=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
    )
    def reserve(self, tonnes, enterprise, name):
        data = {"request_id": uuid.uuid4().hex, "bundle_id": self.ids["bundle"], "tonnes": tonnes}
        if name is not None:
            data["beneficiary"] = name
        before = self._count("orders")
        try:
            order, created = orders.reserve(self.db, data, self.enterprise if enterprise else None)
        except ApiError as error:
            assert error.code == "sold_out"
            assert self._count("orders") == before
            return
        assert created
        self.requests.append((data, enterprise))
        self.orders.append(order)

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def replay_reserve(self, data):
        body, enterprise = data.draw(st.sampled_from(self.requests))
        counts = (self._count("orders"), self._count("audit_log"))
        tonnes = list(self.db.query("SELECT serial, status, order_id FROM tonnes ORDER BY serial"))
        order, created = orders.reserve(self.db, body, self.enterprise if enterprise else None)
        assert not created and order["request_id"] == body["request_id"]
        assert (self._count("orders"), self._count("audit_log")) == counts
        assert (
            list(self.db.query("SELECT serial, status, order_id FROM tonnes ORDER BY serial"))
            == tonnes
        )

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), replay=st.booleans())
    def pay(self, data, replay):
        order = data.draw(st.sampled_from(self.orders))
        reference = f"REF-{order['id']}"
        try:
            orders.confirm_payment(self.db, order, "bank", reference, "user:3")
        except ApiError as error:
            assert error.code == "reservation_expired"
            return
        if replay:
            certificates = self._count("certificates")
            orders.confirm_payment(self.db, order, "bank", reference, "user:3")
            assert self._count("certificates") == certificates

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def expire(self, data):
        order = data.draw(st.sampled_from(self.orders))
        with self.db.conn:
            self.db.execute(
                "UPDATE orders SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?",
                [order["id"]],
            )
        orders.release_expired_now(self.db)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), part=st.integers(1, 3))
    def retire_held(self, data, part):
        order = data.draw(st.sampled_from(self.orders))
        request_id = f"retire-{order['id']}-{part}"
        try:
            cert, created = orders.retire_held(
                self.db,
                order,
                {
                    "request_id": request_id,
                    "tonnes": part,
                    "beneficiary": "某公司",
                    "reason": "赔偿",
                },
            )
        except ApiError as error:
            assert error.code == "not_held"
            return
        if not created:
            assert cert["request_id"] == request_id

    @precondition(lambda self: len(self.issued) > 0)
    @rule(data=st.data())
    def fell_and_reverse(self, data):
        tree = data.draw(st.sampled_from(self.ids["trees"]))
        row = self.db.execute(
            """SELECT i.id FROM issuances i JOIN credit_tree_lines l
               ON l.calculation_id = i.calculation_id WHERE l.tree_id = ?""",
            [tree],
        ).fetchone()
        if row is None:
            return
        credited = credit_balance_g(self.db, tree)
        set_status(self.db, tree, "felled", "2026-12-01T00:00:00.000Z")  # debits at once
        assert credit_balance_g(self.db, tree) == 0
        found = issuance.issuance_view(self.db, row[0])
        answer = issuance.reverse(self.db, found, [tree], None)  # asking again changes nothing
        lost = self.db.execute(
            "SELECT coalesce(sum(grams), 0) FROM losses WHERE tree_id = ?", [tree]
        ).fetchone()[0]
        assert answer["grams"] == lost
        if tree not in self.reversed:
            assert lost == credited
        self.reversed.add(tree)

    @rule()
    def try_to_retire_twice(self):
        retired = self.db.execute(
            "SELECT serial, certificate_id FROM tonnes WHERE status = 'retired' LIMIT 1"
        ).fetchone()
        if retired is None:
            return
        try:
            with self.db.conn:
                self.db.execute(
                    "INSERT INTO retirements (serial, certificate_id, retired_at) "
                    "VALUES (?, ?, 'x')",
                    list(retired),
                )
        except sqlite3.IntegrityError:
            return
        raise AssertionError("a serial was retired twice")

    @invariant()
    def ledger_holds(self):
        if not hasattr(self, "db"):
            return
        db = self.db
        for row in db.query(
            """SELECT t.bundle_id, t.vintage, count(*) AS issued,
                      sum(status = 'available') + sum(status = 'reserved') + sum(status = 'held')
                      + sum(status = 'retired') + sum(status = 'buffer')
                      + sum(status = 'cancelled') AS parts,
                      (SELECT sum(tonnes) FROM issuances i WHERE i.bundle_id = t.bundle_id
                       AND i.vintage = t.vintage) AS minted,
                      sum(buffer) AS buffer_serials,
                      (SELECT sum(buffer_tonnes) FROM issuances i WHERE i.bundle_id = t.bundle_id
                       AND i.vintage = t.vintage) AS buffer_minted
               FROM tonnes t GROUP BY t.bundle_id, t.vintage"""
        ):
            assert row["issued"] == row["parts"] == row["minted"]
            assert row["buffer_serials"] == row["buffer_minted"]
        # serials never overlap: one per (series, seq), numbered 1..n without gaps
        for row in db.query(
            "SELECT series, count(*) AS n, max(seq) AS top, "
            "count(DISTINCT seq) AS distinct_seq FROM tonnes GROUP BY series"
        ):
            assert row["n"] == row["top"] == row["distinct_seq"]
        # a serial is retired at most once, under exactly one certificate
        retired = db.execute("SELECT count(*) FROM tonnes WHERE status = 'retired'").fetchone()[0]
        assert retired == self._count("retirements")
        assert (
            retired
            == (db.execute("SELECT coalesce(sum(tonnes), 0) FROM certificates").fetchone()[0])
        )
        assert (
            db.execute(
                """SELECT count(*) FROM retirements r JOIN tonnes t ON t.serial = r.serial
               WHERE t.certificate_id != r.certificate_id"""
            ).fetchone()[0]
            == 0
        )
        # every order holds what it bought, and nothing is sold or reserved twice
        for order in db.query("SELECT * FROM orders"):
            linked = db.execute(
                "SELECT status, count(*) FROM tonnes WHERE order_id = ? GROUP BY status",
                [order["id"]],
            ).fetchall()
            linked = dict(linked)
            if order["status"] == "expired":
                assert linked == {}
            elif order["status"] == "reserved":
                assert linked == {"reserved": order["tonnes"]}
            else:
                assert sum(linked.values()) == order["tonnes"]
                assert set(linked) <= {"held", "retired"}
        assert (
            db.execute(
                "SELECT count(*) FROM tonnes WHERE buffer = 1 AND order_id IS NOT NULL"
            ).fetchone()[0]
            == 0
        )


def test_registry_invariants_hold_under_random_operations(app, snapshots, seeded):
    snapshot = snapshots.build("registry_properties", build_snapshot, on=seeded)
    run_state_machine_as_test(
        lambda: Registry(app, snapshot),
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
