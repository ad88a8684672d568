"""Sync through the weak-network proxy to a real server process: nothing lost, nothing doubled."""

import hashlib
import json
import random
import shutil
import sqlite3
import time
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.client import SyncClient, SyncScheduler, TransientError
from sync.proxy import FaultSpec, WeakNetworkProxy
from tests.conftest import bearer
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory, seeded):
    """One real server for the module, on a private copy of the seeded instance."""
    folder, world = seeded
    instance = tmp_path_factory.mktemp("weak") / "instance"
    shutil.copytree(folder, instance)
    with ServerProcess(instance) as process:
        process.world = world
        yield process


def new_device(server) -> tuple[str, str]:
    """Enrol a fresh phone for the village-A measurer; returns (device id, token)."""
    world = server.world

    def post(path, body, token=None):
        request = urllib.request.Request(  # noqa: S310 - the test server's http URL
            f"{server.url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", **(bearer(token) if token else {})},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    code = post(
        "/api/v1/devices/enrolment-codes", {"measurer_id": world.measurer_id}, world.tokens["admin"]
    )["code"]
    enrolled = post("/api/v1/devices/enrol", {"code": code, "label": "weak-network test"})
    return enrolled["device_id"], enrolled["token"]


def queue_trees(client: SyncClient, household: str, count: int, photo: bytes | None = None):
    for index in range(count):
        tree_id = str(uuid.uuid4())
        client.record(
            "tree.register",
            tree_id,
            {
                "household_code": household,
                "species_id": "cunninghamia_lanceolata",
                "position": "road",
            },
        )
        client.record(
            "tree.measure",
            tree_id,
            {
                "measurement_id": str(uuid.uuid4()),
                "stems_mm": [90 + index],
                "height_cm": 900,
                "latitude": 29.26,
                "longitude": 115.1,
            },
            photo=photo if index == 0 else None,
        )


def server_ops(server, device_id: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(server.instance / "sipang.db")
    try:
        return db.execute(
            "SELECT op_id, status FROM sync_ops WHERE device_id = ? ORDER BY device_seq",
            [device_id],
        ).fetchall()
    finally:
        db.close()


def assert_exactly_once(server, client: SyncClient, device_id: str) -> None:
    on_server = server_ops(server, device_id)
    assert [status for _, status in on_server] == ["applied"] * len(on_server)
    assert sorted(op for op, _ in on_server) == sorted(client.results())
    assert all(r["state"] == "done" for r in client.results().values())
    db = sqlite3.connect(server.instance / "sipang.db")
    try:
        trees = db.execute("SELECT count(*) FROM trees WHERE device_id = ?", [device_id])
        measurements = db.execute(
            "SELECT count(*) FROM measurements WHERE device_id = ?", [device_id]
        )
        expected = len(on_server) // 2
        assert (trees.fetchone()[0], measurements.fetchone()[0]) == (expected, expected)
    finally:
        db.close()


faults = st.one_of(
    st.none(),
    st.builds(
        FaultSpec, cut_after=st.integers(0, 6000), cut_direction=st.sampled_from(["up", "down"])
    ),
    st.builds(FaultSpec, drop_response=st.just(True)),
    st.builds(FaultSpec, status=st.sampled_from([429, 502, 504]), retry_after=st.just(0)),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    trees=st.integers(1, 12),
    schedule=st.lists(faults, max_size=12),
    reorder=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_every_operation_applies_exactly_once_whatever_the_network_does(
    server, tmp_path_factory, trees, schedule, reorder, seed, data
):
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path_factory.mktemp("phone"))
    queue_trees(client, server.world.household_a, trees)
    if reorder:  # a later batch arrives first (a retried request overtaking another)
        ops = list(client.db.execute("SELECT device_seq FROM ops ORDER BY device_seq DESC"))
        late = [row[0] for row in ops[: data.draw(st.integers(1, len(ops)))]]
        client.db.execute(
            "UPDATE ops SET state = 'blocked' WHERE device_seq NOT IN "
            "(SELECT value FROM json_each(?))",
            [json.dumps(late)],
        )
        client.push_once()
        client.db.execute("UPDATE ops SET state = 'pending' WHERE state = 'blocked'")
    with WeakNetworkProxy(("127.0.0.1", server.port), seed=seed, schedule=schedule) as proxy:
        client.base_url = proxy.url
        SyncScheduler(client, rng=random.Random(seed), sleep=lambda _: None).run(attempts=60)
    assert client.status()["pending"] == 0
    assert_exactly_once(server, client, device_id)


def test_a_restarted_server_loses_and_doubles_nothing(server, tmp_path):
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path / "phone")
    queue_trees(client, server.world.household_a, 20)
    client.batch_ops = 25
    client.push_once()  # some arrive
    server.restart()  # crash: killed, started again
    with WeakNetworkProxy(
        ("127.0.0.1", server.port), seed=3, schedule=[FaultSpec(drop_response=True)]
    ) as proxy:
        client.base_url = proxy.url
        with pytest.raises(TransientError):
            client.push_once()  # committed, but the answer never came
        server.restart()
        SyncScheduler(client, rng=random.Random(1), sleep=lambda _: None).run(attempts=20)
    assert_exactly_once(server, client, device_id)


