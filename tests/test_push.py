"""Web Push end to end: a browser's key pair subscribes, a business event queues a notice, the
worker sends it to a local push service, which decrypts it (RFC 8291 aes128gcm) and checks
the VAPID signature against the served public key; 410 removes, 5xx retries."""

import base64
import json
import os
import random
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from server import trees
from server.db import first
from server.push import make_sender, triggers
from server.push.owners import household_token
from server.push.queue import notify, quiet_until
from server.registry import orders, verification
from tests import registry_world as rw
from tests.conftest import bearer


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A push subscriber's keys, as a browser makes them: ECDH P-256 and a 16-byte secret."""

    def __init__(self, endpoint: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint

    def subscription(self) -> dict:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        keys = {"p256dh": b64url(point), "auth": b64url(self.auth)}
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}

    def decrypt(self, body: bytes) -> dict:
        plain = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(plain)


class PushService:
    """A local push service: records each request and answers with the scripted statuses."""

    def __init__(self):
        self.received: list[dict] = []
        self.statuses: list[int] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                service.received.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status = service.statuses.pop(0) if service.statuses else 201
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "5")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # shutdown() waits for the next poll: every 20 ms, not the default 0.5 s
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def endpoint(self) -> str:
        return f"{self.url}/push/{uuid.uuid4().hex}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def push_app(app):
    app.config["PUSH_ALLOW_HTTP_ENDPOINTS"] = True  # the local push service speaks http
    return app


class Clock:
    """The sender's clock, moved by the test (never the wall clock's pace)."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


def due_clock(db) -> Clock:
    """A clock at the moment the newest message was queued."""
    created = db.execute("SELECT max(created_at) FROM push_messages").fetchone()[0]
    return Clock(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())


def check_vapid(headers: dict, public_key: str, audience: str) -> dict:
    """The Authorization header's JWT, signed (ES256) by the key the server serves."""
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key
    head, claims, signature = fields["t"].split(".")
    assert json.loads(unb64url(head)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    key.verify(  # raises InvalidSignature when forged
        encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:])),
        f"{head}.{claims}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    decoded = json.loads(unb64url(claims))
    assert decoded["aud"] == audience
    return decoded


def paid_order(app, db, world) -> dict:
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
        return rw.order(db, bundle["id"], 2)


def watched_order(app, client, db, world, push_service):
    """An order whose buyer asked to be told when its certificate is ready: the order, the
    buyer's browser and the subscription answer."""
    order = paid_order(app, db, world)
    browser = Browser(push_service.endpoint())
    made = client.post(
        "/api/v1/push/subscriptions",
        json={"subscription": browser.subscription(), "order": order["public_id"]},
    )
    return order, browser, made


def test_certificate_ready_is_pushed_encrypted_and_signed(
    push_app, client, db, world, push_service
):
    order, browser, made = watched_order(push_app, client, db, world, push_service)
    assert made.status_code == 201, made.json
    assert made.json["subscription"]["kinds"] == ["certificate_ready"]
    with push_app.app_context():
        orders.confirm_payment(db, order, "bank", "ICBC-PUSH-0001", "user:3")
    cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
    assert push_service.received == []  # nothing is sent inside the business change

    sender = make_sender(push_app.config, db, clock=due_clock(db), rng=random.Random(7))
    assert sender.run_once()["sent"] == 1
    (request,) = push_service.received
    assert browser.decrypt(request["body"]) == {
        "title": "碳汇证书已生成",
        "body": f"您的 2 吨碳汇证书 {cert_id} 已生成，点此查看。",
        "url": f"/orders/{order['public_id']}",
    }
    headers = request["headers"]
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["ttl"] == str(7 * 86400)
    assert headers["urgency"] == "normal"
    served = client.get("/api/v1/push/key").json["public_key"]
    claims = check_vapid(headers, served, push_service.url)
    assert claims["sub"] == push_app.config["PUSH_CONTACT"]
    assert [r["state"] for r in db["push_messages"].rows] == ["sent"]


def test_a_410_removes_the_subscription(push_app, client, db, world, push_service):
    order, browser, _ = watched_order(push_app, client, db, world, push_service)
    with push_app.app_context():
        orders.confirm_payment(db, order, "bank", "ICBC-PUSH-0002", "user:3")
    push_service.statuses = [410]
    sender = make_sender(push_app.config, db, clock=due_clock(db))
    assert sender.run_once()["gone"] == 1
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM push_messages").fetchone()[0] == 0


