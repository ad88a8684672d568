"""The registry through its HTTP API: verification, issuance, bundles, orders, payment."""

import math
import uuid
from fractions import Fraction

import pytest

from server.carbon.method import load_method
from server.registry import ratio, sampling, serials, verification
from tests import registry_world as rw
from tests.conftest import bearer


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def grown(db, world, **kwargs):
    return rw.grow_village(db, world.village_b, **kwargs)


def test_sample_is_five_percent_at_least_thirty_and_reproducible_from_its_seed():
    trees = [f"tree-{n:04d}" for n in range(1000)]
    assert sampling.sample_size(10) == 10
    assert sampling.sample_size(100) == 30
    assert sampling.sample_size(1000) == 50
    first = sampling.draw_sample(trees, "ab" * 16)
    assert first == sampling.draw_sample(list(reversed(trees)), "ab" * 16)
    assert first != sampling.draw_sample(trees, "cd" * 16)


CLAIM = {
    "start_time": "2026-01-10T08:00:00.000Z",
    "end_time": "2027-01-10T08:00:00.000Z",
    "start_dbh_mm": 200,
    "end_dbh_mm": 220,  # 2 cm in a year: half a year's growth is 1 cm
    "start_height_cm": 1200,
    "end_height_cm": 1300,
    "species_id": rw.FIR,
}


@pytest.mark.parametrize(
    ("dbh_mm", "height_cm", "species", "reasons"),
    [
        (220, 1300, rw.FIR, []),
        (230, 1300, rw.FIR, []),  # 1 cm: half a year of this tree's growth
        (231, 1300, rw.FIR, ["dbh"]),
        (210, 1300, rw.FIR, []),
        (209, 1300, rw.FIR, ["dbh"]),
        (220, 1365, rw.FIR, []),  # 5 % of 13 m
        (220, 1366, rw.FIR, ["height"]),
        (220, 1300, "cinnamomum_camphora", ["species"]),
    ],
)
def test_tolerance_is_half_a_year_of_the_trees_own_growth(dbh_mm, height_cm, species, reasons):
    row = {"outcome": "measured", "dbh_mm": dbh_mm, "height_cm": height_cm, "species_id": species}
    assert verification.mismatches(CLAIM, row) == reasons


def test_a_slow_tree_keeps_the_measurement_tolerance():
    slow = CLAIM | {"end_dbh_mm": 201}
    assert verification.tolerances(slow) == (0.3, 0.65)


@pytest.mark.parametrize("outcome", ["not_found", "dead", "felled"])
def test_a_tree_not_found_dead_or_felled_is_its_own_reason(outcome):
    row = {"outcome": outcome, "dbh_mm": None, "height_cm": None, "species_id": None}
    assert verification.mismatches(CLAIM, row) == [outcome]


def cochran_lower_bound(pairs, population):
    """The ratio estimator's one-sided 95 % lower bound, written out independently."""
    n = len(pairs)
    xs, ys = [Fraction(x) for x, _ in pairs], [Fraction(y) for _, y in pairs]
    r = sum(ys) / sum(xs)
    s2 = sum((y - r * x) ** 2 for x, y in zip(xs, ys, strict=True)) / (n - 1)
    variance = (1 - Fraction(n, population)) * s2 / (n * (sum(xs) / n) ** 2)
    return float(r) - ratio.t95(n - 1) * math.sqrt(variance)


