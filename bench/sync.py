"""Benchmark: sync ingestion rate, bytes per record, and 100 records through each weak network.

Runs a real server process (`sipang serve`) on a fresh instance and the Python reference
client, directly and through the weak-network proxy. Ingestion is printed beside the rate at
which SQLite itself inserts the same rows (the same batches, bare); each network beside its
byte floor (the bytes sent over the profile's rates) and the round trips made and the fewest
possible. Prints a table, then one JSON line. Ingestion also gives the CPU the server's
processes used per record (`server_cpu_ms_per_record`, Linux): on a busy machine it moves
less than the rate. `--profile-ingestion` runs the server's side of ingestion in this process
under cProfile and prints the top lines instead.

    .venv/bin/python bench/sync.py [--quick] [--networks edge,3g-slow] [--profile-ingestion]
    .venv/bin/python bench/sync.py --ingestion-only [--repeat 3]
"""

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import random
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import create_app, devices, households, users, villages  # noqa: E402
from server.db import get_db  # noqa: E402
from server.sync_pull import MAX_PAGE  # noqa: E402
from sync.client import SyncClient, SyncScheduler  # noqa: E402
from sync.profiles import PROFILES  # noqa: E402
from sync.protocol import MAX_BATCH_OPS  # noqa: E402
from sync.proxy import WeakNetworkProxy  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

VILLAGE = "360423101201"


def prepare(instance: Path, phones: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A village with 50 households and `phones` enrolled measurer phones."""
    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        villages.create_county(db, VILLAGE[:6], "武宁县")
        village = villages.create_village(db, VILLAGE, "长水村", "宋溪镇", 29.262, 115.101)
        admin = users.create_user(
            db,
            username="admin",
            display_name="admin",
            role="admin",
            password=secrets.token_urlsafe(16),
        )
        codes = [
            households.create_household(db, village, head_name=f"户{n}")["code"] for n in range(50)
        ]
        enrolled = []
        for n in range(phones):
            measurer = users.create_user(
                db,
                username=f"measurer{n}",
                display_name="计量员",
                role="measurer",
                village_code=VILLAGE,
            )
            code = devices.create_enrolment_code(db, measurer, admin["id"])["code"]
            made = devices.enrol(db, code, f"bench phone {n}")
            enrolled.append((made["device_id"], made["token"]))
    return codes, enrolled


def queue(
    client: SyncClient, households: list[str], trees: int, rng: random.Random, photos: int = 0
) -> None:
    """`trees` new trees, each registered and measured (one record = one tree)."""
    for index in range(trees):
        tree_id = str(uuid.uuid4())
        client.record(
            "tree.register",
            tree_id,
            {
                "household_code": rng.choice(households),
                "species_id": "cunninghamia_lanceolata",
                "position": "house",
            },
        )
        photo = rng.randbytes(150_000) if index < photos else None
        client.record(
            "tree.measure",
            tree_id,
            {
                "measurement_id": str(uuid.uuid4()),
                "stems_mm": [rng.randint(60, 400)],
                "height_cm": rng.randint(300, 2000),
                "latitude": round(29.262 + rng.uniform(-0.003, 0.003), 6),
                "longitude": round(115.101 + rng.uniform(-0.003, 0.003), 6),
                "gps_accuracy_m": round(rng.uniform(3, 15), 1),
            },
            photo=photo,
        )


def phone(url: str, device: tuple[str, str], batch_ops: int | None = None) -> SyncClient:
    """A reference client; with `batch_ops`, every push carries exactly that many."""
    client = SyncClient(url, device[1], device[0], Path(tempfile.mkdtemp()))
    if batch_ops:
        client.batch_ops, client.batch_bytes = batch_ops, 1 << 30
    return client


def _process_tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a process and its descendants (Linux's
    /proc; None elsewhere): the server's cost, which a busy machine's wall clock hides."""
    try:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    if pid not in stats:
        return None
    tree, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, (ppid, _) in stats.items() if ppid == parent and p not in tree]
        tree.update(children)
        todo += children
    return sum(stats[p][1] for p in tree) / os.sysconf("SC_CLK_TCK")


