"""A tonne that cannot be inflated: every way an outside audit found to invent or double
count growth, driven through the real sync and blob APIs and the registry services, is now
refused, or flagged and blocked, or credited correctly."""

import hashlib
import json
import threading
import uuid

import pytest
from conftest import bearer
from crediting_field import (
    CAMPHOR,
    FIR,
    METRES_PER_DEGREE,
    Office,
    Phone,
    days_ago,
    photo_bytes,
    stock_g,
)

from server.carbon import records
from server.carbon.method import Method, canonical_json, load_method
from server.carbon.records import credit_balance_g
from server.db import connect
from server.errors import ApiError
from server.registry import issuance, serials, verification


@pytest.fixture
def field(app, client, world, db):
    with app.app_context():
        yield Phone(client, world, db), Office(db, world)


def codes(flags: list[dict]) -> set[str]:
    return {flag["code"] for flag in flags}


def line_of(calc: dict, tree: str) -> dict | None:
    return next((line for line in calc["trees"] if line["tree_id"] == tree), None)


# --- 1. a rejected measurement never issues ------------------------------------------------


def test_1_a_calculation_made_before_a_rejection_is_void_and_issues_nothing(field, db):
    phone, office = field
    tree = phone.planted([(days_ago(400), 300, 1200), (days_ago(35), 600, 1500)], species=FIR)
    held = office.open_flags(tree["tree"])
    assert "growth_above_ceiling" in codes(held)
    calc = office.calculate(days_ago(60)[:10], days_ago(1)[:10])  # made before the review
    found = office.verify_as_claimed(calc["id"])
    assert found["status"] == "passed"

    for flag in held:
        decision = "rejected" if flag["code"] == "growth_above_ceiling" else "accepted"
        records.review_flag(db, flag["id"], decision, "复测只有 31 厘米", 1)

    assert db["credit_calculations"].get(calc["id"])["status"] == "void"
    with pytest.raises(ApiError) as refused:
        issuance.issue(db, verification.get_verification(db, found["id"]), office.bundle(), None)
    assert refused.value.code == "calculation_void"
    assert db["tonnes"].count == 0
    again = office.calculate(days_ago(60)[:10], days_ago(1)[:10])
    assert line_of(again, tree["tree"]) is None  # the rejected end reading is never used


def test_1_issue_rechecks_rejections_inside_its_transaction(field, db):
    """A rejection written behind the service's back (no voiding) is still caught."""
    phone, office = field
    tree = phone.planted([(days_ago(400), 200, 1100), (days_ago(35), 215, 1180)])
    office.review_all()
    calc = office.calculate(days_ago(60)[:10], days_ago(1)[:10])
    found = office.verify_as_claimed(calc["id"])
    end = line_of(calc, tree["tree"])["end_measurement_id"]
    db.execute(
        """INSERT INTO flags (measurement_id, tree_id, village_id, code, reason, created_at,
           decision, reviewed_at) VALUES (?, ?, ?, 'x', 'x', ?, 'rejected', ?)""",
        [end, tree["tree"], office.village["id"], days_ago(0), days_ago(0)],
    )

    with pytest.raises(ApiError) as refused:
        issuance.issue(db, found, office.bundle(), None)

    assert refused.value.code == "calculation_void"
    assert db["credit_calculations"].get(calc["id"])["status"] == "void"
    assert db["tonnes"].count == 0


# --- 2. a changed parameter set is never credited as growth ---------------------------------


def _denser(method: Method, species: str, factor: float) -> Method:
    """A copy of a parameter set whose species' above-ground model gives `factor` × more."""
    changed = json.loads(canonical_json(method.document))
    for entry in changed["species"]:
        if entry["id"] == species:
            for branch in entry["agb"]:
                branch["a"] *= factor
    changed["version"] = method.version + "-denser"
    return Method(changed["version"], hashlib.sha256(canonical_json(changed)).hexdigest(), changed)


