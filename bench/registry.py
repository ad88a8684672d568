"""Benchmark: certificate purchases end to end through the real server.

Each order is reserve (POST /api/v1/orders) → payment confirmed by finance (which retires
the tonne and writes the certificate) → certificate PNG downloaded. Several buyers at once.
Then "phone buyer: order → certificate": the pages a phone goes through with the local test
provider (bundle page, buy form, pay, cashier, order page with the certificate, PNG, share
card), one buyer after another, wall time. Prints tables, then one JSON line.

    .venv/bin/python bench/registry.py [--quick] [--buyers N] [--workers N]

Without `--workers` the server is `sipang serve` (gunicorn, one process, as `make run`); with
it, the production stack of bench/api.py: nginx in front of N gunicorn processes sharing Redis.

All buyers share one address, so the server runs with `SIPANG_ORDER_RATE_LIMIT` raised; the
chain worker is off (the registry queues no ledger writes yet; DESIGN's budget excludes them).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.server_process import ServerProcess  # noqa: E402


def prepare(instance: Path, trees: int) -> tuple[int, str, int]:
    """The seeded test world plus a bundle stocked from one grown village.

    Returns (bundle id, finance token, tonnes on sale)."""
    from server import create_app
    from server.db import get_db
    from server.registry import serials
    from tests import registry_world as rw
    from tests.conftest import seed

    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        world = seed(db)
        bundle, _, _ = rw.stocked_bundle(
            db,
            world.user_ids["verifier"],
            households_count=10,
            trees_per_household=trees // 10,
            start_mm=100,
            end_mm=400,
        )
        available = serials.bundle_totals(db, bundle["id"])["available"]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bundle["id"], world.tokens["finance"], available


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def run(url: str, bundle_id: int, finance: str, orders: int, buyers: int) -> dict:
    steps: dict[str, list[float]] = {"reserve": [], "pay + retire": [], "certificate PNG": []}
    totals: list[float] = []
    lock = threading.Lock()
    queue = list(range(orders))

    def buyer() -> None:
        session = requests.Session()
        csrf = session.get(f"{url}/api/v1/auth/csrf", timeout=30).json()["csrf_token"]
        payer = requests.Session()
        payer.headers["Authorization"] = f"Bearer {finance}"
        while True:
            with lock:
                if not queue:
                    return
                queue.pop()
            began = time.perf_counter()
            made = session.post(
                f"{url}/api/v1/orders",
                json={"request_id": uuid.uuid4().hex, "bundle_id": bundle_id, "tonnes": 1},
                headers={"X-CSRFToken": csrf},
                timeout=60,
            )
            reserved = time.perf_counter()
            assert made.status_code == 201, made.text
            order = made.json()["order"]["public_id"]
            paid = payer.post(
                f"{url}/api/v1/orders/{order}/payment",
                json={"method": "bank", "reference": "BENCH-" + uuid.uuid4().hex[:16]},
                timeout=60,
            )
            retired = time.perf_counter()
            (cert,) = paid.json()["order"]["certificates"]
            png = session.get(f"{url}/api/v1/certificates/{cert['id']}/image.png", timeout=60)
            done = time.perf_counter()
            assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
            with lock:
                steps["reserve"].append(reserved - began)
                steps["pay + retire"].append(retired - reserved)
                steps["certificate PNG"].append(done - retired)
                totals.append(done - began)

    began = time.perf_counter()
    threads = [threading.Thread(target=buyer) for _ in range(buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"steps": steps, "totals": totals, "elapsed": elapsed}


def phone_buyer(url: str, bundle_id: int, buyers: int) -> list[dict[str, float]]:
    """One buyer after another as a phone does it with the local test provider: bundle page,
    buy form, order page, pay, the provider's cashier, back to the order page with the
    certificate, the certificate PNG and the share card. Wall time of each."""
    import re

    runs = []
    for _ in range(buyers):
        session = requests.Session()
        began = time.perf_counter()
        page = session.get(f"{url}/bundles/{bundle_id}", timeout=60).text
        assert 'name="csrf_token"' in page
        # as the page's script does when the form is used (static/form_token.js)
        token = session.get(f"{url}/api/v1/auth/csrf", timeout=60).json()["csrf_token"]
        request_id = uuid.uuid4().hex
        bought = session.post(
            f"{url}/bundles/{bundle_id}/buy",
            data={
                "csrf_token": token,
                "request_id": request_id,
                "tonnes": "1",
                "phone": "13812345678",
            },
            timeout=60,
        )
        assert bought.url.rsplit("/", 1)[0].endswith("/orders"), bought.url
        reserved = time.perf_counter()
        cashier = session.post(
            f"{bought.url}/pay", data={"csrf_token": token, "method": "testpay"}, timeout=60
        )
        assert "/pay/testpay/" in cashier.url, cashier.url
        order_page = session.post(cashier.url, data={"csrf_token": token}, timeout=60)
        paid = time.perf_counter()
        cert = re.search(r"/verify/(SPC-\d{4}-\d{6})", order_page.text).group(1)
        png = session.get(f"{url}/api/v1/certificates/{cert}/image.png", timeout=60)
        card = session.get(f"{url}/api/v1/certificates/{cert}/card.png", timeout=60)
        done = time.perf_counter()
        assert png.content.startswith(b"\x89PNG") and card.content.startswith(b"\x89PNG")
        runs.append({"reserve": reserved - began, "pay": paid - reserved, "total": done - began})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run under 30 s")
    parser.add_argument("--buyers", type=int, help="buyers at once (default 4, quick; 8 full)")
    parser.add_argument("--workers", type=int, help="nginx and N gunicorn processes instead")
    args = parser.parse_args()
    orders, buyers, trees = (60, 4, 50) if args.quick else (400, 8, 1000)
    buyers = args.buyers or buyers
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        bundle_id, finance, available = prepare(instance, trees)
        os.environ["SIPANG_ORDER_RATE_LIMIT"] = "1000000 per minute"
        os.environ.setdefault("SIPANG_CHAIN_WORKER", "false")  # registry writes no chain rows yet
        os.environ["SIPANG_TESTPAY_ENABLED"] = "true"  # the local test provider's cashier
        phones = 5 if args.quick else 20
        orders = min(orders, available - phones)
        if args.workers:
            from api import Stack  # bench/api.py, beside this file

            stack = Stack(Path(folder), instance, args.workers, cache=True)
            try:
                url = f"http://127.0.0.1:{stack.port}"
                cpu_before = stack.cpu_seconds()
                result = run(url, bundle_id, finance, orders, buyers)
                cpu_after = stack.cpu_seconds()
                result["cpu_ms"] = {
                    part: round((cpu_after[part] - cpu_before[part]) / orders * 1000, 1)
                    for part in cpu_after
                }
                phone_runs = phone_buyer(url, bundle_id, phones)
            finally:
                stack.stop()
        else:
            with ServerProcess(instance) as server:
                result = run(server.url, bundle_id, finance, orders, buyers)
                phone_runs = phone_buyer(server.url, bundle_id, phones)
    rate = len(result["totals"]) / result["elapsed"]
    print(
        f"certificate purchases, {buyers} buyers at once, {orders} orders of 1 t: "
        f"{rate:.1f} orders/s"
    )
    if "cpu_ms" in result:
        cpu = result["cpu_ms"]
        print(f"CPU per order: app {cpu['app']} ms (3 requests), nginx {cpu['nginx']} ms")
    print(f"\n{'step':<18} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in [*result["steps"].items(), ("order → PNG", result["totals"])]:
        print(
            f"{name:<18} {statistics.median(values) * 1000:>8.1f} "
            f"{percentile(values, 95) * 1000:>8.1f}"
        )
    figures = {
        "orders_per_s": round(rate, 1),
        "order_p50_ms": round(statistics.median(result["totals"]) * 1000, 1),
        "order_p95_ms": round(percentile(result["totals"], 95) * 1000, 1),
    }
    for name, values in result["steps"].items():
        key = name.replace(" + ", "_").replace(" ", "_").lower()
        figures[f"{key}_p50_ms"] = round(statistics.median(values) * 1000, 1)
        figures[f"{key}_p95_ms"] = round(percentile(values, 95) * 1000, 1)
    totals = [r["total"] for r in phone_runs]
    print(f"\nphone buyer, one after another ({len(totals)}), local test provider:")
    print(f"{'step':<32} {'p50 ms':>8} {'max ms':>8}")
    for name in ("reserve", "pay", "total"):
        values = [r[name] for r in phone_runs]
        label = {
            "reserve": "bundle page + buy",
            "pay": "pay + cashier + order page",
            "total": "order → certificate (wall)",
        }[name]
        print(f"{label:<32} {statistics.median(values) * 1000:>8.1f} {max(values) * 1000:>8.1f}")
    figures["phone_order_to_certificate_p50_ms"] = round(statistics.median(totals) * 1000, 1)
    figures["phone_order_to_certificate_max_ms"] = round(max(totals) * 1000, 1)
    if "cpu_ms" in result:
        figures["app_cpu_ms_per_order"] = result["cpu_ms"]["app"]
    figures |= {"orders": orders, "buyers": buyers, "quick": args.quick, "workers": args.workers}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