def pushed_with_photo(server, tmp_path, seed: int, size: int) -> tuple[SyncClient, bytes, str]:
    """A new phone that has pushed one tree whose photo it has yet to send: (client, the
    photo's bytes, its sha256)."""
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path / "phone")
    photo = random.Random(seed).randbytes(size)
    queue_trees(client, server.world.household_a, 1, photo=photo)
    while client.push_once():
        pass
    return client, photo, hashlib.sha256(photo).hexdigest()


def test_a_photo_cut_every_20_kb_arrives_with_little_resent(server, tmp_path):
    client, photo, sha = pushed_with_photo(server, tmp_path, 7, 200_000)
    cuts = [FaultSpec(cut_after=20_000, cut_direction="up")] * 40
    with WeakNetworkProxy(("127.0.0.1", server.port), schedule=cuts) as proxy:
        client.base_url = proxy.url
        for _ in range(60):
            try:
                client.upload_photo(sha)
                break
            except TransientError:
                continue
        stats = proxy.stats
    stored = server.instance / "blobs" / sha[:2] / sha
    assert stored.read_bytes() == photo
    cut_connections = sum(1 for c in stats.per_connection if "cut" in " ".join(c.faults))
    assert cut_connections > 0
    # Request bodies on the wire: the photo, plus at most one chunk lost per cut, plus headers.
    assert stats.bytes_up <= len(photo) + cut_connections * 20_000 + stats.connections * 600


def test_a_server_restart_mid_upload_resumes_from_the_stored_offset(server, tmp_path):
    client, photo, sha = pushed_with_photo(server, tmp_path, 8, 120_000)
    client.chunk_size = 16_384
    with WeakNetworkProxy(  # the chunks go pipelined over one connection: cut it at 30 KB
        ("127.0.0.1", server.port), schedule=[FaultSpec(cut_after=30_000, cut_direction="up")]
    ) as proxy:
        client.base_url = proxy.url
        with pytest.raises(TransientError):
            client.upload_photo(sha)
        partial = server.instance / "blobs" / "partial" / f"{sha}.part"
        for _ in range(200):  # pipelined: the server may still be writing what came
            if partial.exists() and partial.stat().st_size >= client.chunk_size:
                break
            time.sleep(0.05)
        held = partial.stat().st_size
        assert 0 < held < len(photo)
        server.restart()
        client.upload_photo(sha)
        resent = proxy.stats.bytes_up
    assert (server.instance / "blobs" / sha[:2] / sha).read_bytes() == photo
    assert resent < len(photo) + 40_000  # what was held was not sent again