def test_a_5xx_is_retried_after_a_backoff(push_app, client, db, world, push_service):
    order, browser, _ = watched_order(push_app, client, db, world, push_service)
    with push_app.app_context():
        orders.confirm_payment(db, order, "bank", "ICBC-PUSH-0003", "user:3")
    push_service.statuses = [503, 500]
    clock = due_clock(db)
    sender = make_sender(push_app.config, db, clock=clock, rng=random.Random(1))
    assert sender.run_once()["retry"] == 1
    row = next(db["push_messages"].rows)
    assert (row["state"], row["attempts"], row["last_status"]) == ("pending", 1, 503)
    waited = datetime.fromisoformat(row["next_attempt_at"].replace("Z", "+00:00")).timestamp()
    assert waited - clock.now >= 5  # Retry-After: 5 honoured, at least
    assert sender.run_once() == {"sent": 0, "retry": 0, "gone": 0, "failed": 0, "expired": 0}
    clock.now = waited
    assert sender.run_once()["retry"] == 1  # the 500: backs off again, for longer at most
    row = next(db["push_messages"].rows)
    assert row["attempts"] == 2
    clock.now = datetime.fromisoformat(row["next_attempt_at"].replace("Z", "+00:00")).timestamp()
    assert sender.run_once()["sent"] == 1
    assert len(push_service.received) == 3
    assert browser.decrypt(push_service.received[-1]["body"])["title"] == "碳汇证书已生成"


def test_retries_stop_after_the_last_attempt(push_app, client, db, world, push_service):
    order = paid_order(push_app, db, world)
    client.post(
        "/api/v1/push/subscriptions",
        json={
            "subscription": Browser(push_service.endpoint()).subscription(),
            "order": order["public_id"],
        },
    )
    with push_app.app_context():
        orders.confirm_payment(db, order, "bank", "ICBC-PUSH-0004", "user:3")
    push_service.statuses = [502, 502, 502]
    clock = due_clock(db)
    sender = make_sender(push_app.config, db, clock=clock, max_attempts=3)
    outcomes = []
    for _ in range(3):
        outcomes.append(next(k for k, n in sender.run_once().items() if n))
        clock.now += push_app.config["PUSH_RETRY_MAX_SECONDS"] + 1
    assert outcomes == ["retry", "retry", "failed"]
    assert next(db["push_messages"].rows)["state"] == "failed"


def test_money_sent_reaches_the_farmer_after_quiet_hours(push_app, client, db, world, push_service):
    browser = Browser(push_service.endpoint())
    with push_app.test_request_context():
        token = household_token(world.household_a)
    made = client.post(
        "/api/v1/push/subscriptions",
        json={
            "subscription": browser.subscription(),
            "household": world.household_a,
            "token": token,
        },
    )
    assert made.status_code == 201, made.json
    assert made.json["subscription"]["quiet_hours"] == {"start": "21:00", "end": "07:00"}
    household_id = db.execute(
        "SELECT id FROM households WHERE code = ?", [world.household_a]
    ).fetchone()[0]
    # 23:30 in the county (15:30 UTC): held until 07:00 county time (23:00 UTC)
    evening = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    notify(
        db,
        "money_sent",
        household_id,
        {"household_code": world.household_a, "amount": "12.34"},
        now=evening,
    )
    db.conn.commit()
    row = next(db["push_messages"].rows)
    assert row["next_attempt_at"] == "2026-11-20T23:00:00.000Z"
    clock = Clock(datetime(2026, 11, 20, 22, 59, tzinfo=UTC).timestamp())
    sender = make_sender(push_app.config, db, clock=clock)
    assert sender.run_once()["sent"] == 0
    clock.now = datetime(2026, 11, 20, 23, 0, tzinfo=UTC).timestamp()
    assert sender.run_once()["sent"] == 1
    (request,) = push_service.received
    assert browser.decrypt(request["body"]) == {
        "title": "碳汇收益已汇出",
        "body": "¥12.34 已汇往您登记的银行账户，请留意到账。",
        "url": f"/h/{world.household_a}",
    }
    assert request["headers"]["ttl"] == str(2 * 86400)


def test_money_sent_trigger_queues_for_the_household(push_app, client, db, world, push_service):
    with push_app.test_request_context():
        token = household_token(world.household_a)
    client.post(
        "/api/v1/push/subscriptions",
        json={
            "subscription": Browser(push_service.endpoint()).subscription(),
            "household": world.household_a,
            "token": token,
            "quiet_hours": None,
        },
    )
    household_id = db.execute(
        "SELECT id FROM households WHERE code = ?", [world.household_a]
    ).fetchone()[0]
    assert triggers.money_sent(db, household_id, world.household_a, 1234) == 1