def test_2_both_ends_of_a_period_come_from_the_one_parameter_set_it_names(field, db):
    phone, office = field
    old = load_method()
    tree = phone.planted([(days_ago(400), 200, 1100), (days_ago(35), 210, 1150)])
    office.review_all()
    new = _denser(old, FIR, 1.15)

    calc = office.calculate(days_ago(60)[:10], days_ago(1)[:10], method=new)

    line = line_of(calc, tree["tree"])
    start, end = stock_g(FIR, 20.0, 11.0, new), stock_g(FIR, 21.0, 11.5, new)
    assert (line["stock_start_g"], line["stock_end_g"]) == (start, end)
    assert calc["method_version"] == new.version
    windfall = end - stock_g(FIR, 20.0, 11.0, old)  # the old start against the new end
    assert line["stock_end_g"] - line["stock_start_g"] < windfall


# --- 3. late or backdated readings never re-anchor a period ---------------------------------


def test_3_a_low_reading_synced_late_into_an_issued_period_is_not_credited_again(field, db):
    phone, office = field
    tree = phone.planted([(days_ago(760), 200, 1100), (days_ago(400), 210, 1150)])
    office.review_all()
    first_period = office.calculate(days_ago(800)[:10], days_ago(390)[:10])
    office.issue(first_period["id"])
    first_line = line_of(first_period, tree["tree"])
    # A low reading dated inside the issued period arrives late, then a new one.
    low, result = phone.measure(tree["tree"], days_ago(700), 202, 1105)
    assert result["status"] == "applied"
    assert "reading_in_issued" in {
        f["code"] for f in db["flags"].rows_where("measurement_id = ?", [low])
    }
    phone.measure(tree["tree"], days_ago(35), 215, 1180, place=None)
    office.review_all()

    second = office.calculate(days_ago(389)[:10], days_ago(1)[:10])

    line = line_of(second, tree["tree"])
    assert line["start_measurement_id"] == first_line["end_measurement_id"]
    assert line["stock_start_g"] == first_line["stock_end_g"]
    real = stock_g(FIR, 21.5, 11.8) - stock_g(FIR, 21.0, 11.5)
    assert line["stock_end_g"] - line["stock_start_g"] == real
    twice = stock_g(FIR, 21.5, 11.8) - stock_g(FIR, 20.2, 11.05)
    assert real < twice


def test_3_a_calculation_over_an_issued_period_is_refused(field, client, world, db):
    phone, office = field
    phone.planted([(days_ago(760), 200, 1100), (days_ago(400), 210, 1150)])
    office.review_all()
    office.issue(office.calculate(days_ago(800)[:10], days_ago(390)[:10])["id"])
    before = db["credit_calculations"].count

    response = client.post(
        f"/api/v1/villages/{world.village_a}/credit-calculations",
        json={"period_start": days_ago(500)[:10], "period_end": days_ago(1)[:10]},
        headers=bearer(world.tokens["bureau"]),
    )

    assert response.status_code == 409
    assert response.json["error"]["code"] == "overlapping_period"
    assert db["credit_calculations"].count == before


def test_3_a_reading_received_more_than_a_month_late_waits_for_review(field, db):
    phone, office = field
    tree, _ = phone.register(days_ago(90))
    measurement, result = phone.measure(tree, days_ago(80), 200, 1100)

    assert result["status"] == "applied"
    flags = {f["code"]: f for f in db["flags"].rows_where("measurement_id = ?", [measurement])}
    assert flags["late_reading"]["decision"] is None  # blocks until a person accepts it


# --- 4. no reading before the tree was registered -------------------------------------------


def test_4_a_baseline_dated_before_registration_is_refused(field, db):
    phone, office = field
    tree, registered = phone.register(days_ago(0))
    assert registered["status"] == "applied"
    before = db["measurements"].count

    _, result = phone.measure(tree, days_ago(730), 200, 1100)

    assert result["status"] == "rejected"
    assert result["code"] == "before_registration"
    assert db["measurements"].count == before
    _, later = phone.measure(tree, days_ago(0), 300, 1400)
    assert later["status"] == "applied"
    calc = office.calculate(days_ago(800)[:10], days_ago(-1)[:10])
    assert line_of(calc, tree) is None  # one reading: a baseline, nothing credited