def test_one_kept_connection_carries_a_whole_sync_and_a_photo_in_one_round_trip(server, tmp_path):
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path / "phone")
    photo = random.Random(9).randbytes(150_000)
    queue_trees(client, server.world.household_a, 60, photo=photo)
    client.chunk_size = 16_384  # ten chunks
    with WeakNetworkProxy(("127.0.0.1", server.port), profile="none") as proxy:
        client.base_url = proxy.url
        while client.push_once():
            pass
        pushes = client.connection.requests
        sha = hashlib.sha256(photo).hexdigest()
        before = client.connection.exchanges
        client.upload_photo(sha)
        chunks = client.connection.requests - pushes
        photo_round_trips = client.connection.exchanges - before
        client.pull()
        stats = proxy.stats
    assert pushes >= 2  # 120 operations do not fit the first, small batch
    assert (chunks, photo_round_trips) == (10, 1)  # no HEAD on a first try; all pipelined
    assert stats.connections == 1
    assert (server.instance / "blobs" / sha[:2] / sha).read_bytes() == photo
    assert_exactly_once(server, client, device_id)


def test_batches_grow_after_quick_answers_and_shrink_after_failures_exactly_once(server, tmp_path):
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path / "phone")
    client.quick_s = 3600  # every answer counts as quick: growth follows the rule, not the clock
    queue_trees(client, server.world.household_a, 200)
    with WeakNetworkProxy(("127.0.0.1", server.port), profile="none") as proxy:
        client.base_url = proxy.url
        grown = [client.push_once() for _ in range(3)]
        grown_bytes = client.batch_bytes
        client.connection.close()  # the next three connections lose their answers
        proxy.set_schedule([FaultSpec(drop_response=True)] * 3)
        for _ in range(3):
            with pytest.raises(TransientError):
                client.push_once()
        shrunk_bytes = client.batch_bytes
        after = client.push_once()  # applied before, unanswered: duplicates now
        while client.push_once():
            pass
    assert grown[0] < grown[1] == grown[2] == 100  # 4 KB, then the 100-operation cap
    assert shrunk_bytes == grown_bytes // 8
    assert after < 100
    duplicates = [r for r in client.results().values() if r["result"]["status"] == "duplicate"]
    assert len(duplicates) == 100  # the batch whose answers were lost, applied once
    assert_exactly_once(server, client, device_id)


def test_a_kept_connection_the_server_dropped_is_replaced_without_a_failure(server, tmp_path):
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path / "phone")
    queue_trees(client, server.world.household_a, 4)
    client.batch_ops = 2
    assert client.push_once() == 2
    server.restart()  # every open connection to it is gone

    assert client.push_once() == 2  # no TransientError: opened anew
    while client.push_once():
        pass
    assert client.connection.opened == 2
    assert_exactly_once(server, client, device_id)


def test_a_new_phones_first_pull_rides_behind_its_last_push(server, tmp_path):
    device_id, token = new_device(server)
    client = SyncClient(server.url, token, device_id, tmp_path / "phone")
    queue_trees(client, server.world.household_a, 3)
    with WeakNetworkProxy(("127.0.0.1", server.port), profile="none") as proxy:
        client.base_url = proxy.url
        assert client.push_once(ask_pull=True) == 6
        carried = (client.connection.requests, client.connection.exchanges)
        first_page_cursor = client._cursor()
        client.pull()  # the rest of the village, if one page did not hold it
        connections = proxy.stats.connections
    assert carried == (2, 1)  # the push and the pull, one round trip
    assert first_page_cursor > 0
    assert connections == 1
    mine = {row[0] for row in client.db.execute("SELECT record_id FROM ops")}
    assert mine <= set(client.village["trees"])  # pulled after the push was applied
    assert_exactly_once(server, client, device_id)


def test_a_photo_whose_server_copy_went_bad_is_sent_again_from_the_start(server, tmp_path):
    client, photo, sha = pushed_with_photo(server, tmp_path, 9, 90_000)
    # The server holds 30 KB that are not the photo's (a disk fault, an old bug's leftovers).
    partial = server.instance / "blobs" / "partial" / f"{sha}.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(bytes(30_000))
    client._photos_tried.add(sha)  # a resumed upload: it asks where the server's copy ends
    client.upload_photo(sha)
    assert (server.instance / "blobs" / sha[:2] / sha).read_bytes() == photo
    assert not partial.exists()
