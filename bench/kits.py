"""Benchmark: importing a 100,000-household roster (XLSX) and building a 1,000-household kit.

Each measurement runs in a fresh process, so its peak memory (max RSS) is its own.
Prints a table, then one JSON line. `--quick` runs a smaller version in seconds.

    .venv/bin/python bench/kits.py [--quick]
"""

import argparse
import json
import multiprocessing
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNTY = "360423"


def _people(count: int, villages: int) -> list[dict]:
    from village_kits.personal_data import id_check_character, luhn_check_digit

    rows = []
    for n in range(count):
        first17 = (
            f"{COUNTY}{1900 + n // 1000 % 100:04d}{n // 100 % 12 + 1:02d}"
            f"{n % 28 + 1:02d}{n % 1000:03d}"
        )
        bank = f"62{n:016d}"
        rows.append(
            {
                "village_code": f"{COUNTY}1000{n % villages + 1:02d}",
                "head_name": f"测{n}",
                "phone": f"17{n:09d}",
                "id_number": first17 + id_check_character(first17),
                "bank_account": bank + luhn_check_digit(bank),
            }
        )
    return rows


def _prepare(instance: Path, villages: int):
    from server import create_app, users
    from server import villages as village_service
    from server.db import get_db

    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        village_service.create_county(db, COUNTY, "武宁县")
        for v in range(1, villages + 1):
            village_service.create_village(db, f"{COUNTY}1000{v:02d}", f"基准村{v}")
        users.create_user(
            db,
            username="admin",
            display_name="admin",
            role="admin",
            password=secrets.token_urlsafe(16),
        )
    return app


def _measure_import(instance: str, roster: str, queue) -> None:
    from server import create_app, rosters, villages
    from server.db import get_db

    app = create_app({"INSTANCE_PATH": instance})
    with app.app_context():
        data = Path(roster).read_bytes()
        started = time.perf_counter()
        report = rosters.import_roster(
            get_db(), data, "roster.xlsx", villages.get_village(f"{COUNTY}100001"), None
        )
        elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"seconds": elapsed, "peak_mb": peak_mb, "created": report["created"]})


def _measure_kit(instance: str, village_code: str, queue) -> None:
    from server import create_app, kits, villages
    from server.db import get_db

    app = create_app({"INSTANCE_PATH": instance})
    with app.app_context():
        village = villages.get_village(village_code)
        started = time.perf_counter()
        pdf = kits.make_kit(get_db(), village, tags=40, user_id=1)
        elapsed = time.perf_counter() - started
    queue.put(
        {
            "seconds": elapsed,
            "pages": pdf.count(b"/Type /Page") - 1,
            "bytes": len(pdf),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _in_child(target, *args) -> dict:
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 households, 100-plate kit")
    args = parser.parse_args()
    households, plates, villages = (5_000, 100, 2) if args.quick else (100_000, 1_000, 20)
    from village_kits.roster import roster_xlsx

    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        _prepare(instance, villages)
        roster = Path(folder) / "roster.xlsx"
        started = time.perf_counter()
        roster.write_bytes(roster_xlsx(_people(households, villages)))
        made = time.perf_counter() - started
        size = f"{roster.stat().st_size / 1e6:.1f} MB XLSX"
        imported = _in_child(_measure_import, str(instance), str(roster))
        kit_village = _prepare_kit_village(instance, plates)
        kit = _in_child(_measure_kit, str(instance), kit_village)
    rows = [
        ("roster file", f"{households:,} households, {size}", f"{made:.1f} s to write"),
        (
            "import",
            f"{imported['created']:,} created",
            f"{imported['seconds']:.1f} s, peak {imported['peak_mb']:.0f} MB",
        ),
        (
            "kit",
            f"{plates:,} plates + 40 tags, {kit['bytes'] / 1e6:.1f} MB PDF",
            f"{kit['seconds']:.1f} s, peak {kit['peak_mb']:.0f} MB",
        ),
    ]
    print(f"{'what':<12} {'size':<42} result")
    for row in rows:
        print(f"{row[0]:<12} {row[1]:<42} {row[2]}")
    suffix = "" if not args.quick else "_quick"
    print(
        json.dumps(
            {
                f"import_100k_s{suffix}": round(imported["seconds"], 2),
                f"import_100k_peak_mb{suffix}": round(imported["peak_mb"]),
                f"kit_1000_s{suffix}": round(kit["seconds"], 2),
                "households": households,
                "plates": plates,
            }
        )
    )


def _prepare_kit_village(instance: Path, plates: int) -> str:
    """A village with exactly `plates` households, made through the same roster import."""
    from server import create_app, rosters, villages
    from server.db import get_db
    from village_kits.roster import roster_xlsx

    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        code = f"{COUNTY}200001"
        village = villages.create_village(db, code, "基准工具包村")
        rows = [{"head_name": f"户{n}", "phone": f"13{n:09d}"} for n in range(plates)]
        rosters.import_roster(db, roster_xlsx(rows), "kit.xlsx", village, None)
    return code


if __name__ == "__main__":
    main()
