"""`sipang settle` and the finance screen: the T+1 batch with bank details (decrypted only
there, each view audited), transfer references, the bank's return file, live events."""

import io
from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from server import pii, units
from server.cli import main
from server.db import first
from server.extensions import socketio
from server.households import pii_context
from server.payouts import settlement
from server.registry import orders
from tests import registry_world as rw
from tests.conftest import BANK, bearer
from tests.helpers_auth import sign_in_page


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def sold_yesterday(db) -> None:
    """Date the sales' accruals a day back (Beijing), as yesterday's sales stand when today's
    T+1 batch is made; the accruals' no-update guard is set back afterwards."""
    (guard,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'accruals_no_update'"
    ).fetchone()
    yesterday = (date.fromisoformat(units.today()) - timedelta(days=1)).isoformat()
    with db.conn:
        db.execute("DROP TRIGGER accruals_no_update")
        db.execute("UPDATE accruals SET accrued_on = ?", [yesterday])
        db.execute(guard)


def test_settle_command_and_the_finance_screen(app, client, db, world):
    # requests run outside this app context: one shared `g` would keep a stale CSRF token
    with app.app_context():
        bundle, _, grown = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=4
        )
        made = rw.order(db, bundle["id"], tonnes=2)
        orders.confirm_payment(db, made, "bank", "ICBC-FIN-1", "user:3")
        code = grown["households"][0]
        with db.conn:
            db.execute(
                "UPDATE households SET bank_account_enc = ? WHERE code = ?",
                [pii.encrypt(BANK, pii_context(code, "bank_account")), code],
            )

        sold_yesterday(db)
    today = units.today()
    result = CliRunner().invoke(
        main, ["settle", "--date", today, "--instance", app.config["INSTANCE_PATH"]]
    )
    assert result.exit_code == 0, result.output
    assert f"Made batch 1 for {today}: 2 households" in result.output
    assert BANK not in result.output
    again = CliRunner().invoke(main, ["settle", "--instance", app.config["INSTANCE_PATH"]])
    assert "Already made batch 1" in again.output
    bad = CliRunner().invoke(
        main, ["settle", "--date", "tomorrow", "--instance", app.config["INSTANCE_PATH"]]
    )
    assert bad.exit_code == 2
    tomorrow = (date.fromisoformat(today) + timedelta(days=1)).isoformat()
    early = CliRunner().invoke(
        main, ["settle", "--date", tomorrow, "--instance", app.config["INSTANCE_PATH"]]
    )
    assert early.exit_code == 2 and "still coming in" in early.output

    # watch after the CLI ran (its app took the Socket.IO server, as a separate process would)
    live = socketio.test_client(app, namespace="/live", auth={"token": world.tokens["bureau"]})
    csrf = sign_in_page(client, "finance")
    listing = client.get("/finance/settlements")
    assert listing.status_code == 200 and today in listing.text
    viewed = db.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'pii.bank_details_viewed'"
    ).fetchone()[0]
    page = client.get("/finance/settlements/1")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "private, no-store"
    assert BANK in page.text and "农户0" in page.text
    audit = first(
        db, "SELECT * FROM audit_log WHERE action = 'pii.bank_details_viewed' ORDER BY seq DESC"
    )
    assert audit["actor"] == f"user:{world.user_ids['finance']}"
    assert BANK not in audit["detail"]
    assert (
        db.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'pii.bank_details_viewed'"
        ).fetchone()[0]
        == viewed + 1
    )

    rows = list(db.query("SELECT * FROM settlements WHERE batch_id = 1 ORDER BY id"))
    export = client.get("/finance/settlements/1/transfers.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    lines = export.data.decode("utf-8-sig").splitlines()
    assert lines[0] == "明细编号,户号,户主姓名,银行卡号,金额,附言"
    assert len(lines) == 3 and BANK in export.text
    assert f"{rows[0]['id']},{code}," in export.text
    exported = first(db, "SELECT * FROM audit_log ORDER BY seq DESC")
    assert exported["action"] == "pii.bank_details_exported" and BANK not in exported["detail"]
    paid = client.post(
        f"/finance/transfers/{rows[0]['id']}",
        data={"csrf_token": csrf, "outcome": "paid", "reference": "ICBC-20990101-01"},
    )
    assert paid.status_code == 303, paid.text[-1500:]
    settle_row = first(db, "SELECT payload FROM chain_outbox WHERE kind = 'settle'")
    assert f'"id": "settlement:{rows[0]["id"]}"' in settle_row["payload"]
    assert BANK not in settle_row["payload"]
    reused = client.post(
        f"/finance/transfers/{rows[1]['id']}",
        data={"csrf_token": csrf, "outcome": "paid", "reference": "ICBC-20990101-01"},
    )
    assert reused.status_code == 409 and "另一笔转账" in reused.text

    amount = rows[1]["amount_fen"]
    yuan = f"{amount // 100}.{amount % 100:02d}"
    csv = f"明细编号,金额,状态,流水号,失败原因\n{rows[1]['id']},{yuan},失败,,户名不符\n"
    upload = client.post(
        "/finance/settlements/1/returns",
        data={"csrf_token": csrf, "file": (io.BytesIO(csv.encode("gb18030")), "回单.csv")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200 and 'data-return="applied"' in upload.text
    assert [r["status"] for r in db.query("SELECT status FROM settlements ORDER BY id")] == [
        "paid",
        "failed",
    ]
    twice = client.post(
        "/finance/settlements/1/returns",
        data={"csrf_token": csrf, "file": (io.BytesIO(csv.encode("gb18030")), "回单.csv")},
        content_type="multipart/form-data",
    )
    assert 'data-return="duplicate"' in twice.text
    assert db["bank_return_files"].count == 1

    events = [e for e in live.get_received("/live") if e["name"].startswith("payouts.")]
    names = [e["name"] for e in events]
    assert names == ["payouts.settled", "payouts.settled"]
    settled = [e["args"][0] for e in events if e["name"] == "payouts.settled"]
    assert {s["status"] for s in settled} == {"paid", "failed"}
    live.disconnect(namespace="/live")


def test_a_sale_announces_its_accruals_live(app, db, world, ctx):
    bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    live = socketio.test_client(app, namespace="/live", auth={"token": world.tokens["bureau"]})
    made = rw.order(db, bundle["id"], tonnes=2)
    orders.confirm_payment(db, made, "bank", "ICBC-LIVE-1", "user:3")
    (event,) = [e for e in live.get_received("/live") if e["name"] == "payouts.accrued"]
    data = event["args"][0]
    assert data["amount_fen"] == 20_000 and data["households_fen"] == made["farmers_fen"]
    assert sum(v["amount_fen"] for v in data["villages"]) == made["farmers_fen"]
    assert data["villages"][0]["village"] == "360423101202"
    batch, _ = settlement.create_batch(db, "2099-05-01", 100, "user:3")
    (event,) = [e for e in live.get_received("/live") if e["name"] == "payouts.batch"]
    assert event["args"][0] == {
        "batch": batch["id"],
        "settle_on": "2099-05-01",
        "households": batch["households"],
        "total_fen": made["farmers_fen"],
    }
    live.disconnect(namespace="/live")


def test_the_bank_integration_api(app, client, db, world):
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=4
        )
        made = rw.order(db, bundle["id"], tonnes=2)
        orders.confirm_payment(db, made, "bank", "ICBC-API-1", "user:3")
    finance = bearer(world.tokens["finance"])
    made = client.post(
        "/api/v1/settlement-batches", json={"settle_on": "2099-06-01"}, headers=finance
    )
    assert made.status_code == 201 and made.json["created"] is True
    batch = made.json["batch"]
    assert batch["households"] == 2 and batch["total_fen"] == made_total(db)
    again = client.post(
        "/api/v1/settlement-batches", json={"settle_on": "2099-06-01"}, headers=finance
    )
    assert again.status_code == 200 and again.json["batch"]["id"] == batch["id"]
    shown = client.get(f"/api/v1/settlement-batches/{batch['id']}", headers=finance).json["batch"]
    first_id, second_id = (s["id"] for s in shown["settlements"])
    assert all(s["status"] == "pending" for s in shown["settlements"])
    url = "/api/v1/settlements/{}/outcome"
    paid = client.post(
        url.format(first_id), json={"outcome": "paid", "reference": "ICBC-API-T1"}, headers=finance
    )
    assert paid.status_code == 200 and paid.json["changed"] is True
    assert paid.json["settlement"]["status"] == "paid"
    replay = client.post(
        url.format(first_id), json={"outcome": "paid", "reference": "ICBC-API-T1"}, headers=finance
    )
    assert replay.json["changed"] is False
    other = client.post(
        url.format(first_id), json={"outcome": "paid", "reference": "ICBC-API-T2"}, headers=finance
    )
    assert (other.status_code, other.json["error"]["code"]) == (409, "already_recorded")
    missing = client.post(url.format(second_id), json={"outcome": "paid"}, headers=finance)
    assert missing.status_code == 422
    failed = client.post(
        url.format(second_id), json={"outcome": "failed", "reason": "账户冻结"}, headers=finance
    )
    assert failed.json["settlement"]["status"] == "failed"
    assert client.get("/api/v1/settlement-batches/999", headers=finance).status_code == 404


def made_total(db) -> int:
    return db.execute("SELECT sum(amount_fen) FROM accruals").fetchone()[0]
