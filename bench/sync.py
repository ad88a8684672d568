"""Benchmark: sync ingestion rate, bytes per record, and 100 records through each weak network.

Runs a real server process (`sipang serve`) on a fresh instance and the Python reference
client, directly and through the weak-network proxy. Prints a table, then one JSON line.

    .venv/bin/python bench/sync.py [--quick]
"""

import argparse
import json
import random
import secrets
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync.client import SyncClient, SyncScheduler  # noqa: E402
from sync.proxy import PROFILES, WeakNetworkProxy  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

VILLAGE = "360423101201"


def prepare(instance: Path, phones: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A village with 50 households and `phones` enrolled measurer phones."""
    from server import create_app, devices, households, users, villages
    from server.db import get_db

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


def ingestion(server: ServerProcess, households, phones, trees_per_phone: int) -> float:
    """Tree records applied per second with several phones pushing batches of 25 at once."""
    clients = []
    for n, (device_id, token) in enumerate(phones):
        client = SyncClient(server.url, token, device_id, Path(tempfile.mkdtemp()))
        queue(client, households, trees_per_phone, random.Random(n))
        clients.append(client)

    def push_all(client: SyncClient) -> None:
        while client.push_once():
            pass

    threads = [threading.Thread(target=push_all, args=(c,)) for c in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert all(c.status()["pending"] == 0 for c in clients)
    return len(clients) * trees_per_phone / elapsed


def bytes_per_record(households: list[str]) -> float:
    """Gzipped push body bytes per tree (registration + measurement), batches of 25 ops."""
    client = SyncClient("http://127.0.0.1:9", "t", "d", Path(tempfile.mkdtemp()))
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


def through(
    server: ServerProcess, households, phone, profile: str, trees: int, photos: int
) -> dict[str, float]:
    """Sync `trees` records (and photos) through a proxy profile: seconds and the floor."""
    device_id, token = phone
    client = SyncClient(server.url, token, device_id, Path(tempfile.mkdtemp()))
    queue(client, households, trees, random.Random(9), photos=photos)
    with WeakNetworkProxy(("127.0.0.1", server.port), profile=profile, seed=11) as proxy:
        client.base_url = proxy.url
        started = time.perf_counter()
        SyncScheduler(client, base=0.5, cap=5, rng=random.Random(1)).run(attempts=200)
        elapsed = time.perf_counter() - started
        stats = proxy.stats
    settings = PROFILES[profile]
    limit = stats.bytes_up * 8 / (settings.up_kbps * 1000) + stats.bytes_down * 8 / (
        settings.down_kbps * 1000
    )
    return {
        "seconds": elapsed,
        "limit": limit,
        "up": stats.bytes_up,
        "down": stats.bytes_down,
        "connections": stats.connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run under 30 s")
    args = parser.parse_args()
    phones_for_ingest = 2 if args.quick else 4
    profiles = ["gprs"] if args.quick else ["gprs", "edge", "3g-slow", "lossy-2g"]
    records = 20 if args.quick else 100
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        households, phones = prepare(instance, phones_for_ingest + 2 * len(profiles))
        with ServerProcess(instance) as server:
            rate = ingestion(
                server, households, phones[:phones_for_ingest], 50 if args.quick else 500
            )
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
    print(f"ingestion, batches of 25, {phones_for_ingest} phones at once: {rate:,.0f} records/s")
    print(
        f"wire bytes per tree record: {json_bytes:.0f} B gzipped JSON "
        f"(OpenRosa XML as ODK Collect sends it: {openrosa:.0f} B)"
    )
    print(
        f"\n{'profile':<10} {'records':>8} {'sync s':>8} {'link floor s':>13} {'ratio':>6}"
        f"   {'+1 photo 150 KB s':>18} {'floor s':>8}"
    )
    for profile, (plain, photo) in rows.items():
        extra = f"   {photo['seconds']:>18.1f} {photo['limit']:>8.1f}" if photo else ""
        print(
            f"{profile:<10} {records:>8} {plain['seconds']:>8.1f} {plain['limit']:>13.1f} "
            f"{plain['seconds'] / plain['limit']:>6.2f}{extra}"
        )
    gprs = rows["gprs"][0]
    print(
        json.dumps(
            {
                "ingest_records_per_s": round(rate),
                "bytes_per_record_gzip": round(json_bytes),
                "openrosa_bytes_per_record": round(openrosa),
                "gprs_100_records_s": round(gprs["seconds"], 1),
                "gprs_limit_s": round(gprs["limit"], 1),
                "records": records,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
