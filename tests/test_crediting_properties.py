"""Crediting invariants under any sequence of readings (honest, late, backdated or wild),
status changes, parameter-set changes, reviews and issuances:

- each tree's issued periods form one chain of anchors: a period starts where the last
  issued one ended, and no reading ends two periods;
- both ends of a period come from the one parameter set it names, so what a tree is ever
  credited never exceeds its net growth under those sets;
- a tree never loses more than it was credited, and every bundle's tonnes balance: issued
  = available + reserved + held + retired + buffer + cancelled, with ceil(lost / 1 t)
  tonnes cancelled once there are tonnes to cancel.
"""

import contextlib
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crediting_field import FIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_carbon_records import stored_photo

from server import households, trees, villages
from server.carbon import records
from server.carbon.method import Method, canonical_json, load_method
from server.carbon.tree_anchors import sizes
from server.clock import iso
from server.db import first
from server.errors import ApiError
from server.registry import baseline, bundles, issuance, serials, verification
from tests.registry_world import pass_baseline

pytestmark = pytest.mark.slow  # Hypothesis runs whole crediting histories

TREES = 5
START = datetime(2020, 1, 1, tzinfo=UTC)


def denser(method: Method) -> Method:
    changed = json.loads(canonical_json(method.document))
    for entry in changed["species"]:
        if entry["id"] == FIR:
            for branch in entry["agb"]:
                branch["a"] *= 1.2
    changed["version"] = method.version + "-p"
    return Method(changed["version"], hashlib.sha256(canonical_json(changed)).hexdigest(), changed)


actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("measure"),
            st.integers(0, TREES - 1),
            st.integers(-15, 40),  # DBH change, mm
            st.integers(20, 400),  # days on (or back, when backdated)
            st.booleans(),  # backdated into the past
        ),
        st.tuples(
            st.just("status"), st.integers(0, TREES - 1), st.sampled_from(["dead", "felled"])
        ),
        st.tuples(st.just("method"), st.booleans()),
        st.tuples(st.just("reject"), st.integers(0, TREES - 1)),
        st.tuples(st.just("issue"), st.integers(0, 30)),  # a verifier finds n ‰ less growth
    ),
    min_size=4,
    max_size=18,
)


class Village:
    """One fresh village of firs and the county office that credits it."""

    def __init__(self, db, world, code: str):
        self.db, self.world = db, world
        self.village = villages.create_village(db, code, "性质村", "宋溪镇", 29.3, 115.2)
        household = households.create_household(db, self.village, head_name="甲")
        self.clock = START
        self.issued_until = START - timedelta(days=1)
        self.method = load_method()
        self.alternative = denser(self.method)
        self.trees, self.dbh = [], []
        for n in range(TREES):
            tree = str(uuid.uuid4())
            trees.register_tree(
                db,
                household,
                tree_id=tree,
                species_id=FIR,
                position="road",
                registered_at=iso(START),
            )
            self.trees.append(tree)
            self.dbh.append(250 + 10 * n)
            self.measure(n, 0, 0, False)

    def measure(self, n: int, change: int, days: int, backdated: bool) -> None:
        if backdated:
            when = max(self.clock - timedelta(days=days), START)
        else:
            self.clock += timedelta(days=days)
            when = self.clock
        self.dbh[n] = max(self.dbh[n] + change, 50)
        with contextlib.suppress(ApiError):  # a date it may not carry: nothing stored
            trees.record_measurement(
                self.db,
                self.trees[n],
                measurement_id=str(uuid.uuid4()),
                stems_mm=[self.dbh[n]],
                height_cm=1200 + self.dbh[n] * 2,
                client_time=iso(when),
                latitude=29.3 + n * 0.001,
                longitude=115.2,
                gps_accuracy_m=4.0,
                photo_sha256=stored_photo(self.db, str(uuid.uuid4())),
            )

    def status(self, n: int, value: str) -> None:
        with contextlib.suppress(ApiError):
            trees.set_status(self.db, self.trees[n], value, iso(self.clock))

    def reject(self, n: int) -> None:
        latest = first(
            self.db,
            "SELECT id FROM measurements WHERE tree_id = ? ORDER BY rowid DESC LIMIT 1",
            [self.trees[n]],
        )
        self.db.execute(
            """INSERT INTO flags (measurement_id, tree_id, village_id, code, reason, created_at)
               VALUES (?, ?, ?, 'reviewer', '复核', ?)""",
            [latest["id"], self.trees[n], self.village["id"], iso(self.clock)],
        )
        flag = self.db.execute("SELECT max(id) FROM flags").fetchone()[0]
        records.review_flag(self.db, flag, "rejected", "驳回", 1)

    def issue(self, shortfall_permille: int, alternative: bool) -> None:
        for flag in self.db.query(
            "SELECT id FROM flags WHERE village_id = ? AND decision IS NULL", [self.village["id"]]
        ):
            records.review_flag(self.db, flag["id"], "accepted", "核实", 1)
        start = (self.issued_until + timedelta(days=1)).date()
        end = self.clock.date()
        if end <= start:
            return
        method = self.alternative if alternative else self.method
        calc_id = records.calculate_credit(
            self.db, self.village, start.isoformat(), end.isoformat(), method=method
        )
        calc = self.db["credit_calculations"].get(calc_id)
        if not self.db["credit_tree_lines"].count_where("calculation_id = ?", [calc_id]):
            return
        if baseline.unchecked_trees(self.db, self.village["id"]):
            pass_baseline(self.db, self.village["id"], self.world.user_ids["verifier"])
        found = verification.assign(self.db, calc, self.world.user_ids["verifier"], None)
        for row in self.db.query(
            """SELECT vs.tree_id, m.dbh_mm, m.height_cm FROM verification_samples vs
               JOIN measurements m ON m.id = vs.claimed_measurement_id
               WHERE vs.verification_id = ?""",
            [found["id"]],
        ):
            verification.remeasure(
                self.db,
                found,
                {
                    "client_id": str(uuid.uuid4()),
                    "tree_id": row["tree_id"],
                    "dbh_cm": row["dbh_mm"] * (1000 - shortfall_permille) / 10_000,
                    "height_m": row["height_cm"] / 100,
                    "species_id": FIR,
                    "measured_at": iso(self.clock),
                },
                self.world.user_ids["verifier"],
            )
        decided = verification.decide(self.db, found, None, "核查员")
        if decided["status"] == "failed" or method is self.alternative:
            return  # not issued (the alternative set is not admitted by any bundle)
        bundle = bundles.create_bundle(
            self.db,
            "360423",
            {
                "name": "性质测试包",
                "vintage_from": 2019,
                "vintage_to": 2040,
                "methods": [self.method.version],
                "min_households": 1,
                "max_household_share_pct": 100,
            },
            None,
        )
        issuance.issue(self.db, decided, bundle, None)
        self.issued_until = datetime.combine(end, datetime.min.time(), tzinfo=UTC)