@pytest.mark.parametrize("when", ["0", "2026-13-01T00:00:00Z", "2026-06-01T08:00:00", "yesterday"])
def test_4_and_5_unparseable_client_dates_are_refused(field, db, when):
    phone, _ = field
    tree, _ = phone.register(days_ago(1))
    before = (db["measurements"].count, db["trees"].get(tree)["status"])

    _, measured = phone.measure(tree, when, 200, 1100)
    status = phone.mark(tree, "felled", when)

    assert measured["status"] == status["status"] == "rejected"
    assert (db["measurements"].count, db["trees"].get(tree)["status"]) == before


def test_4_a_date_far_in_the_future_is_refused(field, db):
    phone, _ = field
    tree, _ = phone.register(days_ago(1))
    _, result = phone.measure(tree, days_ago(-3), 200, 1100)
    assert result["status"] == "rejected"


# --- 5. a dead or felled tree loses what it was credited -------------------------------------


def test_5_a_felling_dated_anywhere_debits_the_credit_and_cancels_buffer_tonnes(field, db):
    phone, office = field
    planted = [
        phone.planted([(days_ago(760), 100, 800), (days_ago(400), 200, 1400)]) for _ in range(16)
    ]
    office.review_all()
    calc = office.calculate(days_ago(800)[:10], days_ago(390)[:10])
    issued = office.issue(calc["id"])
    assert issued["buffer_tonnes"] >= 1
    victim = planted[0]["tree"]
    credited = credit_balance_g(db, victim)
    assert credited > 0
    before = serials.bundle_totals(db, issued["bundle_id"])

    # Felled "before the period": the date does not shield it.
    result = phone.mark(victim, "felled", days_ago(700))

    assert result["status"] == "applied"
    (loss,) = db["losses"].rows_where("tree_id = ?", [victim])
    assert (loss["grams"], loss["reason"]) == (credited, "felled")
    after = serials.bundle_totals(db, issued["bundle_id"])
    assert after["cancelled"] == before["cancelled"] + 1 == 1
    assert after["buffer"] == before["buffer"] - 1
    assert credit_balance_g(db, victim) == 0
    # Marking it again debits nothing more: a tree never loses more than it was credited.
    phone.mark(victim, "alive", days_ago(1))
    phone.mark(victim, "dead", days_ago(0))
    assert sum(r["grams"] for r in db["losses"].rows_where("tree_id = ?", [victim])) == credited


def test_5_a_status_before_registration_is_refused(field, db):
    phone, _ = field
    tree, _ = phone.register(days_ago(2))
    result = phone.mark(tree, "dead", days_ago(400))
    assert result["status"] == "rejected"
    assert db["trees"].get(tree)["status"] == "alive"


# --- 6. plausibility against the anchor ------------------------------------------------------


def test_6_ten_small_daily_steps_are_judged_against_the_anchor(field, db):
    phone, _ = field
    tree, _ = phone.register(days_ago(11), species=CAMPHOR)
    place = phone.spot()
    flagged = []
    for day, dbh in zip(range(11, 0, -1), range(100, 155, 5), strict=False):
        measurement, _ = phone.measure(tree, days_ago(day), dbh, 600, place=place)
        flagged.append(
            "growth_above_ceiling"
            in {f["code"] for f in db["flags"].rows_where("measurement_id = ?", [measurement])}
        )
    assert flagged[0] is False  # the anchor itself
    assert all(flagged[2:])  # +1 cm in two days is already beyond a camphor's year


def test_6_a_height_jump_is_flagged(field, db):
    phone, _ = field
    tree = phone.planted([(days_ago(20), 300, 1200), (days_ago(5), 305, 2700)])
    flags = {f["code"] for f in db["flags"].rows_where("measurement_id = ?", [tree["readings"][1]])}
    assert "height_jump" in flags


def test_6_a_dbh_on_a_tree_below_breast_height_is_refused(field, db):
    phone, _ = field
    tree, _ = phone.register(days_ago(1))
    _, result = phone.measure(tree, days_ago(1), 20, 50)
    assert result["status"] == "rejected"
    assert list(db["measurements"].rows_where("tree_id = ?", [tree])) == []


