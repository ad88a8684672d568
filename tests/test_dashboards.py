"""The bureau dashboard, the village public pages and the farmer's view of the money, on
real sales through the registry and payouts services."""

import csv
import io
import random

import pytest
from openpyxl import load_workbook

from server.dashboards import figures, money
from server.db import first, get_db
from server.extensions import socketio
from server.payouts import settlement
from tests import registry_world as rw
from tests.conftest import PHONE, bearer
from tests.helpers_auth import signed_in
from tests.helpers_orders import later, paid_order, pay_everyone


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def sell_three_tonnes(app) -> dict:
    """Village B grown (3 households), verified, issued and published; 3 tonnes sold."""
    db = get_db()
    bundle, issued, grown = rw.stocked_bundle(
        db, app.world.user_ids["verifier"], households_count=3, trees_per_household=7
    )
    order = paid_order(db, bundle["id"], 3)
    return {"sold": {"bundle": bundle, "issuance": issued, "grown": grown, "order": order}}


@pytest.fixture(scope="session")
def sold_world(snapshots, seeded):
    return snapshots.extend("dashboards.sold", sell_three_tonnes, on=seeded)


@pytest.fixture
def app(request, instance, seeded, sold_world):
    """Tests that take `sold` start from the world with the sale made."""
    start = sold_world if "sold" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def sold(world, ctx) -> dict:
    return world.built["sold"]


def county_id(db, code: str = "360423") -> int:
    return first(db, "SELECT id FROM counties WHERE code = ?", [code])["id"]


# --- figures ------------------------------------------------------------------------------


def test_a_sale_shows_as_accrued_and_owed_by_village(db, sold):
    summary = figures.county_summary(db, county_id(db))
    (village_b,) = [v for v in summary["villages"] if v["code"] == rw_village_b()]
    farmers = sold["order"]["farmers_fen"]
    assert village_b["accrued_fen"] == farmers == summary["totals"]["accrued_fen"]
    assert (village_b["paid_fen"], village_b["owed_fen"]) == (0, farmers)
    assert village_b["payees"] == 3
    assert (village_b["sold_t"], summary["sales"]["tonnes"]) == (3, 3)
    assert village_b["issued_t"] == sold["issuance"]["tonnes"]
    assert summary["totals"]["overdue_fen"] == 0  # due tomorrow, not yet late
    assert summary["totals"]["arrival"] is None  # nothing has fallen due
    assert summary["sales_by_day"][-1]["tonnes"] == 3
    assert summary["payouts_by_day"][-1]["accrued_fen"] == farmers


def test_unpaid_after_t_plus_one_is_overdue_and_paid_is_not(db, sold):
    farmers = sold["order"]["farmers_fen"]
    county = county_id(db)

    assert money.by_village(db, county, today=later(1))[village_b_id(db)]["overdue_fen"] == 0
    late = money.by_village(db, county, today=later(2))[village_b_id(db)]
    assert (late["overdue_fen"], late["overdue_households"]) == (farmers, 3)
    assert money.arrival(late) == 0.0
    assert figures.county_summary(db, county)["payouts_by_day"][-1]["paid_fen"] == 0

    pay_everyone(db, later(1))

    paid = money.by_village(db, county, today=later(2))[village_b_id(db)]
    assert (paid["paid_fen"], paid["owed_fen"], paid["overdue_fen"]) == (farmers, 0, 0)
    assert money.arrival(paid) == 1.0
    assert figures.county_summary(db, county)["payouts_by_day"][-1]["paid_fen"] == farmers
    worst = money.households(db, county, today=later(2))
    assert {h["overdue_fen"] for h in worst} == {0}
    assert sum(h["paid_fen"] for h in worst) == farmers


def test_a_failed_transfer_is_owed_again(db, sold):
    batch, _ = settlement.create_batch(db, later(1), 1, "user:1")
    row = first(db, "SELECT * FROM settlements WHERE batch_id = ?", [batch["id"]])
    settlement.record_failure(db, row["id"], "账户已销户", "user:1")

    (found,) = money.households(db, county_id(db), household_id=row["household_id"])
    assert (found["paid_fen"], found["pending_fen"]) == (0, 0)
    assert found["owed_fen"] == row["amount_fen"]