def test_verification_end_to_end_through_the_api(client, db, world, ctx):
    made = grown(db, world, households_count=2, trees_per_household=20)
    claims = {
        row["tree_id"]: row
        for row in db.query(
            """SELECT l.tree_id, l.stock_start_g, l.stock_end_g FROM credit_tree_lines l
               WHERE l.calculation_id = ?""",
            [made["calculation_id"]],
        )
    }
    admin, verifier = bearer(world.tokens["admin"]), bearer(world.tokens["verifier"])
    response = client.post(
        f"/api/v1/credit-calculations/{made['calculation_id']}/verification",
        headers=bearer(world.tokens["bureau"]),
        json={"verifier_id": world.user_ids["verifier"]},
    )
    assert response.status_code == 201
    found = response.json["verification"]
    assert (found["population"], found["sample_size"]) == (40, 30)
    assert len(found["seed"]) == 32
    assignments = client.get("/api/v1/verifier/assignments", headers=verifier).json
    (assignment,) = assignments["assignments"]
    sample = assignment["trees"]
    assert len(sample) == 30
    assert set(sample[0]) >= {"tree_id", "tag", "household_code", "species_id", "position"}
    assert not {"dbh_mm", "dbh_cm", "height_cm", "co2e_g"} & set(sample[0])  # blind
    url = f"/api/v1/verifications/{found['id']}"
    pairs = []
    for index, tree in enumerate(sample):
        body = {
            "client_id": str(uuid.uuid4()),
            "tree_id": tree["tree_id"],
            # the first has not grown at all since its start: its claimed growth is false
            "dbh_cm": 36.0 if index else 3.0,
            "height_m": 25.0 if index else 2.0,
            "species_id": tree["species_id"],
            "measured_at": "2026-10-02T09:30:00+08:00",
        }
        claim = claims[tree["tree_id"]]
        grown_g = claim["stock_end_g"] - claim["stock_start_g"]
        pairs.append((grown_g, grown_g if index else 0))
        response = client.post(f"{url}/remeasurements", headers=verifier, json=body)
        assert response.status_code == 201
        assert "within_tolerance" not in response.json["remeasurement"]
        again = client.post(f"{url}/remeasurements", headers=verifier, json=body)
        assert (again.status_code, again.json["replayed"]) == (200, True)
    assert db.execute("SELECT count(*) FROM remeasurements").fetchone()[0] == 30
    decided = client.post(f"{url}/decision", headers=verifier, json={"note": "ok"}).json
    assert decided["verification"]["status"] == "partial"
    assert decided["verification"]["ratio_ppm"] == 29 * 1_000_000 // 30
    lower = cochran_lower_bound(pairs, 40)
    assert 0.9 < lower < 29 / 30
    assert abs(decided["verification"]["scale_ppm"] - lower * 1_000_000) <= 1
    pdf = client.get(f"{url}/report.pdf", headers=admin)
    assert pdf.data.startswith(b"%PDF")
    import hashlib

    assert hashlib.sha256(pdf.data).hexdigest() == decided["verification"]["report_sha256"]
    bundle = client.post("/api/v1/bundles", headers=admin, json=_bundle_body()).json["bundle"]
    refused = client.post(f"{url}/issuance", headers=admin, json={"bundle_id": bundle["id"]})
    assert (refused.status_code, refused.json["error"]["code"]) == (409, "baseline_unchecked")
    assert db["credit_calculations"].get(made["calculation_id"])["status"] == "draft"
    rw.pass_baseline(db, made["village"]["id"], world.user_ids["verifier"])
    issued = client.post(f"{url}/issuance", headers=admin, json={"bundle_id": bundle["id"]})
    assert issued.status_code == 201, issued.json
    issuance = issued.json["issuance"]
    calc = db["credit_calculations"].get(made["calculation_id"])
    assert calc["status"] == "issued"
    scale = decided["verification"]["scale_ppm"]
    assert issuance["tonnes"] == calc["tonnes"] * scale // 1_000_000
    assert issuance["buffer_tonnes"] == -(-issuance["tonnes"] * calc["buffer_pct"] // 100)
    assert sum(h["grams"] for h in issuance["households"]) == issuance["tonnes"] * 1_000_000
    assert issuance["first_serial"] == "SP-360423-0001-2026-000001"
    buffer = [r["buffer"] for r in db.query("SELECT buffer FROM tonnes ORDER BY seq")]
    assert (
        buffer
        == [0] * (issuance["tonnes"] - issuance["buffer_tonnes"]) + [1] * issuance["buffer_tonnes"]
    )
    twice = client.post(f"{url}/issuance", headers=admin, json={"bundle_id": bundle["id"]})
    assert (twice.status_code, twice.json["error"]["code"]) == (409, "already_issued")


def _bundle_body(**rules):
    return {
        "county_code": "360423",
        "name": "武宁县四旁树碳汇包",
        "vintage_from": 2025,
        "vintage_to": 2026,
        "methods": [load_method().version],
    } | rules


def test_a_failed_verification_issues_nothing(db, world, ctx):
    made = grown(db, world, trees_per_household=5)
    found = rw.verify(db, made["calculation_id"], world.user_ids["verifier"], failing=2)
    assert found["status"] == "failed"
    from server.errors import ApiError
    from server.registry import issuance

    with pytest.raises(ApiError) as error:
        issuance.issue(db, found, rw.bundle(db), None)
    assert error.value.code == "not_verified"
    assert db.execute("SELECT count(*) FROM tonnes").fetchone()[0] == 0


def test_verifier_cannot_remeasure_outside_the_sample_or_anothers_sample(client, db, world, ctx):
    made = grown(db, world, trees_per_household=3)
    calc = db["credit_calculations"].get(made["calculation_id"])
    found = verification.assign(db, calc, world.user_ids["verifier"], None)
    body = {
        "client_id": str(uuid.uuid4()),
        "tree_id": world.tree_a,
        "dbh_cm": 11,
        "species_id": rw.FIR,
        "measured_at": "2026-10-02T09:30:00+08:00",
    }
    url = f"/api/v1/verifications/{found['id']}/remeasurements"
    response = client.post(url, headers=bearer(world.tokens["verifier"]), json=body)
    assert (response.status_code, response.json["error"]["code"]) == (422, "not_in_sample")
    assert response.json["error"]["message"] == "这棵树不在本次核查的样本里。"  # the phone shows it
    decision = client.post(
        f"/api/v1/verifications/{found['id']}/decision",
        headers=bearer(world.tokens["verifier"]),
        json={},
    )
    assert (decision.status_code, decision.json["error"]["code"]) == (409, "sample_incomplete")
    assert db.execute("SELECT count(*) FROM remeasurements").fetchone()[0] == 0


def test_bundle_rules_are_checked_fixed_and_versioned(client, db, world, ctx):
    admin = bearer(world.tokens["admin"])
    bad = client.post("/api/v1/bundles", headers=admin, json=_bundle_body(households_pct=55))
    assert bad.status_code == 422
    bad = client.post(
        "/api/v1/bundles",
        headers=admin,
        json=_bundle_body(households_pct=70, collective_pct=20, maintenance_pct=20),
    )
    assert bad.status_code == 422
    made = client.post("/api/v1/bundles", headers=admin, json=_bundle_body()).json["bundle"]
    assert made["split"]["households_pct"] == 65
    assert client.get(f"/api/v1/bundles/{made['id']}").status_code == 404  # a draft
    assert client.get(f"/api/v1/bundles/{made['id']}", headers=admin).status_code == 200
    assert client.get(f"/bundles/{made['id']}").status_code == 404
    import sqlite3

    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE bundles SET price_fen = 1 WHERE id = ?", [made["id"]])
    v2 = client.post(
        f"/api/v1/bundles/{made['id']}/versions", headers=admin, json={"price_fen": 12000}
    )
    assert v2.status_code == 201
    assert (v2.json["bundle"]["version"], v2.json["bundle"]["number"]) == (2, made["number"])
    assert db["bundles"].get(made["id"])["status"] == "superseded"


def test_bundle_outside_its_rules_refuses_the_issuance(db, world, ctx):
    made = grown(db, world)
    found = rw.verify(db, made["calculation_id"], world.user_ids["verifier"])
    from server.errors import ApiError
    from server.registry import issuance

    with pytest.raises(ApiError) as error:
        issuance.issue(db, found, rw.bundle(db, vintage_from=2020, vintage_to=2024), None)
    assert error.value.code == "rules_not_met"
    with pytest.raises(ApiError):
        issuance.issue(
            db,
            found,
            rw.bundle(
                db,
                methods=["sipang-2026.1"],
                min_households=1,
                max_household_share_pct=100,
                vintage_from=2027,
                vintage_to=2028,
            ),
            None,
        )


def test_a_felled_tree_cancels_buffer_tonnes_at_once_oldest_first(db, world, ctx):
    from server.carbon.records import credit_balance_g
    from server.errors import ApiError
    from server.registry import issuance
    from server.trees import set_status

    bundle, issued, made = rw.stocked_bundle(db, world.user_ids["verifier"])
    tree = made["trees"][0]
    credited = credit_balance_g(db, tree)
    assert credited > 0
    before = serials.bundle_totals(db, bundle["id"])
    oldest_buffer = db.execute(
        "SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'buffer' ORDER BY seq",
        [bundle["id"]],
    ).fetchone()[0]
    loss = set_status(db, tree, "felled", "2026-12-01T00:00:00.000Z")
    after = serials.bundle_totals(db, bundle["id"])
    assert loss["grams"] == credited
    assert loss["cancelled"] == [oldest_buffer]  # ceil(credited / 1 t) = 1, the oldest buffer
    assert after["buffer"] == before["buffer"] - 1 and after["cancelled"] == 1
    assert credit_balance_g(db, tree) == 0
    assert (
        db.execute(
            "SELECT count(*) FROM chain_outbox WHERE kind = 'anchor' AND payload LIKE ?",
            ["%cancellation:%"],
        ).fetchone()[0]
        == 1
    )
    again = issuance.reverse(db, issued, [tree], None)  # already debited: nothing new
    assert (again["grams"], again["cancelled"]) == (credited, [oldest_buffer])
    assert serials.bundle_totals(db, bundle["id"]) == after
    with pytest.raises(ApiError):  # a living tree
        issuance.reverse(db, issued, [made["trees"][1]], None)


def test_order_pay_retire_with_certificate(client, db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    body = {
        "request_id": "req-" + uuid.uuid4().hex,
        "bundle_id": bundle["id"],
        "tonnes": 2,
        "beneficiary": "李小明",
        "reason": "抵消通勤",
        "show_beneficiary": True,  # the buyer lets the public see the name
    }
    csrf = client.get("/api/v1/auth/csrf").json["csrf_token"]
    headers = {"X-CSRFToken": csrf}
    made = client.post("/api/v1/orders", json=body, headers=headers)
    assert made.status_code == 201
    order = made.json["order"]
    assert order["amount_fen"] == 20000 and order["status"] == "reserved"
    again = client.post("/api/v1/orders", json=body, headers=headers)
    assert (again.status_code, again.json["order"]["public_id"]) == (200, order["public_id"])
    assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
    reused = client.post("/api/v1/orders", json=body | {"tonnes": 1}, headers=headers)
    assert (reused.status_code, reused.json["error"]["code"]) == (409, "request_id_reused")
    reserved = [
        r["serial"] for r in db.query("SELECT serial FROM tonnes WHERE status = 'reserved'")
    ]
    assert reserved == ["SP-360423-0001-2026-000001", "SP-360423-0001-2026-000002"]
    paid = client.post(
        f"/api/v1/orders/{order['public_id']}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "bank", "reference": "ICBC-0001"},
    )
    assert paid.status_code == 200
    assert paid.json["order"]["status"] == "retired"
    (cert,) = paid.json["order"]["certificates"]
    assert cert["id"].startswith("SPC-2026-") or cert["id"].startswith("SPC-")
    shown = client.get(f"/api/v1/certificates/{cert['id']}").json
    assert shown["check"]["valid"] is True
    assert shown["certificate"]["document"]["serials"] == reserved
    assert shown["certificate"]["document"]["beneficiary"] == "李小明"
    replay = client.post(
        f"/api/v1/orders/{order['public_id']}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "bank", "reference": "ICBC-0001"},
    )
    assert replay.status_code == 200
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 1
    other = client.post(
        f"/api/v1/orders/{order['public_id']}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "bank", "reference": "ICBC-0002"},
    )
    assert (other.status_code, other.json["error"]["code"]) == (409, "already_paid")


@pytest.mark.parametrize("tonnes", [0, -1, 1.5, 10**7, "1", None, 2**70])
def test_bad_tonnes_are_refused_and_change_nothing(client, db, world, ctx, tonnes):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    before = serials.bundle_totals(db, bundle["id"])
    response = client.post(
        "/api/v1/orders",
        headers=bearer(world.tokens["enterprise"]),
        json={"request_id": "req-bad-tonnes", "bundle_id": bundle["id"], "tonnes": tonnes},
    )
    assert response.status_code == 422
    assert set(response.json["error"]) >= {"status", "code", "message"}
    assert serials.bundle_totals(db, bundle["id"]) == before
    assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 0


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "李<b>明</b>", "a\x00b", "   "])
def test_a_beneficiary_with_markup_is_refused(client, db, world, ctx, name):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    response = client.post(
        "/api/v1/orders",
        headers=bearer(world.tokens["enterprise"]),
        json={
            "request_id": "req-markup-1",
            "bundle_id": bundle["id"],
            "tonnes": 1,
            "beneficiary": name,
        },
    )
    assert response.status_code == 422
    assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 0