def test_6_the_seeds_3_year_camphor_adding_15_kg_is_flagged(field, db):
    phone, _ = field
    three_years_ago = int(days_ago(0)[:4]) - 3
    tree, _ = phone.register(days_ago(20), species=CAMPHOR, planting_year=three_years_ago)
    place = phone.spot()
    phone.measure(tree, days_ago(20), 50, 300, place=place)
    grown, _ = phone.measure(tree, days_ago(2), 69, 380, place=place)
    flags = {f["code"] for f in db["flags"].rows_where("measurement_id = ?", [grown])}
    assert "growth_above_ceiling" in flags


# --- 7. sizes outside the model's range ------------------------------------------------------


def test_7_growth_beyond_the_fitted_range_is_capped_and_says_why(field, db):
    phone, office = field
    fir = load_method().species[FIR]
    high = fir["fitted_range"]["dbh_cm"][1]
    tree = phone.planted([(days_ago(400), 300, 1800), (days_ago(35), 1000, 3000)])
    assert "outside_fitted_range" in {
        f["code"] for f in db["flags"].rows_where("measurement_id = ?", [tree["readings"][1]])
    }
    office.review_all()

    calc = office.calculate(days_ago(60)[:10], days_ago(1)[:10])

    line = line_of(calc, tree["tree"])
    assert str(high).rstrip("0").rstrip(".") in line["note"]
    height = min(30.0, (fir["fitted_range"].get("height_m") or [0, 30.0])[1])
    assert line["stock_end_g"] == stock_g(FIR, high, height)
    assert line["stock_end_g"] < stock_g(FIR, 100.0, 30.0) / 3


def test_7_a_girth_typed_as_a_diameter_is_flagged(field, db):
    phone, _ = field
    tree = phone.planted([(days_ago(2), 471, 1200)])  # a 15 cm fir's girth
    flags = {f["code"] for f in db["flags"].rows_where("measurement_id = ?", [tree["readings"][0]])}
    assert "size_envelope" in flags


# --- 8. the buffer is the methodology's ------------------------------------------------------


@pytest.mark.parametrize("buffer_pct", [0, 5, 19, 20, 50])
def test_8_the_buffer_is_never_a_request_field(client, world, db, buffer_pct):
    before = db["credit_calculations"].count
    response = client.post(
        f"/api/v1/villages/{world.village_a}/credit-calculations",
        json={"period_start": "2026-01-01", "period_end": "2026-06-30", "buffer_pct": buffer_pct},
        headers=bearer(world.tokens["bureau"]),
    )
    assert response.status_code == 422
    assert db["credit_calculations"].count == before


def test_8_every_calculation_withholds_at_least_twenty_percent(field):
    _, office = field
    assert office.calculate("2026-01-01", "2026-06-30")["buffer_pct"] >= 20


# --- 9. verification measures the error ------------------------------------------------------


def _verify(db, world, calc_id: int, wrong: int, *, outcome: str = "measured") -> dict:
    """Re-measure the sample: the first `wrong` trees have not grown at all (or are not
    found), the rest are as claimed."""
    calc = db["credit_calculations"].get(calc_id)
    found = verification.assign(db, calc, world.user_ids["verifier"], None)
    sample = db.query(
        """SELECT vs.tree_id, e.dbh_mm, e.height_cm, s.dbh_mm AS s_mm, s.height_cm AS s_cm
           FROM verification_samples vs JOIN measurements e ON e.id = vs.claimed_measurement_id
           JOIN credit_tree_lines l ON l.calculation_id = ? AND l.tree_id = vs.tree_id
           JOIN measurements s ON s.id = l.start_measurement_id
           WHERE vs.verification_id = ? ORDER BY vs.tree_id""",
        [calc_id, found["id"]],
    )
    for index, row in enumerate(sample):
        body = {
            "client_id": str(uuid.uuid4()),
            "tree_id": row["tree_id"],
            "measured_at": days_ago(0),
        }
        if index < wrong and outcome != "measured":
            body["outcome"] = outcome
        else:
            false = index < wrong
            body |= {
                "dbh_cm": (row["s_mm"] if false else row["dbh_mm"]) / 10,
                "height_m": (row["s_cm"] if false else row["height_cm"]) / 100,
                "species_id": FIR,
            }
        verification.remeasure(db, found, body, world.user_ids["verifier"])
    return verification.decide(db, found, None, "核查员")