def ingestion(
    server: ServerProcess, households, phones, trees_per_phone: int, cpu: dict | None = None
) -> float:
    """Tree records applied per second with several phones pushing batches of 25 at once;
    `cpu` gets the server's CPU milliseconds per record (`server_cpu_ms_per_record`)."""
    clients = []
    for n, device in enumerate(phones):
        client = phone(server.url, device, batch_ops=25)
        queue(client, households, trees_per_phone, random.Random(n))
        clients.append(client)

    def push_all(client: SyncClient) -> None:
        while client.push_once():
            pass

    threads = [threading.Thread(target=push_all, args=(c,)) for c in clients]
    server_cpu = _process_tree_cpu_s(server.process.pid)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    used = _process_tree_cpu_s(server.process.pid)
    if cpu is not None and server_cpu is not None and used is not None:
        records = len(clients) * trees_per_phone
        cpu["server_cpu_ms_per_record"] = round((used - server_cpu) * 1000 / records, 3)
    assert all(c.status()["pending"] == 0 for c in clients)
    for client in clients:
        client.close()
    return len(clients) * trees_per_phone / elapsed


INGESTED = ("trees", "measurements", "measurement_estimates", "sync_ops")


def bare_sqlite(database: Path, batch_ops: int = 25) -> float:
    """Tree records a second when SQLite inserts the rows ingestion made (trees, readings,
    estimates, the operation log) into the same tables with no triggers or checks of ours,
    a transaction per batch as a push commits: the floor under ingestion's cost."""
    source = sqlite3.connect(database)
    tables = {name: list(source.execute(f"SELECT * FROM {name}")) for name in INGESTED}  # noqa: S608
    schema = [
        sql
        for (name, sql) in source.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")
        if name in INGESTED
    ]
    source.close()
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "bare.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=wal")
        db.execute("PRAGMA synchronous=normal")
        for sql in schema:
            db.execute(sql)
        trees = len(tables["trees"])
        batches = math.ceil(2 * trees / batch_ops)
        started = time.perf_counter()
        for batch in range(batches):
            db.execute("BEGIN IMMEDIATE")
            for name, rows in tables.items():
                share = math.ceil(len(rows) / batches)
                part = rows[batch * share : (batch + 1) * share]
                if part:
                    marks = ", ".join("?" * len(part[0]))
                    db.executemany(f"INSERT INTO {name} VALUES ({marks})", part)  # noqa: S608
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
    return trees / elapsed


def profile_ingestion(folder: Path, trees: int = 300) -> None:
    """The server's side of ingestion in this process under cProfile (batches of 25)."""
    households, phones = prepare(folder / "instance", 1)
    app = create_app({"INSTANCE_PATH": str(folder / "instance")})
    client = phone("http://127.0.0.1:9", phones[0], batch_ops=25)
    queue(client, households, trees, random.Random(1))
    bodies = []
    while True:
        ops, body = client._next_batch()
        if not ops:
            break
        bodies.append(body)
        done = json.dumps([o["op_id"] for o in ops])
        client.db.execute(
            "UPDATE ops SET state = 'done' WHERE op_id IN (SELECT value FROM json_each(?))", [done]
        )
    headers = {
        "Authorization": f"Bearer {phones[0][1]}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    http = app.test_client()
    profiler = cProfile.Profile()
    started = time.process_time()
    profiler.enable()
    for body in bodies:
        assert http.post("/api/v1/sync/push", data=body, headers=headers).status_code == 200
    profiler.disable()
    cpu = time.process_time() - started
    print(f"{trees} trees in {len(bodies)} pushes: {cpu:.2f} s CPU under the profiler")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"server/|sync/", 30)
    stats.sort_stats("tottime").print_stats(12)
    print(out.getvalue())


def bytes_per_record(households: list[str]) -> float:
    """Gzipped push body bytes per tree (registration + measurement), batches of 25 ops."""
    client = phone("http://127.0.0.1:9", ("d", "t"), batch_ops=25)
    queue(client, households, 100, random.Random(5))
    total = 0
    while True:
        ops, body = client._next_batch()
        if not ops:
            break
        total += len(body)
        client.db.execute(
            "UPDATE ops SET state = 'done' WHERE op_id IN (SELECT value FROM json_each(?))",
            [json.dumps([o["op_id"] for o in ops])],
        )
    return total / 100


