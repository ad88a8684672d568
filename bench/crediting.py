"""How much of a county's measured growth the crediting rules credit, withhold and hold for
review, by reason: the demo county by default (`sipang demo` into a temporary folder), or any
instance (`--instance DIR`, also an instance made by an older Sipang: it reads the database
only). Prints a table and, last, one JSON line.

    python bench/crediting.py [--instance DIR] [--quick]

Growth is each credited tree line's end stock minus its start stock as the parameter set the
calculation names computes it, before any range cap ("measured"); credited is what the lines
credit after caps, losses and the uncertainty deduction; flagged is the measured growth of
lines whose readings raised a flag that holds issuance until a person reviews it (open or
reviewed since; not the late dates of a history imported in one go, nor information-only
flags). Issued tonnes are what the verified periods issued, after the verification's
scale and the baseline checks' deduction (growth taken off for baselines that may have been
recorded too small).
"""

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.carbon.estimate import EstimateError, estimate_tree  # noqa: E402
from server.carbon.method import Method, load_method  # noqa: E402


def _method(db: sqlite3.Connection, version: str) -> Method:
    row = db.execute("SELECT sha256, document FROM methods WHERE version = ?", [version]).fetchone()
    try:
        return load_method(version)
    except FileNotFoundError:
        return Method(version, row[0], json.loads(row[1]))


def _stock(method: Method, species: str, row: sqlite3.Row) -> int | None:
    stems = json.loads(row["stems_mm"]) if row["stems_mm"] else None
    height = None if row["height_cm"] is None else row["height_cm"] / 100
    try:
        return estimate_tree(
            species,
            None if stems else row["dbh_mm"] / 10,
            height,
            stems_cm=[d / 10 for d in stems] if stems else None,
            method=method,
        ).co2e_g
    except (EstimateError, KeyError):
        return None


def measure(instance: Path) -> dict:
    db = sqlite3.connect(instance / "sipang.db")
    db.row_factory = sqlite3.Row
    columns = {r[1] for r in db.execute("PRAGMA table_info(credit_tree_lines)")}
    new_rules = "credited_g" in columns
    figures = {"measured_g": 0, "credited_g": 0, "capped_g": 0, "deduction_g": 0, "held_g": 0}
    held_by_code: dict[str, int] = {}
    lines = 0
    for calc in db.execute("SELECT * FROM credit_calculations WHERE status != 'void'"):
        method = _method(db, calc["method_version"])
        figures["deduction_g"] += calc["deduction_g"]
        for line in db.execute(
            """SELECT l.*, t.species_id FROM credit_tree_lines l JOIN trees t ON t.id = l.tree_id
               WHERE l.calculation_id = ?""",
            [calc["id"]],
        ):
            lines += 1
            end = db.execute(
                "SELECT * FROM measurements WHERE id = ?", [line["end_measurement_id"]]
            ).fetchone()
            start = db.execute(
                "SELECT * FROM measurements WHERE id = ?", [line["start_measurement_id"]]
            ).fetchone()
            if end is None:  # a tree that died in the period (older rules)
                measured = -line["stock_start_g"]
            else:
                a, b = (
                    _stock(method, line["species_id"], start),
                    _stock(method, line["species_id"], end),
                )
                measured = 0 if a is None or b is None else b - a
            counted = (line["stock_end_g"] or 0) - line["stock_start_g"]
            figures["measured_g"] += measured
            figures["capped_g"] += measured - counted
            figures["credited_g"] += line["credited_g"] if new_rules else counted
            codes = [
                r[0]
                for r in db.execute(
                    """SELECT DISTINCT code FROM flags WHERE measurement_id IN (?, ?)
                       AND (decision IS NULL OR reviewed_by IS NOT NULL)
                       AND code NOT IN ('late_reading', 'outside_fitted_range',
                                        'reading_in_issued')""",
                    [line["start_measurement_id"], line["end_measurement_id"]],
                )
            ]
            if codes:
                figures["held_g"] += measured
                for code in codes:
                    held_by_code[code] = held_by_code.get(code, 0) + measured
    if not new_rules:  # the older rules deducted per calculation, not per line
        figures["credited_g"] -= figures["deduction_g"]
    buffer = db.execute(
        "SELECT coalesce(sum(buffer_tonnes), 0), coalesce(sum(tonnes), 0) FROM credit_calculations"
        " WHERE status != 'void'"
    ).fetchone()
    issuance_columns = {r[1] for r in db.execute("PRAGMA table_info(issuances)")}
    baseline_g = "baseline_deduction_g" in issuance_columns
    deducted = "coalesce(sum(baseline_deduction_g), 0)" if baseline_g else "0"
    issued = db.execute(
        f"SELECT coalesce(sum(tonnes), 0), {deducted} FROM issuances"  # noqa: S608 - constant
    ).fetchone()
    measured = figures["measured_g"] or 1
    return {
        "instance": str(instance),
        "rules": "chain of anchors (issue 13)" if new_rules else "previous rules",
        "calculations": db.execute("SELECT count(*) FROM credit_calculations").fetchone()[0],
        "tree_lines": lines,
        **figures,
        "tonnes": buffer[1],
        "buffer_tonnes": buffer[0],
        "issued_tonnes": issued[0],
        "baseline_deduction_g": issued[1],
        "credited_share": round(figures["credited_g"] / measured, 4),
        "capped_share": round(figures["capped_g"] / measured, 4),
        "deducted_share": round(figures["deduction_g"] / measured, 4),
        "held_share": round(figures["held_g"] / measured, 4),
        "held_by_code": {k: round(v / measured, 4) for k, v in sorted(held_by_code.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=Path, help="an existing instance folder")
    parser.add_argument("--quick", action="store_true", help="(the demo is the smallest run)")
    args = parser.parse_args()
    instance = args.instance
    if instance is None:
        instance = Path(tempfile.mkdtemp(prefix="sipang-crediting-"))
        sipang = Path(sys.executable).with_name("sipang")
        command = [str(sipang), "demo", "--instance", str(instance)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    result = measure(instance)
    print(f"{result['rules']}: {result['calculations']} calculations, "
          f"{result['tree_lines']} tree lines")  # fmt: skip
    print(f"{'figure':<28}{'tonnes CO2e':>14}{'share':>10}")
    for key, label in (
        ("measured_g", "measured growth"),
        ("capped_g", "outside fitted ranges"),
        ("deduction_g", "uncertainty deduction"),
        ("credited_g", "credited (before buffer)"),
        ("held_g", "flagged for review"),
    ):
        share = result[key] / (result["measured_g"] or 1)
        print(f"{label:<28}{result[key] / 1e6:>14.3f}{share:>10.1%}")
    for code, share in result["held_by_code"].items():
        print(f"  flagged: {code:<17}{'':>14}{share:>10.1%}")
    print(f"{'whole tonnes / buffer':<28}{result['tonnes']:>10} / {result['buffer_tonnes']}")
    print(
        f"{'issued tonnes':<28}{result['issued_tonnes']:>10}"
        f" (baseline checks took off {result['baseline_deduction_g'] / 1e6:.3f} t of growth)"
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
