"""Baseline checks: a first period's growth rests on registration readings that a verifier
re-measured on a sample. A baseline recorded too small (growth that never happened) is
refused, or taken off the tonnes by the upper bound of how far the sample fell short."""

import math
import uuid
from fractions import Fraction

import pytest
from crediting_field import FIR, Office, Phone, days_ago

from server import trees
from server.db import first
from server.errors import ApiError
from server.registry import baseline, issuance, ratio
from tests import registry_world as rw
from tests.conftest import bearer
from tests.workspace_helpers import post_form, sign_in_form


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def registered_sizes(db, tree_id):
    reading = db.execute(
        """SELECT m.dbh_mm, m.height_cm FROM baseline_check_trees bt
           JOIN measurements m ON m.id = bt.baseline_measurement_id
           WHERE bt.tree_id = ? ORDER BY bt.check_id DESC LIMIT 1""",
        [tree_id],
    ).fetchone()
    return reading[0] / 10, max(reading[1], 130) / 100


def cochran_upper_bound(pairs, population):
    """The ratio estimator's one-sided 95 % upper bound, written out independently."""
    n = len(pairs)
    xs, ys = [Fraction(x) for x, _ in pairs], [Fraction(y) for _, y in pairs]
    r = sum(ys) / sum(xs)
    s2 = sum((y - r * x) ** 2 for x, y in zip(xs, ys, strict=True)) / (n - 1)
    variance = (1 - Fraction(n, population)) * s2 / (n * (sum(xs) / n) ** 2)
    return float(r) + ratio.t95(n - 1) * math.sqrt(variance)


def test_a_first_period_issues_only_after_its_baselines_pass_a_check(client, db, world, ctx):
    grown = rw.grow_village(db, world.village_b, trees_per_household=40)
    verifier_id = world.user_ids["verifier"]
    found = rw.verify(db, grown["calculation_id"], verifier_id, check_baseline=False)
    bundle = rw.bundle(db)
    with pytest.raises(ApiError) as refused:
        issuance.issue(db, found, bundle, None)
    assert (refused.value.status, refused.value.code) == (409, "baseline_unchecked")
    assert len(refused.value.details) == 40

    bureau, verifier = bearer(world.tokens["bureau"]), bearer(world.tokens["verifier"])
    url = f"/api/v1/villages/{world.village_b}/baseline-checks"
    listed = client.get(url, headers=bureau).json
    assert listed == {"baseline_checks": [], "unchecked_trees": 40}
    made = client.post(url, headers=bureau, json={"verifier_id": verifier_id})
    assert made.status_code == 201, made.json
    check = made.json["baseline_check"]
    assert (check["kind"], check["population"], check["sample_size"]) == ("baseline", 40, 30)
    again = client.post(url, headers=bureau, json={"verifier_id": verifier_id})
    assert (again.status_code, again.json["error"]["code"]) == (409, "conflict")
    assert db.execute("SELECT count(*) FROM baseline_checks").fetchone()[0] == 1

    (listed,) = client.get("/api/v1/verifier/assignments", headers=verifier).json["baseline_checks"]
    assert len(listed["trees"]) == 30
    assert not {"dbh_mm", "dbh_cm", "height_cm", "co2e_g"} & set(listed["trees"][0])  # blind
    check_url = f"/api/v1/baseline-checks/{check['id']}"
    outside = set(grown["trees"]) - {tree["tree_id"] for tree in listed["trees"]}
    stray = {
        "client_id": str(uuid.uuid4()),
        "tree_id": sorted(outside)[0],
        "dbh_cm": 3.0,
        "height_m": 2.0,
        "species_id": rw.FIR,
        "measured_at": "2026-02-01T09:00:00+08:00",
    }
    wrong = client.post(f"{check_url}/remeasurements", headers=verifier, json=stray)
    assert (wrong.status_code, wrong.json["error"]["code"]) == (422, "not_in_sample")
    early = client.post(f"{check_url}/decision", headers=verifier, json={})
    assert (early.status_code, early.json["error"]["code"]) == (409, "sample_incomplete")

    for tree in listed["trees"]:
        dbh_cm, height_m = registered_sizes(db, tree["tree_id"])
        body = stray | {
            "client_id": str(uuid.uuid4()),
            "tree_id": tree["tree_id"],
            "dbh_cm": dbh_cm,
            "height_m": height_m,
        }
        assert (
            client.post(f"{check_url}/remeasurements", headers=verifier, json=body).status_code
            == 201
        )
        replay = client.post(f"{check_url}/remeasurements", headers=verifier, json=body)
        assert (replay.status_code, replay.json["replayed"]) == (200, True)
    decided = client.post(f"{check_url}/decision", headers=verifier, json={"note": "按登记复测"})
    outcome = decided.json["baseline_check"]
    assert [outcome[key] for key in ("status", "found_trees", "ratio_ppm", "excess_ppm")] == [
        "passed",
        30,
        1_000_000,
        0,
    ]

    issued = issuance.issue(db, found, bundle, None)
    calc = db["credit_calculations"].get(grown["calculation_id"])
    assert issued["baseline_deduction_g"] == 0
    assert issued["tonnes"] == calc["tonnes"] * found["scale_ppm"] // 1_000_000 > 0