def test_sold_out_mid_order_and_expired_reservation(client, db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    available = serials.bundle_totals(db, bundle["id"])["available"]
    enterprise = bearer(world.tokens["enterprise"])
    too_many = client.post(
        "/api/v1/orders",
        headers=enterprise,
        json={"request_id": "req-too-many", "bundle_id": bundle["id"], "tonnes": available + 1},
    )
    assert (too_many.status_code, too_many.json["error"]["code"]) == (409, "sold_out")
    assert too_many.json["error"]["details"] == {"available": available}
    all_of_it = client.post(
        "/api/v1/orders",
        headers=enterprise,
        json={"request_id": "req-all-of-it", "bundle_id": bundle["id"], "tonnes": available},
    ).json["order"]
    db.execute(
        "UPDATE orders SET expires_at = '2000-01-01T00:00:00.000Z' WHERE public_id = ?",
        [all_of_it["public_id"]],
    )
    db.conn.commit()
    paid = client.post(
        f"/api/v1/orders/{all_of_it['public_id']}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "digital_rmb", "reference": "ECNY-0001"},
    )
    assert (paid.status_code, paid.json["error"]["code"]) == (409, "reservation_expired")
    assert serials.bundle_totals(db, bundle["id"])["available"] == available
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0


def test_enterprise_holds_then_retires_in_parts(client, db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    enterprise = bearer(world.tokens["enterprise"])
    order = client.post(
        "/api/v1/orders",
        headers=enterprise,
        json={"request_id": "req-court-case", "bundle_id": bundle["id"], "tonnes": 3},
    ).json["order"]
    assert order["buyer_kind"] == "enterprise"
    client.post(
        f"/api/v1/orders/{order['public_id']}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "bank", "reference": "BOC-COURT-1"},
    )
    assert serials.bundle_totals(db, bundle["id"])["held"] == 3
    url = f"/api/v1/orders/{order['public_id']}/retirements"
    body = {
        "request_id": "retire-part-1",
        "tonnes": 2,
        "beneficiary": "某化工有限公司",
        "reason": "（2026）赣0423刑初12号",
    }
    first = client.post(url, headers=enterprise, json=body)
    assert first.status_code == 201
    assert first.json["certificate"]["document"]["tonnes"] == 2
    replay = client.post(url, headers=enterprise, json=body)
    assert (replay.status_code, replay.json["replayed"]) == (200, True)
    too_many = client.post(url, headers=enterprise, json=body | {"request_id": "retire-part-2"})
    assert (too_many.status_code, too_many.json["error"]["code"]) == (409, "not_held")
    rest = client.post(
        url, headers=enterprise, json=body | {"request_id": "retire-part-3", "tonnes": 1}
    )
    assert rest.status_code == 201
    totals = serials.bundle_totals(db, bundle["id"])
    assert (totals["held"], totals["retired"]) == (0, 3)
    assert db.execute("SELECT status FROM orders").fetchone()[0] == "retired"
    stranger = client.post(url, headers=bearer(world.tokens["admin"]), json=body)
    assert stranger.status_code == 403


def test_the_database_refuses_a_second_retirement_and_deleting_a_serial(db, world, ctx):
    import sqlite3

    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    order = rw.order(db, bundle["id"])
    from server.registry import orders

    orders.confirm_payment(db, order, "bank", "REF-DOUBLE", "user:1")
    (serial,) = db.execute("SELECT serial FROM tonnes WHERE status = 'retired'").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO retirements (serial, certificate_id, retired_at) VALUES (?, ?, 'x')",
            [serial, db.execute("SELECT id FROM certificates").fetchone()[0]],
        )
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "UPDATE tonnes SET status = 'available', order_id = NULL, certificate_id = NULL"
            " WHERE serial = ?",
            [serial],
        )
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM tonnes WHERE serial = ?", [serial])
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE tonnes SET status = 'available' WHERE status = 'buffer'")