def openrosa_bytes_per_record(households: list[str]) -> float:
    """The same trees as ODK Collect submissions: one multipart POST of XML per record."""
    rng, total = random.Random(5), 0
    for _ in range(100):
        boundary = uuid.uuid4().hex
        xml = (
            '<?xml version="1.0" ?><data id="sipang_tree" version="2026110101" '
            'xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">'
            f"<household>{rng.choice(households)}</household>"
            "<species>cunninghamia_lanceolata</species><position>house</position>"
            f"<dbh>{rng.randint(60, 400) / 10}</dbh><height>{rng.randint(300, 2000) / 100}"
            f"</height><gps>{29.262 + rng.uniform(-0.003, 0.003):.6f} "
            f"{115.101 + rng.uniform(-0.003, 0.003):.6f} 0.0 {rng.uniform(3, 15):.1f}</gps>"
            "<photo/><start>2026-11-21T09:12:03.123+08:00</start>"
            "<end>2026-11-21T09:14:41.532+08:00</end>"
            f"<meta><instanceID>uuid:{uuid.uuid4()}</instanceID></meta></data>"
        )
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="xml_submission_file";'
            f' filename="submission.xml"\r\nContent-Type: text/xml\r\n\r\n{xml}\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        headers = (
            "POST /submission HTTP/1.1\r\nHost: sipang.example.cn\r\n"
            "X-OpenRosa-Version: 1.0\r\nDate: Sat, 21 Nov 2026 01:14:42 GMT\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nUser-Agent: org.odk.collect.android/v2026.1"
            "\r\nAccept-Encoding: gzip\r\n\r\n"
        ).encode()
        total += len(headers) + len(body)
    return total / 100


def changes_waiting(instance: Path) -> int:
    """The village's changes a new phone pulls (one village in this benchmark)."""
    db = sqlite3.connect(instance / "sipang.db")
    try:
        return db.execute("SELECT count(*) FROM change_log").fetchone()[0]
    finally:
        db.close()


def through(
    server: ServerProcess, households, device, profile: str, trees: int, photos: int
) -> dict[str, float]:
    """Sync `trees` records (and photos) from a new phone through a proxy profile: seconds,
    the byte floor, round trips made and the fewest the protocol allows."""
    client = phone(server.url, device)
    queue(client, households, trees, random.Random(f"9:{profile}"), photos=photos)
    ops = client.status()["pending"]
    with WeakNetworkProxy(("127.0.0.1", server.port), profile=profile, seed=11) as proxy:
        client.base_url = proxy.url
        started = time.perf_counter()
        SyncScheduler(client, base=0.5, cap=5, rng=random.Random(1)).run(attempts=200)
        elapsed = time.perf_counter() - started
        stats = proxy.stats
    settings = PROFILES[profile]
    floor = stats.bytes_up * 8 / (settings.up_kbps * 1000) + stats.bytes_down * 8 / (
        settings.down_kbps * 1000
    )
    # The fewest: the TCP handshake, full pushes, one pipelined round trip a photo; the first
    # pull page rides with the last request (in the push's answer, or pipelined behind it).
    pages = math.ceil(changes_waiting(server.instance) / MAX_PAGE)
    fewest = 1 + math.ceil(ops / MAX_BATCH_OPS) + photos + max(0, pages - 1)
    made = client.connection.exchanges + client.connection.opened
    client.close()
    return {
        "seconds": elapsed,
        "floor": floor,
        "ratio": elapsed / floor,
        "round_trips": made,
        "fewest": fewest,
        "latency_s": settings.latency_ms / 1000,
        "up": stats.bytes_up,
        "down": stats.bytes_down,
        "connections": stats.connections,
    }