def test_baselines_recorded_too_small_fail_the_check_and_the_period_stays_unissued(db, world, ctx):
    grown = rw.grow_village(db, world.village_b, trees_per_household=12, start_mm=200)
    verifier_id = world.user_ids["verifier"]
    found = rw.verify(db, grown["calculation_id"], verifier_id, check_baseline=False)
    # every tree is 10 % thicker than registered: a quarter more stock than claimed
    check = rw.pass_baseline(db, grown["village"]["id"], verifier_id, grown_pcts=(10,))
    assert check["status"] == "failed"
    assert check["ratio_ppm"] > 1_000_000 / ratio.REJECT_RATIO
    with pytest.raises(ApiError) as refused:
        issuance.issue(db, found, rw.bundle(db), None)
    assert refused.value.code == "baseline_unchecked"
    # the failed check covers nothing: the village's trees can be checked again
    assert len(baseline.unchecked_trees(db, grown["village"]["id"])) == 12


def test_a_slight_shortfall_passes_and_its_upper_bound_comes_off_the_growth(db, world, ctx):
    grown = rw.grow_village(db, world.village_b, trees_per_household=40, start_mm=250, end_mm=300)
    verifier_id = world.user_ids["verifier"]
    found = rw.verify(db, grown["calculation_id"], verifier_id, check_baseline=False)
    check = rw.pass_baseline(db, grown["village"]["id"], verifier_id, grown_pcts=(0, 2))
    assert check["status"] == "passed"

    pairs = baseline.stock_pairs(db, check)
    upper = cochran_upper_bound(pairs, 40)
    assert 1 < sum(y for _, y in pairs) / sum(x for x, _ in pairs) < upper
    assert abs(check["upper_bound_ppm"] - upper * 1_000_000) <= 1
    assert check["excess_ppm"] == check["upper_bound_ppm"] - 1_000_000
    lines = list(
        db.query(
            "SELECT stock_start_g FROM credit_tree_lines WHERE calculation_id = ?",
            [grown["calculation_id"]],
        )
    )
    deduction = sum(-(-line["stock_start_g"] * check["excess_ppm"] // 1_000_000) for line in lines)
    calc = db["credit_calculations"].get(grown["calculation_id"])
    kept_ppm = (calc["gross_g"] - deduction) * 1_000_000 // calc["gross_g"]

    issued = issuance.issue(db, found, rw.bundle(db), None)
    assert issued["baseline_deduction_g"] == deduction > 0
    assert issued["tonnes"] == calc["tonnes"] * found["scale_ppm"] * kept_ppm // 10**12
    assert issued["tonnes"] < calc["tonnes"] * found["scale_ppm"] // 1_000_000
    assert sum(h["grams"] for h in issued["households"]) == issued["tonnes"] * 1_000_000


def test_too_few_sampled_trees_found_fails_the_check(db, world, ctx):
    grown = rw.grow_village(db, world.village_b, trees_per_household=6)
    verifier_id = world.user_ids["verifier"]
    check = baseline.assign(db, grown["village"], verifier_id, None)
    for index, tree in enumerate(baseline.blind_trees(db, check["id"])):
        dbh_cm, height_m = registered_sizes(db, tree["tree_id"])
        sizes = {"dbh_cm": dbh_cm, "height_m": height_m, "species_id": rw.FIR}
        baseline.remeasure(
            db,
            check,
            {"client_id": str(uuid.uuid4()), "tree_id": tree["tree_id"]}
            | ({"outcome": "not_found"} if index < 4 else sizes)
            | {"measured_at": "2026-02-01T09:00:00+08:00"},
            verifier_id,
        )
    decided = baseline.decide(db, check, None)
    assert (decided["status"], decided["found_trees"], decided["excess_ppm"]) == ("failed", 2, None)


def test_trees_registered_after_a_check_need_a_check_of_their_own(db, world, ctx):
    grown = rw.grow_village(db, world.village_b, trees_per_household=3)
    verifier_id = world.user_ids["verifier"]
    rw.pass_baseline(db, grown["village"]["id"], verifier_id)
    household = first(db, "SELECT * FROM households WHERE code = ?", [grown["households"][0]])
    late = str(uuid.uuid4())
    trees.register_tree(db, household, tree_id=late, species_id=rw.FIR, position="road")
    for when, dbh in (("2026-02-10T08:00:00Z", 40), ("2026-09-12T08:00:00Z", 300)):
        trees.record_measurement(
            db,
            late,
            measurement_id=str(uuid.uuid4()),
            stems_mm=[dbh],
            height_cm=2000,
            client_time=when,
            latitude=grown["village"]["latitude"],
            longitude=grown["village"]["longitude"],
            photo_sha256=rw.tree_photo(world.village_b),
        )
    assert list(baseline.unchecked_trees(db, grown["village"]["id"])) == [late]
    second = baseline.assign(db, grown["village"], verifier_id, None)
    assert (second["population"], second["sample_size"]) == (1, 1)


def test_a_later_period_starts_from_issued_tonnes_and_needs_no_new_check(app, client, world, db):
    with app.app_context():
        phone, office = Phone(client, world, db), Office(db, world)
        planted = phone.planted(
            [(days_ago(400), 200, 900), (days_ago(200), 215, 950), (days_ago(10), 230, 1000)],
            species=FIR,
        )
        office.review_all()
        opening = office.calculate(days_ago(420)[:10], days_ago(150)[:10])
        office.issue(opening["id"])
        assert db.execute("SELECT count(*) FROM baseline_checks").fetchone()[0] == 1
        assert planted["tree"] not in baseline.unchecked_trees(db, office.village["id"])
        later = office.calculate(days_ago(149)[:10], days_ago(1)[:10])
        assert planted["tree"] in {line["tree_id"] for line in later["trees"]}
        assert baseline.deduction_g(db, later["id"]) == (0, [])  # nothing left unchecked


def test_the_upper_bound_is_the_ratio_for_a_census_and_unbounded_from_one_tree():
    census = ratio.estimate([(100, 110), (200, 190)], population=2)
    assert census.upper_bound == census.ratio
    assert ratio.estimate([(100, 110)], population=50).upper_bound == math.inf
    pairs = [(100, 103), (200, 199), (150, 160), (120, 121)]
    assert abs(ratio.estimate(pairs, 40).upper_bound - cochran_upper_bound(pairs, 40)) < 1e-12


def test_the_admin_assigns_a_baseline_check_and_reads_its_outcome(app, client, db, world):
    with app.app_context():
        grown = rw.grow_village(db, world.village_b, trees_per_household=4)
    sign_in_form(client, "admin")
    home = client.get("/admin").get_data(as_text=True)
    assert "个村的登记基线还没有复核" in home
    page = client.get("/admin/baseline").get_data(as_text=True)
    assert f'action="/admin/villages/{world.village_b}/baseline-checks"' in page
    assert "4 棵树的登记基线未复核" in page

    refused = post_form(
        client, "/admin/baseline", f"/admin/villages/{world.village_b}/baseline-checks", {}
    ).get_data(as_text=True)
    assert "请选择村庄和核查员。" in refused
    assert db.execute("SELECT count(*) FROM baseline_checks").fetchone()[0] == 0
    done = post_form(
        client,
        "/admin/baseline",
        f"/admin/villages/{world.village_b}/baseline-checks",
        {"verifier_id": str(world.user_ids["verifier"])},
    ).get_data(as_text=True)
    assert "已为" in done and "抽取基线复核样本并指派核查员" in done
    assert "0 / 4" in done  # re-measured / sampled, while underway

    with app.app_context():
        check = baseline.get_check(
            db, db.execute("SELECT max(id) FROM baseline_checks").fetchone()[0]
        )
        for tree in baseline.blind_trees(db, check["id"]):
            dbh_cm, height_m = registered_sizes(db, tree["tree_id"])
            baseline.remeasure(
                db,
                check,
                {
                    "client_id": str(uuid.uuid4()),
                    "tree_id": tree["tree_id"],
                    "dbh_cm": dbh_cm,
                    "height_m": height_m,
                    "species_id": rw.FIR,
                    "measured_at": "2026-02-01T09:00:00+08:00",
                },
                world.user_ids["verifier"],
            )
        baseline.decide(db, check, None)
    page = client.get("/admin/baseline").get_data(as_text=True)
    assert "通过" in page and "100.0%" in page and "0.00% 登记碳储量" in page
    assert grown["village"]["name"] in page


def test_a_village_of_one_tree_passes_its_check_as_a_census(db, world, ctx):
    grown = rw.grow_village(db, world.village_b, trees_per_household=1)
    check = rw.pass_baseline(db, grown["village"]["id"], world.user_ids["verifier"])
    assert (check["status"], check["found_trees"], check["excess_ppm"]) == ("passed", 1, 0)