@pytest.mark.parametrize(
    ("moment", "start", "end", "until"),
    [
        (datetime(2026, 1, 1, 13, 0, tzinfo=UTC), "21:00", "07:00", "2026-01-01T23:00"),  # 21:00
        (datetime(2026, 1, 1, 12, 59, tzinfo=UTC), "21:00", "07:00", None),  # 20:59
        (datetime(2026, 1, 1, 22, 0, tzinfo=UTC), "21:00", "07:00", "2026-01-01T23:00"),  # 06:00
        (datetime(2026, 1, 1, 23, 0, tzinfo=UTC), "21:00", "07:00", None),  # 07:00
        (datetime(2026, 1, 1, 5, 0, tzinfo=UTC), "12:00", "14:00", "2026-01-01T06:00"),  # 13:00
        (datetime(2026, 1, 1, 5, 0, tzinfo=UTC), None, None, None),
    ],
)
def test_quiet_hours_in_county_time(moment, start, end, until):
    found = quiet_until(moment, start, end)
    assert (found.strftime("%Y-%m-%dT%H:%M") if found else None) == until


def test_sample_assigned_reaches_the_verifier(push_app, client, db, world, push_service):
    browser = Browser(push_service.endpoint())
    made = client.post(
        "/api/v1/push/subscriptions",
        json={"subscription": browser.subscription()},
        headers=bearer(world.tokens["verifier"]),
    )
    assert made.status_code == 201, made.json
    assert made.json["subscription"]["owner"] == "user"
    with push_app.app_context():
        grown = rw.grow_village(db, "360423101202")
        calc = first(
            db, "SELECT * FROM credit_calculations WHERE id = ?", [grown["calculation_id"]]
        )
        found = verification.assign(db, calc, world.user_ids["verifier"], None)
    assert make_sender(push_app.config, db, clock=due_clock(db)).run_once()["sent"] == 1
    message = browser.decrypt(push_service.received[0]["body"])
    assert message["title"] == "新的核查样本"
    assert message["body"] == f"西山村 的 {found['sample_size']} 棵样本树已分配给您复测。"
    assert message["url"] == f"/app/#/verify/{found['id']}"


def test_record_flagged_reaches_the_measurers_phone(push_app, client, db, world, push_service):
    browser = Browser(push_service.endpoint())
    made = client.post(
        "/api/v1/push/subscriptions",
        json={"subscription": browser.subscription(), "kinds": ["record_flagged"]},
        headers=bearer(world.tokens["measurer"]),
    )
    assert made.status_code == 201, made.json
    assert made.json["subscription"]["owner"] == "device"
    with push_app.app_context():
        trees.record_measurement(
            db,
            world.tree_a,
            measurement_id=str(uuid.uuid4()),
            stems_mm=[120],
            height_cm=1350,
            client_time="2026-10-01T08:00:00.000Z",
            user_id=world.measurer_id,
            device_id=world.device_id,
        )
    assert make_sender(push_app.config, db, clock=due_clock(db)).run_once()["sent"] == 1
    (request,) = push_service.received
    message = browser.decrypt(request["body"])
    assert message["title"] == "记录需要复核"
    assert message["body"].startswith("第 0001 户的一棵杉木被标记：")
    assert message["body"].endswith("等 4 项")  # no photo, no GPS, a month late, 1 cm a month
    assert message["url"] == f"/app/#/household/{world.household_a}"
    assert request["headers"]["urgency"] == "low"


def test_subscribing_again_updates_kinds_and_unsubscribe_removes(push_app, client, db, world):
    order = paid_order(push_app, db, world)
    browser = Browser("https://push.example.net/send/" + uuid.uuid4().hex)
    body = {"subscription": browser.subscription(), "order": order["public_id"]}
    assert client.post("/api/v1/push/subscriptions", json=body).status_code == 201
    again = client.post("/api/v1/push/subscriptions", json=body)
    assert again.status_code == 200
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 1
    gone = client.delete(
        "/api/v1/push/subscriptions",
        json={"endpoint": browser.endpoint, "order": order["public_id"]},
    )
    assert (gone.status_code, gone.json) == (200, {"removed": 1})
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 0


