"""Benchmark: the dashboards' aggregates on a generated county (DESIGN.md §12: ≤ 200 ms at
100k households / 1M trees).

Generates one county straight into a migrated SQLite file (bulk inserts, foreign keys off
while generating): villages of 500 households, trees, one issued period per village, a
bundle per 10 villages, paid orders over 60 days, their accruals (through the real
`accruals` table, so migration 0009's triggers keep `payout_balances`), paid T+1
transfers for most households up to three days ago, and a confirmed chain outbox row for
every accrual and transfer (the chain box reads them). Then times, warm, through the real app:
the bureau's county figures, its whole page, the 20 worst households, a village drill-down,
the public village and county pages, a household drill-down and a door-plate page.
Prints a table (p50 / p95 / max ms), then one JSON line.

    .venv/bin/python bench/dashboard.py [--quick] [--households N] [--trees N]
"""

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNTY = "360999"
PER_VILLAGE = 500
VILLAGES_PER_BUNDLE = 10
PASSWORD = "bench password 1"  # noqa: S105 - a throwaway bench user


def day_iso(days_ago: float, now: datetime) -> str:
    moment = now - timedelta(days=days_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def beijing_day(iso: str) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(hours=8)
    return moment.date().isoformat()


def generate(app, households: int, trees: int, accruals: int, seed: int = 7) -> dict:
    """The county, written with bulk inserts; returns what was made."""
    from server import users
    from server.db import get_db
    from server.households import code_secret
    from village_kits import codes

    rnd = random.Random(seed)
    now = datetime.now(UTC)
    stamp = day_iso(0, now)
    villages = max(1, households // PER_VILLAGE)
    with app.app_context():
        db = get_db()
        users_db = db
        conn: sqlite3.Connection = db.conn
        conn.execute("PRAGMA foreign_keys=off")
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO counties (code, name, created_at) VALUES (?, ?, ?)",
            [COUNTY, "基准县", stamp],
        )
        county_id = conn.execute("SELECT id FROM counties WHERE code = ?", [COUNTY]).fetchone()[0]
        conn.execute(
            "INSERT OR IGNORE INTO methods (version, sha256, document, registered_at) "
            "VALUES ('bench', ?, '{}', ?)",
            ["0" * 64, stamp],
        )
        village_rows = [
            (county_id, f"{COUNTY}{100 + v // 50:03d}{200 + v % 50:03d}", f"基准村{v}", stamp)
            for v in range(villages)
        ]
        conn.executemany(
            "INSERT INTO villages (county_id, code, name, created_at) VALUES (?, ?, ?, ?)",
            village_rows,
        )
        village_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM villages WHERE county_id = ? ORDER BY id", [county_id]
            )
        ]
        secret = code_secret(COUNTY)
        rows = []
        for v, (village_id, (_, vcode, _, _)) in enumerate(
            zip(village_ids, village_rows, strict=True)
        ):
            for seq in range(1, PER_VILLAGE + 1):
                if v * PER_VILLAGE + seq > households:
                    break
                rows.append(
                    (village_id, seq, codes.make_code(secret, vcode, seq), "v1:x", "张*", stamp)
                )
        conn.executemany(
            "INSERT INTO households (village_id, seq, code, head_name_enc, head_name_masked, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [r + (stamp,) for r in rows],
        )
        household_rows = conn.execute(
            "SELECT h.id, h.village_id FROM households h JOIN villages v ON v.id = h.village_id "
            "WHERE v.county_id = ? ORDER BY h.id",
            [county_id],
        ).fetchall()
        species = ("cunninghamia_lanceolata", "cinnamomum_camphora", "ginkgo_biloba")
        positions = ("house", "village", "road", "water")
        batch = []
        for n in range(trees):
            household_id = household_rows[n % len(household_rows)][0]
            status = "alive" if n % 50 else "dead"
            batch.append(
                (
                    f"bench-tree-{n:012d}",
                    household_id,
                    species[n % 3],
                    positions[n % 4],
                    status,
                    stamp,
                )
            )
            if len(batch) == 100_000:
                conn.executemany(
                    "INSERT INTO trees (id, household_id, species_id, position, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    batch,
                )
                batch = []
        if batch:
            conn.executemany(
                "INSERT INTO trees (id, household_id, species_id, position, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                batch,
            )
        # one issued period per village; a bundle per 10 villages
        by_village: dict[int, list[int]] = {}
        for household_id, village_id in household_rows:
            by_village.setdefault(village_id, []).append(household_id)
        bundles: dict[int, int] = {}
        tonnes_per_village = 25
        for index, village_id in enumerate(village_ids):
            number = index // VILLAGES_PER_BUNDLE + 1
            if number not in bundles:
                conn.execute(
                    """INSERT INTO bundles (county_id, seq, version, name, vintage_from,
                       vintage_to, methods, min_households, max_household_share_pct, price_fen,
                       commission_bp, individual_commission_bp, households_pct, collective_pct,
                       maintenance_pct, rules_sha256, status, published_at, created_at)
                       VALUES (?, ?, 1, ?, 2026, 2026, '["bench"]', 1, 100, 10000, 100, 50,
                               65, 20, 15, ?, 'on_sale', ?, ?)""",
                    [county_id, number, f"基准碳汇包{number}", "1" * 64, stamp, stamp],
                )
                bundles[number] = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            calc = conn.execute(
                """INSERT INTO credit_calculations (village_id, period_start, period_end,
                   method_version, buffer_pct, uncertainty_threshold_pct, gross_g, deduction_g,
                   tonnes, buffer_tonnes, open_flags, status, created_at)
                   VALUES (?, '2026-01-01', '2026-12-31', 'bench', 20, 10, 0, 0, ?, 5, 0,
                           'issued', ?)""",
                [village_id, tonnes_per_village, stamp],
            ).lastrowid
            ver = conn.execute(
                """INSERT INTO verifications (calculation_id, village_id, seed, population,
                   sample_size, verifier_id, assigned_at, status, scale_ppm, decided_at,
                   report_sha256) VALUES (?, ?, ?, 100, 30, 1, ?, 'passed', 1000000, ?, ?)""",
                [calc, village_id, "a" * 32, stamp, stamp, "2" * 64],
            ).lastrowid
            issuance = conn.execute(
                """INSERT INTO issuances (calculation_id, verification_id, bundle_id, vintage,
                   tonnes, buffer_tonnes, created_at) VALUES (?, ?, ?, 2026, ?, 5, ?)""",
                [calc, ver, bundles[number], tonnes_per_village, stamp],
            ).lastrowid
            members = by_village[village_id]
            grams = tonnes_per_village * 1_000_000
            conn.executemany(
                "INSERT INTO issuance_households (issuance_id, household_id, grams) "
                "VALUES (?, ?, ?)",
                [
                    (issuance, h, grams // len(members) + (i < grams % len(members)))
                    for i, h in enumerate(members)
                ],
            )
            series = f"SP-{COUNTY}-{number:04d}-2026"
            start = (index % VILLAGES_PER_BUNDLE) * tonnes_per_village
            conn.executemany(
                "INSERT INTO tonnes (serial, series, seq, bundle_id, vintage, issuance_id, "
                "buffer, status) VALUES (?, ?, ?, ?, 2026, ?, ?, ?)",
                [
                    (
                        f"{series}-{start + k:06d}",
                        series,
                        start + k,
                        bundles[number],
                        issuance,
                        int(k > tonnes_per_village - 5),
                        "buffer" if k > tonnes_per_village - 5 else "available",
                    )
                    for k in range(1, tonnes_per_village + 1)
                ],
            )
        # paid orders over 60 days, each accruing to households of its bundle
        bundle_households: dict[int, list[tuple[int, int]]] = {}
        for index, village_id in enumerate(village_ids):
            number = index // VILLAGES_PER_BUNDLE + 1
            bundle_households.setdefault(bundles[number], []).extend(
                (h, village_id) for h in by_village[village_id]
            )
        order_count = max(1, accruals // 500)
        made_accruals = 0
        for n in range(order_count):
            bundle_id = rnd.choice(list(bundles.values()))
            paid_at = day_iso(rnd.uniform(0, 60), now)
            order_id = conn.execute(
                """INSERT INTO orders (public_id, request_id, request_sha256, bundle_id, tonnes,
                   buyer_kind, price_fen, amount_fen, commission_bp, farmers_fen, status,
                   expires_at, paid_at, payment_method, payment_reference, confirmed_by,
                   created_at) VALUES (?, ?, '0', ?, 1, 'individual', 10000, 10000, 50, 6467,
                   'held', ?, ?, 'bank', ?, 'bench', ?)""",
                [
                    f"bench-order-{n:012d}",
                    f"bench-{n:08d}",
                    bundle_id,
                    paid_at,
                    paid_at,
                    f"BENCH-{n}",
                    paid_at,
                ],
            ).lastrowid
            free = conn.execute(
                "SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'available' LIMIT 1",
                [bundle_id],
            ).fetchone()
            if free:
                conn.execute(
                    "UPDATE tonnes SET status = 'reserved', order_id = ? WHERE serial = ?",
                    [order_id, free[0]],
                )
                conn.execute("UPDATE tonnes SET status = 'held' WHERE serial = ?", [free[0]])
            paid_on = beijing_day(paid_at)
            conn.execute(
                """INSERT INTO sale_splits (order_id, bundle_id, county_id, buyer_kind,
                   amount_fen, commission_bp, commission_fen, households_fen, collective_fen,
                   maintenance_fen, policy_sha256, paid_on, created_at)
                   VALUES (?, ?, ?, 'individual', 10000, 50, 50, 6467, 1989, 1494, ?, ?, ?)""",
                [order_id, bundle_id, county_id, "1" * 64, paid_on, paid_at],
            )
            chosen = rnd.sample(bundle_households[bundle_id], 500)
            conn.executemany(
                """INSERT INTO accruals (order_id, household_id, village_id, county_id, grams,
                   amount_fen, household_hash, accrued_on, created_at)
                   VALUES (?, ?, ?, ?, 1000, ?, ?, ?, ?)""",
                [
                    (order_id, h, v, county_id, 12 + (h % 5), "0x" + "ab" * 32, paid_on, paid_at)
                    for h, v in chosen
                ],
            )
            made_accruals += len(chosen)
        # T+1: most households paid what accrued up to three days ago, one transfer each
        cutoff = (datetime.fromisoformat(beijing_day(day_iso(0, now))) - timedelta(days=3)).date()
        batch_id = conn.execute(
            "INSERT INTO settlement_batches (settle_on, min_transfer_fen, households, "
            "total_fen, created_by, created_at) VALUES (?, 100, 0, 0, 'bench', ?)",
            [cutoff.isoformat(), stamp],
        ).lastrowid
        owed = conn.execute(
            "SELECT household_id, village_id, sum(amount_fen) FROM accruals "
            "WHERE county_id = ? AND accrued_on < ? GROUP BY household_id",
            [county_id, cutoff.isoformat()],
        ).fetchall()
        paid = [row for row in owed if rnd.random() < 0.9]
        recorded = day_iso(2.5, now)
        conn.executemany(
            """INSERT INTO settlements (batch_id, household_id, village_id, county_id,
               amount_fen, household_hash, status, transfer_reference, recorded_by,
               recorded_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'paid', ?, 'bench', ?, ?)""",
            [
                (batch_id, h, v, county_id, fen, "0x" + "ab" * 32, f"T{h}", recorded, recorded)
                for h, v, fen in paid
            ],
        )
        # the ledger side: every accrual and transfer confirmed through the chain outbox
        for kind, table in (("accrue", "accruals"), ("settle", "settlements")):
            prefix = "accrual" if kind == "accrue" else "settlement"
            conn.execute(
                f"""INSERT INTO chain_outbox (kind, chain_key, payload, state, tx_hash,
                    block_number, created_at, created_ms, confirm_ms)
                    SELECT '{kind}', '{kind}:{prefix}:' || id, '{{}}', 'confirmed',
                           '0x' || printf('%064x', id), 1 + id / 64, created_at, 0,
                           1200 + id % 900 FROM {table}"""  # noqa: S608 - names from code
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA foreign_keys=on")
        conn.execute("ANALYZE")
        bureau = users.create_user(
            users_db,
            username="bench.bureau",
            display_name="基准县农业农村局",
            role="bureau",
            password=PASSWORD,
            county_code=COUNTY,
        )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {
            "county_id": county_id,
            "villages": len(village_ids),
            "households": len(household_rows),
            "trees": trees,
            "orders": order_count,
            "accruals": made_accruals,
            "settlements": len(paid),
            "village_code": village_rows[0][1],
            "household_code": rows[0][2],
            "bureau": bureau["username"],
        }


def timed(fn, runs: int) -> list[float]:
    fn()  # warm the page cache and the statement cache
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k households, 100k trees")
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=1_000_000)
    parser.add_argument("--accruals", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if args.quick:
        args.households, args.trees, args.accruals, args.runs = 10_000, 100_000, 100_000, 5

    from server import create_app
    from server.dashboards import figures, money
    from server.db import get_db

    folder = Path(tempfile.mkdtemp(prefix="sipang-bench-dashboard-"))
    app = create_app({"INSTANCE_PATH": str(folder), "CHAIN_WORKER": False})
    started = time.perf_counter()
    made = generate(app, args.households, args.trees, args.accruals)
    generated_s = time.perf_counter() - started

    client = app.test_client()
    csrf = client.get("/api/v1/auth/csrf").json["csrf_token"]
    login = client.post(
        "/api/v1/auth/login",
        json={"username": made["bureau"], "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert login.status_code == 200, login.get_data(True)

    def get(path: str):
        def call():
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return call

    def with_db(fn):
        def call():
            with app.app_context():
                fn(get_db())

        return call

    cases = {
        "county figures (SQL)": with_db(lambda db: figures.county_summary(db, made["county_id"])),
        "money by village (SQL)": with_db(lambda db: money.by_village(db, made["county_id"])),
        "20 worst households (SQL)": with_db(
            lambda db: money.households(db, made["county_id"], limit=20)
        ),
        "GET /bureau (page)": get("/bureau"),
        "GET /bureau/live": get("/bureau/live"),
        "GET /api/v1/dashboard": get("/api/v1/dashboard"),
        "GET /bureau/villages/<v>": get(f"/bureau/villages/{made['village_code']}"),
        "GET /bureau/households/<h>": get(f"/bureau/households/{made['household_code']}"),
        "GET /v/<village> (public)": get(f"/v/{made['village_code']}"),
        "GET /c/<county> (public)": get(f"/c/{COUNTY}"),
        "GET /h/<code> (plate)": get(f"/h/{made['household_code']}"),
    }
    results = {name: timed(fn, args.runs) for name, fn in cases.items()}

    print(
        f"generated county: {made['villages']} villages, {made['households']:,} households, "
        f"{made['trees']:,} trees, {made['orders']:,} paid orders, {made['accruals']:,} "
        f"accruals, {made['settlements']:,} transfers ({generated_s:.1f} s)"
    )
    print("budget (DESIGN.md §12): dashboard aggregates ≤ 200 ms at 100k households / 1M trees")
    print(f"\n{'what':<30} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, values in results.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"{name:<30} {statistics.median(values):>8.1f} {p95:>8.1f} {max(values):>8.1f}")

    def p50(name: str) -> float:
        return round(statistics.median(results[name]), 1)

    print(
        json.dumps(
            {
                "households": made["households"],
                "trees": made["trees"],
                "accruals": made["accruals"],
                "county_figures_ms_p50": p50("county figures (SQL)"),
                "bureau_page_ms_p50": p50("GET /bureau (page)"),
                "bureau_live_ms_p50": p50("GET /bureau/live"),
                "village_drilldown_ms_p50": p50("GET /bureau/villages/<v>"),
                "household_drilldown_ms_p50": p50("GET /bureau/households/<h>"),
                "village_public_ms_p50": p50("GET /v/<village> (public)"),
                "county_public_ms_p50": p50("GET /c/<county> (public)"),
                "plate_ms_p50": p50("GET /h/<code> (plate)"),
                "budget_ms": 200,
            }
        )
    )


if __name__ == "__main__":
    main()
