"""Twenty buyers race for the last tonne through the real server (`sipang serve`)."""

import threading
import uuid

import requests

from server import create_app
from server.db import get_db
from server.registry import orders, serials
from tests import registry_world as rw
from tests.conftest import seed
from tests.server_process import ServerProcess

BUYERS = 20


def prepare(instance) -> tuple[int, str]:
    """A bundle with exactly one tonne left; returns (bundle id, finance token)."""
    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        world = seed(db)
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
        left = serials.bundle_totals(db, bundle["id"])["available"]
        order = rw.order(db, bundle["id"], left - 1)
        orders.confirm_payment(db, order, "bank", "EARLIER-BUYERS", "user:3")
        assert serials.bundle_totals(db, bundle["id"])["available"] == 1
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bundle["id"], world.tokens["finance"]


def test_twenty_buyers_racing_for_the_last_tonne_get_one_certificate(tmp_path):
    instance = tmp_path / "instance"
    bundle_id, finance = prepare(instance)
    start = threading.Barrier(BUYERS)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    with ServerProcess(instance) as server:

        def buyer() -> None:
            session = requests.Session()
            csrf = session.get(f"{server.url}/api/v1/auth/csrf", timeout=30).json()["csrf_token"]
            start.wait()
            response = session.post(
                f"{server.url}/api/v1/orders",
                json={"request_id": uuid.uuid4().hex, "bundle_id": bundle_id, "tonnes": 1},
                headers={"X-CSRFToken": csrf},
                timeout=60,
            )
            body = response.json()
            if response.status_code == 201:
                paid = requests.post(
                    f"{server.url}/api/v1/orders/{body['order']['public_id']}/payment",
                    json={"method": "bank", "reference": "RACE-WINNER"},
                    headers={"Authorization": f"Bearer {finance}"},
                    timeout=60,
                )
                body = paid.json()
            with lock:
                results.append((response.status_code, body))

        threads = [threading.Thread(target=buyer) for _ in range(BUYERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (BUYERS - 1)
    losers = [body["error"]["code"] for status, body in results if status == 409]
    assert set(losers) == {"sold_out"}
    (winner,) = [body for status, body in results if status == 201]
    assert winner["order"]["status"] == "retired"
    assert len(winner["order"]["certificates"]) == 1
    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        race_certificates = db.execute(
            """SELECT count(*) FROM certificates c JOIN orders o ON o.id = c.order_id
               WHERE o.payment_reference = 'RACE-WINNER'"""
        ).fetchone()[0]
        assert race_certificates == 1
        assert (
            db.execute("SELECT count(*) FROM orders WHERE payment_reference IS NULL").fetchone()[0]
            == 0
        )
        totals = serials.bundle_totals(db, bundle_id)
        assert (totals["available"], totals["reserved"]) == (0, 0)