def test_sipang_push_work_once_sends_the_queue(push_app, client, db, world, push_service, runner):
    order, browser, _ = watched_order(push_app, client, db, world, push_service)
    with push_app.app_context():
        orders.confirm_payment(db, order, "bank", "ICBC-PUSH-0005", "user:3")
    from click.testing import CliRunner

    from server.cli import main

    result = CliRunner().invoke(
        main,
        ["push", "work", "--once", "--instance", push_app.config["INSTANCE_PATH"]],
        env={"SIPANG_PUSH_ALLOW_HTTP_ENDPOINTS": "true"},  # the local push service
    )
    assert result.exit_code == 0, result.output
    assert "sent=1" in result.output
    shown = CliRunner().invoke(
        main, ["push", "status", "--instance", push_app.config["INSTANCE_PATH"]]
    )
    assert json.loads(shown.output) == {
        "subscriptions": {"order": 1},
        "messages": {"sent": 1},
        "failures": [],
    }
    assert browser.decrypt(push_service.received[0]["body"])["title"] == "碳汇证书已生成"


def test_a_settlement_pushes_money_sent_to_the_farmer(push_app, client, db, world, push_service):
    """The issue's own case: a T+1 transfer recorded → the farmer's phone decrypts the notice."""
    from server.payouts import settlement

    with push_app.app_context():
        bundle, _, grown = rw.stocked_bundle(db, world.user_ids["verifier"])
        order = rw.order(db, bundle["id"], 2)
        orders.confirm_payment(db, order, "bank", "ICBC-PUSH-S001", "user:3")
    code = grown["households"][0]
    with push_app.test_request_context():
        token = household_token(code)
    browser = Browser(push_service.endpoint())
    made = client.post(
        "/api/v1/push/subscriptions",
        json={
            "subscription": browser.subscription(),
            "household": code,
            "token": token,
            "quiet_hours": None,  # this test must not depend on the hour it runs at
        },
    )
    assert made.status_code == 201, made.json
    with push_app.app_context():
        batch, _ = settlement.create_batch(db, "2099-01-02", 1, "user:3")
        row = first(db, "SELECT * FROM settlements WHERE batch_id = ?", [batch["id"]])
        settlement.record_transfer(db, row["id"], "ICBC-T1-PUSH-1", "user:3")
    assert push_service.received == []
    assert make_sender(push_app.config, db, clock=due_clock(db)).run_once()["sent"] == 1
    (request,) = push_service.received
    assert browser.decrypt(request["body"]) == {
        "title": "碳汇收益已汇出",
        "body": f"¥{row['amount_fen'] / 100:.2f} 已汇往您登记的银行账户，请留意到账。",
        "url": f"/h/{code}",
    }
    assert request["headers"]["urgency"] == "normal"
    check_vapid(
        request["headers"], client.get("/api/v1/push/key").json["public_key"], push_service.url
    )


def test_an_endpoint_that_resolves_inside_is_never_posted_to(app, db, world, push_service):
    """A name can point anywhere after the subscription was checked: the worker resolves it
    and refuses private and loopback addresses (unless PUSH_ALLOW_HTTP_ENDPOINTS)."""
    browser = Browser(f"https://localhost:{push_service.server.server_port}/push/x")
    sub = browser.subscription()
    db["push_subscriptions"].insert(
        {
            "owner_type": "order",
            "owner_id": "1",
            "endpoint": sub["endpoint"],
            "p256dh": sub["keys"]["p256dh"],
            "auth": sub["keys"]["auth"],
            "kinds": '["certificate_ready"]',
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
        }
    )
    params = {"order_id": "x" * 24, "tonnes": 1, "certificate_id": "SPC-2026-000009"}
    assert notify(db, "certificate_ready", 1, params) == 1
    db.conn.commit()
    assert make_sender(app.config, db, clock=due_clock(db)).run_once()["failed"] == 1
    assert push_service.received == []
    row = next(db["push_messages"].rows)
    assert row["state"] == "failed" and "refused" in row["last_error"]


def test_the_serve_worker_thread_sends_what_is_queued(push_app, client, db, world, push_service):
    """`sipang serve` runs the same worker in a thread (start_worker); it sends and stops."""
    import time

    from server.push import start_worker

    order, browser, _ = watched_order(push_app, client, db, world, push_service)
    service = start_worker(push_app)
    try:
        with push_app.app_context():
            orders.confirm_payment(db, order, "bank", "ICBC-PUSH-0006", "user:3")
        deadline = time.monotonic() + 60  # a bound on waiting, never a pass/fail on speed
        while not push_service.received:
            assert time.monotonic() < deadline, "the worker thread sent nothing"
            time.sleep(0.05)
    finally:
        service.stop()
    assert browser.decrypt(push_service.received[0]["body"])["title"] == "碳汇证书已生成"
    assert not service._thread.is_alive()
