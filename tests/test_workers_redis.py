"""Two web processes of one county (gunicorn with deploy/gunicorn.conf.py) sharing Debian's
redis-server: a dashboard connected to one hears what a phone's push to the other announced,
and a per-address limit counts the requests both processes answered."""

import json
import shutil
import threading
import urllib.error
import urllib.request
import uuid

import pytest
import socketio

from sync.client import SyncClient
from tests.conftest import PASSWORD, bearer
from tests.site_processes import free_ports, start_gunicorn, start_redis, stop, wait_for


@pytest.fixture(scope="module")
def processes(tmp_path_factory, seeded):
    """(url of process A, url of process B, world), both on one instance and one Redis."""
    tmp = tmp_path_factory.mktemp("workers")
    folder, world = seeded
    instance = tmp / "instance"
    shutil.copytree(folder, instance)
    redis_port, *ports = free_ports(3)
    redis = start_redis(tmp / "redis", redis_port)
    shared = f"redis://127.0.0.1:{redis_port}/0"
    apps = [
        start_gunicorn(
            instance,
            port,
            SOCKETIO_MESSAGE_QUEUE=shared,
            RATELIMIT_STORAGE_URI=shared,
            LOGIN_RATE_LIMIT="10 per hour",
        )
        for port in ports
    ]
    try:
        for port, app in zip(ports, apps, strict=True):
            wait_for(port, app)
        yield (*(f"http://127.0.0.1:{port}" for port in ports), world)
    finally:
        stop(*apps, redis)


def post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - the test's own http URL
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(bearer(token) if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_event_announced_in_one_process_reaches_a_dashboard_on_the_other(processes, tmp_path):
    a, b, world = processes
    heard, arrived = [], threading.Event()
    dashboard = socketio.Client()

    @dashboard.on("sync.applied", namespace="/live")
    def applied(data):
        heard.append(data)
        arrived.set()

    dashboard.connect(
        a, namespaces=["/live"], auth={"token": world.tokens["admin"]}, transports=["polling"]
    )
    try:
        _, code = post(
            f"{b}/api/v1/devices/enrolment-codes",
            {"measurer_id": world.measurer_id},
            world.tokens["admin"],
        )
        _, phone = post(f"{b}/api/v1/devices/enrol", {"code": code["code"], "label": "B 的手机"})
        client = SyncClient(b, phone["token"], phone["device_id"], tmp_path / "phone")
        tree_id = str(uuid.uuid4())
        client.record(
            "tree.register",
            tree_id,
            {
                "household_code": world.household_a,
                "species_id": "cunninghamia_lanceolata",
                "position": "road",
            },
        )
        client.sync()  # to process B only

        assert arrived.wait(timeout=60), "the dashboard on process A heard nothing"
    finally:
        dashboard.disconnect()
    assert heard[0]["device"] == phone["device_id"]
    assert heard[0]["village"] == world.village_a
    assert heard[0]["records"] == [client.results().popitem()[0]]


def test_a_per_address_limit_counts_the_requests_of_both_processes(processes):
    a, b, _ = processes
    wrong = {"username": "admin", "password": "not the password"}

    statuses = [post(f"{url}/api/v1/auth/tokens", wrong)[0] for url in [a, b] * 5]
    # ten attempts from this address in all, five at each process: the eleventh is refused at
    # either, even with the right password
    eleventh = post(f"{b}/api/v1/auth/tokens", {"username": "admin", "password": PASSWORD})[0]

    assert statuses == [401] * 10
    assert eleventh == 429