def _village_of(phone, office, trees: int) -> dict:
    for _ in range(trees):
        phone.planted([(days_ago(400), 150, 1000), (days_ago(35), 170, 1100)])
    office.review_all()
    return office.calculate(days_ago(60)[:10], days_ago(1)[:10])


def test_9_six_of_thirty_trees_with_no_growth_reject_the_period(field, db, world):
    phone, office = field
    calc = _village_of(phone, office, 30)

    found = _verify(db, world, calc["id"], 6)

    assert found["status"] == "failed"  # ratio 0.8: below the 0.85 floor
    assert found["ratio_ppm"] == 800_000
    assert found["scale_ppm"] == 0
    with pytest.raises(ApiError):
        issuance.issue(db, found, office.bundle(), None)
    assert db["tonnes"].count == 0


def test_9_a_small_error_issues_the_lower_confidence_bound(field, db, world):
    phone, office = field
    calc = _village_of(phone, office, 40)  # a sample of 30 of 40 trees

    found = _verify(db, world, calc["id"], 1, outcome="not_found")

    assert found["status"] == "partial"
    assert found["ratio_ppm"] == 29 * 1_000_000 // 30
    assert 0 < found["scale_ppm"] < found["ratio_ppm"]


def test_9_a_remeasurement_needs_height_as_well_as_dbh(field, db, world):
    phone, office = field
    calc = _village_of(phone, office, 3)
    found = verification.assign(
        db, db["credit_calculations"].get(calc["id"]), world.user_ids["verifier"], None
    )
    tree = next(iter(db.query("SELECT tree_id FROM verification_samples")))["tree_id"]
    body = {
        "client_id": str(uuid.uuid4()),
        "tree_id": tree,
        "dbh_cm": 17.0,
        "species_id": FIR,
        "measured_at": days_ago(0),
    }
    with pytest.raises(ApiError) as refused:
        verification.remeasure(db, found, body, world.user_ids["verifier"])
    assert [d["field"] for d in refused.value.details] == ["height_m"]
    assert db["remeasurements"].count == 0


# --- 10. one tree is one tree ----------------------------------------------------------------


def test_10_the_same_tree_under_another_household_or_species_is_flagged(field, app, db, world):
    from server import households, villages

    phone, _ = field
    with app.app_context():
        other = households.create_household(
            db, villages.get_village(world.village_a), head_name="赵"
        )
    place = phone.spot() | {"gps_accuracy_m": 8.0}
    first = phone.planted([(days_ago(3), 200, 1100)])
    tree, _ = phone.register(days_ago(3), household=other["code"])
    moved = place | {"latitude": place["latitude"] + 3 / METRES_PER_DEGREE}
    phone.measure(first["tree"], days_ago(3), 200, 1100, place=place)
    twin, _ = phone.measure(tree, days_ago(2), 201, 1100, place=moved)
    camphor, _ = phone.register(days_ago(2), species=CAMPHOR)
    twin2, _ = phone.measure(camphor, days_ago(2), 200, 1100, place=moved)

    for measurement in (twin, twin2):
        flags = {f["code"] for f in db["flags"].rows_where("measurement_id = ?", [measurement])}
        assert "possible_duplicate" in flags


def test_10_gps_left_off_is_flagged_not_a_free_pass(field, db):
    phone, _ = field
    tree, _ = phone.register(days_ago(2))
    measurement, _ = phone.measure(tree, days_ago(2), 200, 1100, place={})
    flags = {f["code"]: f for f in db["flags"].rows_where("measurement_id = ?", [measurement])}
    assert flags["gps_missing"]["decision"] is None


def test_10_a_photo_reused_on_another_tree_exactly_or_re_encoded_is_flagged(field, db):
    phone, _ = field
    original = photo_bytes("one tree")
    first, _ = phone.register(days_ago(2))
    phone.measure(first, days_ago(2), 200, 1100, photo=original)
    second, _ = phone.register(days_ago(2))
    same, _ = phone.measure(second, days_ago(2), 210, 1100, photo=original)
    third, _ = phone.register(days_ago(2))
    copy, _ = phone.measure(third, days_ago(2), 220, 1100, photo=photo_bytes("one tree", 60))

    for measurement in (same, copy):
        flags = {f["code"] for f in db["flags"].rows_where("measurement_id = ?", [measurement])}
        assert "photo_reused" in flags