def check_invariants(place: Village) -> None:
    db = place.db
    ends: set[str] = set()
    for tree in place.trees:
        lines = list(
            db.query(
                """SELECT l.*, c.method_version FROM credit_tree_lines l
                   JOIN credit_calculations c ON c.id = l.calculation_id
                   WHERE l.tree_id = ? AND c.status = 'issued' ORDER BY c.period_end""",
                [tree],
            )
        )
        previous_end = None
        credited = 0
        for line in lines:
            if previous_end is not None:
                assert line["start_measurement_id"] == previous_end  # one chain of anchors
            assert line["end_measurement_id"] not in ends  # no reading ends two periods
            ends.add(line["end_measurement_id"])
            previous_end = line["end_measurement_id"]
            method = records.stored_method(db, line["method_version"])
            for column, reading in (
                ("stock_start_g", line["start_measurement_id"]),
                ("stock_end_g", line["end_measurement_id"]),
            ):
                row = db["measurements"].get(reading)
                assert line[column] == records.capped_stock_g(method, FIR, sizes(row))[0]
            assert line["credited_g"] <= max(line["stock_end_g"] - line["stock_start_g"], 0)
            credited += line["credited_g"]
        lost = sum(r["grams"] for r in db["losses"].rows_where("tree_id = ?", [tree]))
        assert 0 <= lost <= max(credited, 0)
    for bundle in db.query(
        "SELECT DISTINCT bundle_id FROM issuances i JOIN credit_calculations c "
        "ON c.id = i.calculation_id WHERE c.village_id = ?",
        [place.village["id"]],
    ):
        bundle_id = bundle["bundle_id"]
        totals = serials.bundle_totals(db, bundle_id)
        issued = db.execute(
            "SELECT coalesce(sum(tonnes), 0) FROM issuances WHERE bundle_id = ?", [bundle_id]
        ).fetchone()[0]
        assert sum(totals.values()) == issued
        lost = db.execute(
            "SELECT coalesce(sum(grams), 0) FROM losses WHERE bundle_id = ?", [bundle_id]
        ).fetchone()[0]
        cancelled = db["loss_cancellations"].count_where("bundle_id = ?", [bundle_id])
        owed = -(-lost // 1_000_000)
        assert cancelled <= owed
        if cancelled < owed:  # a shortfall only while there is nothing left to cancel
            assert totals["buffer"] == totals["available"] == 0
    for line in db.query(
        """SELECT l.* FROM credit_household_lines l JOIN credit_calculations c
           ON c.id = l.calculation_id WHERE c.village_id = ?""",
        [place.village["id"]],
    ):
        assert line["issued_g"] + line["carry_out_g"] == (
            line["carry_in_g"] + line["gross_g"] - line["deduction_g"] + line["loss_g"]
        )
        assert line["carry_out_g"] >= 0


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=actions)
def test_no_gram_is_invented_or_counted_twice(app, db, world, steps):
    with app.app_context():
        code = f"3604231{uuid.uuid4().int % 10**5:05d}"
        place = Village(db, world, code)
        for step in steps:
            kind, *args = step
            if kind == "measure":
                place.measure(*args)
            elif kind == "status":
                place.status(*args)
            elif kind == "method":
                place.use_alternative = args[0]
            elif kind == "reject":
                place.reject(*args)
            else:
                place.issue(args[0], getattr(place, "use_alternative", False))
            check_invariants(place)