def ingestion_only(phones: int, trees_per_phone: int) -> None:
    """One ingestion run on a fresh instance, beside the bare SQLite rate (a JSON line)."""
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        households, enrolled = prepare(instance, phones)
        with ServerProcess(instance) as server:
            cpu: dict = {}
            rate = ingestion(server, households, enrolled, trees_per_phone, cpu)
        bare = bare_sqlite(instance / "sipang.db")
    print(
        json.dumps(
            {
                "ingest_records_per_s": round(rate),
                "server_cpu_ms_per_record": cpu.get("server_cpu_ms_per_record"),
                "bare_sqlite_records_per_s": round(bare),
                "ratio": round(bare / rate, 1),
                "phones": phones,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run under 30 s")
    parser.add_argument("--networks", help="comma-separated proxy profiles (default: all four)")
    parser.add_argument("--profile-ingestion", action="store_true", help="cProfile ingestion")
    parser.add_argument(
        "--ingestion-only", action="store_true", help="only the ingestion row (no networks)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="ingestion runs (--ingestion-only)")
    args = parser.parse_args()
    if args.profile_ingestion:
        with tempfile.TemporaryDirectory() as folder:
            profile_ingestion(Path(folder))
        return
    if args.ingestion_only:
        for _ in range(args.repeat):
            ingestion_only(4, 500)
        return
    phones_for_ingest = 2 if args.quick else 4
    profiles = ["gprs"] if args.quick else ["gprs", "edge", "3g-slow", "lossy-2g"]
    if args.networks:
        profiles = args.networks.split(",")
    records = 20 if args.quick else 100
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        households, phones = prepare(instance, phones_for_ingest + 2 * len(profiles))
        with ServerProcess(instance) as server:
            cpu: dict = {}
            rate = ingestion(
                server, households, phones[:phones_for_ingest], 50 if args.quick else 500, cpu
            )
            bare = bare_sqlite(instance / "sipang.db")
            rows = {}
            spare = phones[phones_for_ingest:]
            for index, profile in enumerate(profiles):
                plain = through(server, households, spare[2 * index], profile, records, 0)
                photo = (
                    None
                    if args.quick
                    else through(server, households, spare[2 * index + 1], profile, records, 1)
                )
                rows[profile] = (plain, photo)
    json_bytes = bytes_per_record(households)
    openrosa = openrosa_bytes_per_record(households)
    print(
        f"ingestion, batches of 25, {phones_for_ingest} phones at once: {rate:,.0f} records/s"
        f" (SQLite inserting the same rows bare: {bare:,.0f}/s, {bare / rate:.0f}x)"
    )
    print(
        f"wire bytes per tree record: {json_bytes:.0f} B gzipped JSON "
        f"(OpenRosa XML as ODK Collect sends it: {openrosa:.0f} B)"
    )
    print(
        f"\n{'network':<9} {'records':>7} {'sync s':>7} {'floor s':>8} {'ratio':>6} "
        f"{'round trips':>12} {'fewest':>7}   {'+1 photo 150 KB: s':>18} {'floor':>6} "
        f"{'ratio':>6} {'trips':>6} {'fewest':>7}"
    )
    for profile, (plain, photo) in rows.items():
        extra = (
            f"   {photo['seconds']:>18.1f} {photo['floor']:>6.1f} {photo['ratio']:>6.2f} "
            f"{photo['round_trips']:>6} {photo['fewest']:>7}"
            if photo
            else ""
        )
        print(
            f"{profile:<9} {records:>7} {plain['seconds']:>7.1f} {plain['floor']:>8.1f} "
            f"{plain['ratio']:>6.2f} {plain['round_trips']:>12} {plain['fewest']:>7}{extra}"
        )
    print(
        json.dumps(
            {
                "ingest_records_per_s": round(rate),
                "server_cpu_ms_per_record": cpu.get("server_cpu_ms_per_record"),
                "bare_sqlite_records_per_s": round(bare),
                "bytes_per_record_gzip": round(json_bytes),
                "openrosa_bytes_per_record": round(openrosa),
                "networks": {
                    name: {k: round(v, 2) for k, v in plain.items()}
                    for name, (plain, _) in rows.items()
                },
                "records": records,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