def test_payout_balances_agree_with_the_payouts_view(db, sold):
    pay_everyone(db, later(1))
    paid_order(db, sold["bundle"]["id"], 2)
    settlement.create_batch(db, later(3), 1, "user:1")  # pending transfers

    view = {
        r["household_id"]: (r["accrued_fen"], r["paid_fen"], r["pending_fen"])
        for r in db.query("SELECT * FROM household_payouts")
    }
    kept = {
        r["household_id"]: (r["accrued_fen"], r["paid_fen"], r["pending_fen"])
        for r in db.query("SELECT * FROM payout_balances")
    }
    assert kept == view
    assert len(kept) == 3


# --- the bureau's pages --------------------------------------------------------------------


def test_bureau_dashboard_shows_its_county(client, db, sold):
    signed_in(client, "bureau")

    page = client.get("/bureau")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "武宁县 农户分成看板" in text
    assert f"/bureau/villages/{rw_village_b()}" in text
    assert _yuan(sold["order"]["farmers_fen"]) in text
    assert "<svg" in text and "各村分成" in text
    assert "外县村" not in text  # the other county's village


def test_bureau_sees_only_its_county_even_when_asking_for_another(client, db, sold):
    signed_in(client, "bureau")

    response = client.get("/api/v1/dashboard?county=360424")

    assert response.json["county"]["code"] == "360423"


def test_admin_picks_a_county(client, world):
    response = client.get("/api/v1/dashboard?county=360424", headers=bearer(world.tokens["admin"]))

    assert response.status_code == 200
    assert response.json["county"]["code"] == "360424"
    assert [v["code"] for v in response.json["villages"]] == [world.village_c]


def test_drill_down_village_lists_households_and_sales(client, db, sold):
    signed_in(client, "bureau")

    page = client.get(f"/bureau/villages/{rw_village_b()}")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for code in sold["grown"]["households"]:
        assert f"/bureau/households/{code}" in text
    assert sold["order"]["public_id"][:8] in text
    assert _yuan(sold["order"]["farmers_fen"]) in text  # the village's accrued total


def test_drill_down_household_shows_accruals_transfers_and_chain_rows(client, db, sold):
    pay_everyone(db, later(1))
    code = sold["grown"]["households"][0]
    signed_in(client, "bureau")

    page = client.get(f"/bureau/households/{code}")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert sold["order"]["public_id"][:8] in text  # the sale the accrual came from
    assert "TRF-" in text and "已到账" in text
    assert "待上链" in text  # the accrual and settlement rows wait in the chain outbox
    household = first(db, "SELECT id FROM households WHERE code = ?", [code])
    ledger = money.household_ledger(db, household["id"])
    assert {a["chain_state"] for a in ledger["accruals"]} == {"pending"}
    assert {s["chain_state"] for s in ledger["settlements"]} == {"pending"}


def test_household_of_another_county_is_out_of_scope(client, world):
    signed_in(client, "bureau")

    response = client.get(
        f"/bureau/households/{world.household_c}", headers={"Accept": "application/json"}
    )

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"


def test_exports_as_csv_and_xlsx(client, db, sold):
    signed_in(client, "bureau")

    villages = client.get("/bureau/export.csv?level=village")
    rows = list(csv.reader(io.StringIO(villages.get_data(as_text=True).lstrip("\ufeff"))))
    households = client.get("/bureau/export.xlsx?level=household")
    sheet = load_workbook(io.BytesIO(households.data)).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]

    assert villages.headers["Content-Disposition"].startswith("attachment;")
    assert rows[0][:2] == ["村代码", "村名"]
    assert rows[-1][1] == "武宁县合计"
    total = sold["order"]["farmers_fen"]
    assert rows[-1][5] == f"{total // 100}.{total % 100:02d}"
    assert cells[0][0].startswith("武宁县各户农户分成")  # a title row, then when, then the header
    assert cells[1][0].startswith("导出时间：")
    assert cells[2][0] == "户码"
    assert sorted(r[0] for r in cells[3:]) == sorted(sold["grown"]["households"])
    assert all("*" in r[3] for r in cells[3:])  # names masked
    assert round(sum(r[4] for r in cells[3:]) * 100) == sold["order"]["farmers_fen"]  # sums