def test_10_growth_issues_only_once_its_photo_is_stored(field, db):
    phone, office = field
    tree, _ = phone.register(days_ago(400))
    place = phone.spot()
    phone.measure(tree, days_ago(400), 200, 1100, place=place)
    measurement = str(uuid.uuid4())
    payload = place | {
        "measurement_id": measurement,
        "stems_mm": [215],
        "height_cm": 1180,
        "photo_sha256": "ef" * 32,  # never uploaded
    }
    phone.push(phone.op("tree.measure", tree, payload, days_ago(35)))
    office.review_all()
    calc = office.calculate(days_ago(60)[:10], days_ago(1)[:10])
    found = office.verify_as_claimed(calc["id"])

    with pytest.raises(ApiError) as refused:
        issuance.issue(db, found, office.bundle(), None)

    assert refused.value.code == "photos_missing"
    assert db["tonnes"].count == 0


# --- 11. two issuances racing ------------------------------------------------------------------


def test_11_two_overlapping_periods_issued_at_once_issue_exactly_one(field, app, db, world):
    phone, office = field
    for _ in range(6):
        phone.planted([(days_ago(400), 100, 800), (days_ago(35), 160, 1100)])
    office.review_all()
    one = office.calculate(days_ago(60)[:10], days_ago(1)[:10])
    two = office.calculate(days_ago(50)[:10], days_ago(2)[:10])
    found = [office.verify_as_claimed(c["id"]) for c in (one, two)]
    bundle = office.bundle()
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def race(verified: dict) -> None:
        own = connect(app.config["DATABASE"])
        barrier.wait()
        try:
            with app.app_context():
                issuance.issue(own, verified, bundle, None)
            outcomes.append("issued")
        except ApiError as error:
            outcomes.append(error.code)
        except Exception as error:  # noqa: BLE001 - shown in the assertion below
            outcomes.append(repr(error))
        finally:
            own.close()

    threads = [threading.Thread(target=race, args=(v,)) for v in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["issued", "overlapping_period"]
    assert db.execute("SELECT count(*) FROM issuances").fetchone()[0] == 1


# --- what the tonne is -----------------------------------------------------------------------

NOTE = "本地自愿减排量"


def test_every_page_that_sells_or_shows_a_tonne_says_what_it_is(client, field, db, world):
    from tests import registry_world as rw

    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    pages = {
        "/methodology": client.get("/methodology"),
        "/calculator": client.get("/calculator"),
        f"/bundles/{bundle['id']}": client.get(f"/bundles/{bundle['id']}"),
        "/verify/SPC-2026-000001": client.get("/verify/SPC-2026-000001"),
    }
    for path, response in pages.items():
        text = response.get_data(as_text=True)
        assert NOTE in text and "CCER" in text and "VM0047" in text, path
        assert 'href="/methodology"' in text, path
    methodology = pages["/methodology"].get_data(as_text=True)
    assert "20%" in methodology and "0.85" in methodology


# --- losses on the ledger ----------------------------------------------------------------------


def test_cancellations_are_anchored_and_an_edited_one_is_found_by_reconcile(app, db, world):
    from server.chain.deploy import attach
    from server.chain.node import connect_pyevm
    from server.chain.worker import Worker
    from server.reconcile import reconcile
    from server.trees import set_status
    from tests import registry_world as rw

    with app.app_context():
        _, _, grown = rw.stocked_bundle(db, world.user_ids["verifier"])
        at = "2026-11-01T00:00:00.000Z"
        losses = [set_status(db, tree, "dead", at) for tree in grown["trees"][:2]]
    assert all(losses), losses
    assert db["loss_cancellations"].count >= 1
    chain = connect_pyevm()
    attach(chain, db)
    Worker(chain, db, receipt_timeout=5).run_until_idle()

    differences, _ = reconcile(db, chain.ledger, app.config["CODE_KEY"])
    assert [d.line() for d in differences] == []

    db.execute(
        "DELETE FROM loss_cancellations WHERE rowid = (SELECT max(rowid) FROM loss_cancellations)"
    )
    differences, _ = reconcile(db, chain.ledger, app.config["CODE_KEY"])
    assert any("loss_cancellations" in d.line() for d in differences)