def test_unknown_certificate_is_404_as_json_and_as_a_page(client):
    response = client.get("/api/v1/certificates/SPC-2026-999999")
    assert (response.status_code, response.json["error"]["code"]) == (404, "not_found")
    page = client.get("/verify/SPC-2026-999999")
    assert page.status_code == 404
    assert "没有这张证书" in page.get_data(as_text=True)
    assert client.get("/verify/<script>").status_code == 404


def test_a_paid_sale_is_announced_to_the_countys_dashboards(app, client, db, world, ctx):
    from server.extensions import socketio

    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    order = rw.order(db, bundle["id"], 2)
    socket = socketio.test_client(app, namespace="/live", auth={"token": world.tokens["bureau"]})
    socket.get_received("/live")
    response = client.post(
        f"/api/v1/orders/{order['public_id']}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "bank", "reference": "LIVE-0001"},
    )
    assert response.status_code == 200
    events = [e for e in socket.get_received("/live") if e["name"] == "registry.sale"]
    assert [e["args"][0] for e in events] == [
        {
            "bundle": bundle["id"],
            "tonnes": 2,
            "amount_fen": 20000,
            "farmers_fen": order["farmers_fen"],
            "buyer_kind": "individual",
        }
    ]


def test_verification_report_pdf_reads_in_chinese_with_the_seed(client, db, world, ctx):
    import pypdfium2 as pdfium

    made = grown(db, world, trees_per_household=3)
    found = rw.verify(db, made["calculation_id"], world.user_ids["verifier"], failing=0)
    response = client.get(
        f"/api/v1/verifications/{found['id']}/report.pdf", headers=bearer(world.tokens["bureau"])
    )
    assert response.status_code == 200
    page = pdfium.PdfDocument(response.data)[0]
    text = page.get_textpage().get_text_range()
    assert "抽样核查报告" in text and found["seed"] in text and "通过" in text
    assert all(tree in text for tree in made["trees"])
    image = page.render(scale=1).to_pil()
    assert image.size[0] > 500
    other = client.get(
        f"/api/v1/verifications/{found['id']}/report.pdf", headers=bearer(world.tokens["verifier"])
    )
    assert other.status_code == 200


def test_orders_are_rate_limited_per_address(instance, seeded):
    import shutil

    from server import create_app

    folder, world = seeded
    shutil.copytree(folder, instance)
    app = create_app({"INSTANCE_PATH": str(instance), "ORDER_RATE_LIMIT": "2 per minute"})
    client = app.test_client()
    with app.app_context():
        from server.db import get_db

        bundle, _, _ = rw.stocked_bundle(get_db(), world.user_ids["verifier"])
    enterprise = bearer(world.tokens["enterprise"])
    codes = [
        client.post(
            "/api/v1/orders",
            headers=enterprise,
            json={"request_id": f"req-limit-{n:04d}", "bundle_id": bundle["id"], "tonnes": 1},
        ).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]
    with app.app_context():
        from server.db import get_db

        assert get_db().execute("SELECT count(*) FROM orders").fetchone()[0] == 2