def test_export_refuses_unknown_formats_and_levels(client, world):
    admin = bearer(world.tokens["admin"]) | {"Accept": "application/json"}
    assert client.get("/bureau/export.pdf", headers=admin).status_code == 404
    assert client.get("/bureau/export.csv?level=tree", headers=admin).status_code == 422


def test_the_live_fragment_follows_a_new_sale(client, db, sold):
    signed_in(client, "bureau")
    before = client.get("/bureau/live").get_data(as_text=True)

    second = paid_order(db, sold["bundle"]["id"], 2)

    after = client.get("/bureau/live").get_data(as_text=True)
    total = sold["order"]["farmers_fen"] + second["farmers_fen"]
    assert _yuan(total) in after and _yuan(total) not in before


def test_a_sale_reaches_a_bureau_watcher_live(app, client, db, sold):
    signed_in(client, "bureau")
    socket = socketio.test_client(app, namespace="/live", flask_test_client=client)
    socket.get_received("/live")

    paid_order(db, sold["bundle"]["id"], 1)

    names = [event["name"] for event in socket.get_received("/live")]
    assert "registry.sale" in names and "payouts.accrued" in names


# --- the village public pages --------------------------------------------------------------


def test_village_page_shows_trees_tonnes_and_money_without_personal_data(client, db, sold):
    pay_everyone(db, later(1))

    page = client.get(f"/v/{rw_village_b()}")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "21 棵" in text  # 3 households × 7 trees
    assert f"{sold['issuance']['tonnes']} 吨" in text
    assert _yuan(sold["order"]["farmers_fen"]) in text
    assert "农户" in text and "*" not in text  # no masked (or unmasked) names
    assert page.headers["Cache-Control"] == "public, max-age=300"
    assert page.headers["ETag"] and page.headers["Last-Modified"]


def test_village_page_answers_304_until_something_changes(client, db, sold):
    page = client.get(f"/v/{rw_village_b()}")
    etag = page.headers["ETag"]

    again = client.get(f"/v/{rw_village_b()}", headers={"If-None-Match": etag})
    assert (again.status_code, again.data) == (304, b"")

    paid_order(db, sold["bundle"]["id"], 1)
    changed = client.get(f"/v/{rw_village_b()}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_county_index_lists_its_villages(client, db, sold, world):
    page = client.get("/c/360423")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"/v/{rw_village_b()}" in text and f"/v/{world.village_a}" in text
    assert "外县村" not in text
    assert page.headers["ETag"]


def test_the_same_public_page_for_everyone(client, world, sold):
    anonymous = client.get(f"/v/{rw_village_b()}").data
    signed_in(client, "admin")
    assert client.get(f"/v/{rw_village_b()}").data == anonymous


def test_unknown_village_and_county_are_404(client):
    assert client.get("/v/999999999999").status_code == 404
    assert client.get("/c/999999").status_code == 404


# --- the farmer's view ---------------------------------------------------------------------


def test_plate_shows_the_registry_grams_not_the_calculation_after_a_partial_check(
    client, db, world, ctx
):
    grown = rw.grow_village(db, world.village_b, households_count=2, trees_per_household=20)
    found = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"], failing=1)
    assert found["status"] == "partial"
    from server.registry import issuance

    issuance.issue(db, found, rw.bundle(db), None)
    code = grown["households"][0]
    household = first(db, "SELECT id FROM households WHERE code = ?", [code])
    registry_g = figures.household_issued_g(db, household["id"])
    calculated_g = first(
        db,
        "SELECT issued_g FROM credit_household_lines WHERE household_id = ?",
        [household["id"]],
    )["issued_g"]
    assert 0 < registry_g < calculated_g

    text = client.get(f"/h/{code}").get_data(as_text=True)

    assert f"{registry_g / 1_000_000:.3f} 吨" in text
    assert f"{calculated_g / 1_000_000:.3f} 吨" not in text


def unlock(client, code: str, digits: str):
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]
    return client.post(
        f"/h/{code}/unlock", data={"phone_tail": digits}, headers={"X-CSRFToken": token}
    )


def test_plate_shows_totals_to_anyone_and_payments_only_after_the_phone_digits(
    client, db, world, ctx
):
    code, phone_tail, amount = _household_with_phone_and_payment(db, world)

    plain = client.get(f"/h/{code}")
    assert plain.headers["Cache-Control"] == "no-cache"
    page = plain.get_data(as_text=True)
    assert f"¥{amount / 100:.2f}" in page  # the total, for anyone
    assert "TRF-" not in page and "9876" not in page
    assert 'name="phone_tail"' in page

    opened = unlock(client, code, phone_tail)
    assert opened.status_code == 303
    page = client.get(f"/h/{code}").get_data(as_text=True)
    assert "…9876" in page  # the transfer reference's tail only
    assert "TRF-" not in page
    assert "待上链" in page
    assert client.get(f"/h/{code}").headers["Cache-Control"] == "private, no-store"

    other = client.application.test_client()
    assert "…9876" not in other.get(f"/h/{code}").get_data(as_text=True)


def test_wrong_digits_are_refused_logged_without_them_and_lock_the_plate(client, db, world, ctx):
    code, phone_tail, _ = _household_with_phone_and_payment(db, world)
    wrong = "0000" if phone_tail != "0000" else "1111"

    answers = [unlock(client, code, wrong).status_code for _ in range(5)]
    assert answers == [403] * 5
    locked = unlock(client, code, phone_tail)
    assert locked.status_code == 429
    assert "已暂时锁定" in locked.get_data(as_text=True)
    assert "…9876" not in client.get(f"/h/{code}").get_data(as_text=True)

    actions = [
        (r["action"], r["detail"])
        for r in db.query(
            "SELECT action, detail FROM audit_log WHERE subject = ?", [f"household:{code}"]
        )
        if r["action"].startswith("household.unlock")
    ]
    assert [a for a, _ in actions].count("household.unlock_failed") == 5
    assert "household.unlock_locked" in [a for a, _ in actions]
    log = " ".join(d for _, d in actions)
    assert wrong not in log and phone_tail not in log


def test_malformed_digits_do_not_count_as_a_guess(client, db, world, ctx):
    code, phone_tail, _ = _household_with_phone_and_payment(db, world)
    for _ in range(6):
        assert unlock(client, code, "12a4").status_code == 422
    assert unlock(client, code, phone_tail).status_code == 303


def _household_with_phone_and_payment(db, world) -> tuple[str, str, int]:
    """A grown household with a registered phone, holding grams in a sold bundle, paid T+1."""
    from server import households
    from server.registry import bundles, issuance

    grown = rw.grow_village(db, world.village_b, households_count=1, trees_per_household=8)
    code = grown["households"][0]
    db.execute(  # its phone, as a roster import records it: encrypted and masked
        "UPDATE households SET phone_enc = ?, phone_masked = ? WHERE code = ?",
        [*households.personal_columns(code, phone=PHONE).values(), code],
    )
    found = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])
    made = rw.bundle(db)
    issuance.issue(db, found, made, None)
    bundles.publish(db, bundles.get_bundle(db, made["id"]))
    paid_order(db, made["id"], 2)
    pay_everyone(db, later(1))
    household = first(db, "SELECT id FROM households WHERE code = ?", [code])
    amount = first(
        db, "SELECT paid_fen FROM payout_balances WHERE household_id = ?", [household["id"]]
    )["paid_fen"]
    assert amount > 0
    return code, PHONE[-4:], amount


def rw_village_b() -> str:
    return "360423101202"


def village_b_id(db) -> int:
    return first(db, "SELECT id FROM villages WHERE code = ?", [rw_village_b()])["id"]


def _yuan(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def test_fast_figures_equal_the_payouts_definition_for_mixed_days(db, sold):
    """Accruals of several days, some paid: the indexed figures equal the formula of
    docs/payouts.md computed row by row from accruals and settlements."""

    for _ in range(2):
        paid_order(db, sold["bundle"]["id"], 1)  # today's accruals, not yet due
    members = list(db.query("SELECT * FROM accruals WHERE order_id = ?", [sold["order"]["id"]]))
    rnd = random.Random(8)
    for days in (-6, -3, -2, -1):  # earlier sales' shares, written as the payouts would
        held = rw.order(db, sold["bundle"]["id"], 1)  # an order row to hang them on
        db.execute(
            """INSERT INTO sale_splits (order_id, bundle_id, county_id, buyer_kind, amount_fen,
               commission_bp, commission_fen, households_fen, collective_fen,
               maintenance_fen, policy_sha256, paid_on, created_at)
               VALUES (?, ?, ?, 'individual', 10000, 50, 50, 6467, 1989, 1494, ?, ?, ?)""",
            [
                held["id"],
                held["bundle_id"],
                members[0]["county_id"],
                "1" * 64,
                later(days),
                members[0]["created_at"],
            ],
        )
        for row in rnd.sample(members, 2):
            db.execute(
                """INSERT INTO accruals (order_id, household_id, village_id, county_id, grams,
                   amount_fen, household_hash, accrued_on, created_at)
                   VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)""",
                [
                    held["id"],
                    row["household_id"],
                    row["village_id"],
                    row["county_id"],
                    rnd.randint(1, 500),
                    row["household_hash"],
                    later(days),
                    row["created_at"],
                ],
            )
    batch, _ = settlement.create_batch(db, later(0), 1, "user:1")  # the older shares
    first_transfer = first(db, "SELECT id FROM settlements WHERE batch_id = ?", [batch["id"]])
    settlement.record_transfer(db, first_transfer["id"], "TRF-MIXED-0001", "user:1")
    county = county_id(db)
    for today in (later(-1), later(0), later(1), later(2), later(3)):
        expected: dict[int, int] = {}
        for row in db.query("SELECT household_id FROM payout_balances"):
            h = row["household_id"]
            due = db.execute(
                "SELECT coalesce(sum(amount_fen), 0) FROM accruals "
                "WHERE household_id = ? AND accrued_on < ?",
                [h, money.due_before(today)],
            ).fetchone()[0]
            paid = db.execute(
                "SELECT coalesce(sum(amount_fen), 0) FROM settlements "
                "WHERE household_id = ? AND status = 'paid'",
                [h],
            ).fetchone()[0]
            expected[h] = max(due - paid, 0)
        fast = money.by_village(db, county, today=today)
        assert sum(v["overdue_fen"] for v in fast.values()) == sum(expected.values()), today
        assert sum(v["overdue_households"] for v in fast.values()) == sum(
            1 for fen in expected.values() if fen
        )
        worst = money.households(db, county, today=today, limit=2)
        assert [h["overdue_fen"] for h in worst] == sorted(expected.values(), reverse=True)[:2]


def test_households_list_and_its_overdue_filter(client, db, sold):
    signed_in(client, "bureau")

    everyone = client.get("/bureau/households").get_data(as_text=True)
    late = client.get("/bureau/households?only=overdue").get_data(as_text=True)

    for code in sold["grown"]["households"]:
        assert f"/bureau/households/{code}" in everyone
        assert f"/bureau/households/{code}" not in late  # due tomorrow, not late yet
    assert "没有逾期的农户" in late


def test_chain_box_counts_what_waits_for_the_ledger(client, db, sold):
    accruals = db.execute("SELECT count(*) FROM accruals").fetchone()[0]
    waiting = db.execute("SELECT count(*) FROM chain_outbox WHERE state = 'pending'").fetchone()
    signed_in(client, "bureau")

    chain = client.get("/api/v1/dashboard").json["chain"]

    assert chain["waiting_by_kind"]["accrue"]["pending"] == accruals == 3
    assert chain["pending"] == waiting[0]
    assert chain["confirmed"] == 0 and chain["oldest_waiting_at"] is not None
    assert "农户应得" in client.get("/bureau").get_data(as_text=True)
