"""What the new parameter set changes in the demo county: stock and creditable growth per species
under sipang-2026.1 and sipang-2026.2 (or any two sets), and the largest per-species difference.

    .venv/bin/python bench/species_sets.py [--old sipang-2026.1] [--new sipang-2026.2]

Builds the demo county (`sipang demo`: 武宁县, 8 villages, two yearly readings per tree) in a
temporary instance, then recomputes every tree from its stored readings under both sets:
- stock: the latest reading's CO2e;
- growth: latest minus first reading;
- creditable growth, as each set's crediting does it. 2026.1: growth less max(0, U − 10) % per
  tree with the set's fixed U (10 % fir, 30 % generic). 2026.2: growth with every stem's DBH held
  inside the equation's fitted range (server/carbon/records.py), less max(0, U90 − 10) % with
  U90 the computed 90 % half-width of each village's summed net change
  (server/carbon/uncertainty.py). Buffer and whole-tonne rounding are left out (the same for
  both sets). A second 2026.2 figure ("shared σ") treats one species' equation error as shared
  by all its trees in a village (`combined_u90_pct(..., correlated_model=True)`): the
  conservative bound, where the deduction does not shrink with the number of trees.
Prints a table and one JSON line; figures, never pass/fail.
"""

import argparse
import json
import math
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CO2_PER_C = 44 / 12


def readings(db):
    """{tree id: (species, village, [sizes of each reading, oldest first])}."""
    rows = db.query(
        """SELECT t.id AS tree_id, t.species_id, h.village_id, m.dbh_mm, m.stems_mm, m.height_cm
           FROM measurements m JOIN trees t ON t.id = m.tree_id
           JOIN households h ON h.id = t.household_id ORDER BY m.client_time, m.rowid"""
    )
    trees = {}
    for row in rows:
        stems = json.loads(row["stems_mm"]) if row["stems_mm"] else None
        sizes = {
            "dbh_cm": row["dbh_mm"] / 10,
            "height_m": None if row["height_cm"] is None else row["height_cm"] / 100,
            "stems_cm": [d / 10 for d in stems] if stems and len(stems) > 1 else None,
        }
        entry = trees.setdefault(row["tree_id"], (row["species_id"], row["village_id"], []))
        entry[2].append(sizes)
    return trees


def stock_g(method, species_id, sizes):
    from server.carbon.estimate import estimate_tree

    stems = sizes["stems_cm"]
    return estimate_tree(
        species_id,
        None if stems else sizes["dbh_cm"],
        sizes["height_m"],
        stems_cm=stems,
        method=method,
    ).co2e_g


def held(method, species_id, sizes):
    """The sizes with each stem's DBH held inside the species' fitted range (2026.2 on)."""
    fitted = method.species[species_id].get("fitted_range")
    if not fitted:
        return sizes
    low, high = fitted["dbh_cm"]
    stems = [min(max(d, low), high) for d in (sizes["stems_cm"] or [sizes["dbh_cm"]])]
    if sizes["stems_cm"]:
        return sizes | {"stems_cm": stems}
    return sizes | {"dbh_cm": stems[0]}


def deduction_g(growth_g, u90_pct, threshold_pct):
    share = max(u90_pct - threshold_pct, 0)
    return 0 if growth_g <= 0 or share == 0 else math.ceil(growth_g * share / 100)


def evaluate(method, trees):
    """Per species: trees, stock, growth and creditable growth (grams CO2e)."""
    from server.carbon import uncertainty

    threshold = method.crediting["uncertainty_threshold_pct"]
    computed = any("model_error" in s for s in method.species.values())
    result = defaultdict(
        lambda: {"trees": 0, "stock_g": 0, "growth_g": 0, "creditable_g": 0, "shared_g": 0}
    )
    lines, parts, by_species = [], defaultdict(list), defaultdict(list)
    for species_id, village, sizes in trees.values():
        species = method.species[species_id]
        if species["route"] == "excluded":
            continue
        first, last = sizes[0], sizes[-1]
        line = result[species_id]
        line["trees"] += 1
        line["stock_g"] += stock_g(method, species_id, last)
        line["growth_g"] += stock_g(method, species_id, last) - stock_g(method, species_id, first)
        if computed:
            start, end = held(method, species_id, first), held(method, species_id, last)
            growth = stock_g(method, species_id, end) - stock_g(method, species_id, start)
            part = uncertainty.period_parts(method, species_id, first, last)
            parts[village].append(part)
            by_species[village, species_id].append(part)
            lines.append((species_id, village, growth))
        else:
            growth = stock_g(method, species_id, last) - stock_g(method, species_id, first)
            line["creditable_g"] += growth - deduction_g(
                growth, species["uncertainty_pct"], threshold
            )
            line["shared_g"] = line["creditable_g"]
    village_u90 = {v: uncertainty.combined_u90_pct(p) for v, p in parts.items()}
    shared_u90 = {
        key: uncertainty.combined_u90_pct(p, correlated_model=True) for key, p in by_species.items()
    }
    for species_id, village, growth in lines:
        result[species_id]["creditable_g"] += growth - deduction_g(
            growth, village_u90[village], threshold
        )
        result[species_id]["shared_g"] += growth - deduction_g(
            growth, shared_u90[village, species_id], threshold
        )
    return dict(result), village_u90


def tonnes(grams):
    return grams / 1e6


def change_pct(old, new):
    return None if old == 0 else 100 * (new - old) / old


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="sipang-2026.1")
    parser.add_argument("--new", default=None, help="default: the current parameter set")
    args = parser.parse_args()

    from server import create_app, demo
    from server.carbon.method import load_method
    from server.db import get_db

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"INSTANCE_PATH": tmp})
        with app.app_context():
            db = get_db()
            demo.create_demo(db)
            trees = readings(db)
    old_method = load_method(args.old)
    new_method = load_method(args.new) if args.new else load_method()
    old, _ = evaluate(old_method, trees)
    new, village_u90 = evaluate(new_method, trees)

    print(f"Demo county: {len(trees)} trees; {old_method.version} → {new_method.version}")
    print(f"2026.2 village U90 of the summed net change: {sorted(village_u90.values())} %")
    header = (
        f"{'species':30} {'trees':>5} {'stock old t':>11} {'stock new t':>11} {'Δ%':>7} "
        f"{'growth old t':>12} {'growth new t':>12} {'credit old t':>12} "
        f"{'credit new t':>12} {'Δ%':>7} {'shared σ t':>10}"
    )
    print(header)
    rows = {}
    for sid in sorted(set(old) | set(new)):
        empty = {"trees": 0, "stock_g": 0, "growth_g": 0, "creditable_g": 0, "shared_g": 0}
        o, n = old.get(sid, empty), new.get(sid, empty)
        stock_change = change_pct(o["stock_g"], n["stock_g"])
        credit_change = change_pct(o["creditable_g"], n["creditable_g"])
        rows[sid] = {
            "trees": max(o["trees"], n["trees"]),
            "stock_old_t": round(tonnes(o["stock_g"]), 3),
            "stock_new_t": round(tonnes(n["stock_g"]), 3),
            "stock_change_pct": None if stock_change is None else round(stock_change, 1),
            "growth_old_t": round(tonnes(o["growth_g"]), 3),
            "growth_new_t": round(tonnes(n["growth_g"]), 3),
            "creditable_old_t": round(tonnes(o["creditable_g"]), 3),
            "creditable_new_t": round(tonnes(n["creditable_g"]), 3),
            "creditable_change_pct": None if credit_change is None else round(credit_change, 1),
            "creditable_shared_sigma_t": round(tonnes(n["shared_g"]), 3),
        }
        r = rows[sid]

        def pct(value):
            return "—" if value is None else f"{value:+.1f}"

        print(
            f"{sid:30} {r['trees']:>5} {r['stock_old_t']:>11.3f} {r['stock_new_t']:>11.3f} "
            f"{pct(r['stock_change_pct']):>7} {r['growth_old_t']:>12.3f} "
            f"{r['growth_new_t']:>12.3f} {r['creditable_old_t']:>12.3f} "
            f"{r['creditable_new_t']:>12.3f} {pct(r['creditable_change_pct']):>7} "
            f"{r['creditable_shared_sigma_t']:>10.3f}"
        )
    keys = ("stock", "growth", "creditable")
    totals = {
        f"{key}_{side}_t": round(sum(r[f"{key}_{side}_t"] for r in rows.values()), 3)
        for key in keys
        for side in ("old", "new")
    }
    totals["creditable_shared_sigma_t"] = round(
        sum(r["creditable_shared_sigma_t"] for r in rows.values()), 3
    )
    totals["stock_change_pct"] = round(change_pct(totals["stock_old_t"], totals["stock_new_t"]), 1)
    totals["creditable_change_pct"] = round(
        change_pct(totals["creditable_old_t"], totals["creditable_new_t"]), 1
    )
    print(
        f"{'total':30} {len(trees):>5} {totals['stock_old_t']:>11.3f} "
        f"{totals['stock_new_t']:>11.3f} {totals['stock_change_pct']:>+7.1f} "
        f"{totals['growth_old_t']:>12.3f} {totals['growth_new_t']:>12.3f} "
        f"{totals['creditable_old_t']:>12.3f} {totals['creditable_new_t']:>12.3f} "
        f"{totals['creditable_change_pct']:>+7.1f} {totals['creditable_shared_sigma_t']:>10.3f}"
    )
    compared = {s: r for s, r in rows.items() if r["stock_change_pct"] is not None}
    largest_stock = max(compared, key=lambda s: abs(compared[s]["stock_change_pct"]))
    credited = {s: r for s, r in rows.items() if r["creditable_change_pct"] is not None}
    largest_credit = max(credited, key=lambda s: abs(credited[s]["creditable_change_pct"]))
    print(
        f"Largest per-species difference: stock {largest_stock} "
        f"{compared[largest_stock]['stock_change_pct']:+.1f} %, creditable growth "
        f"{largest_credit} {credited[largest_credit]['creditable_change_pct']:+.1f} %"
    )
    print(
        json.dumps(
            {
                "old": old_method.version,
                "new": new_method.version,
                "trees": len(trees),
                "totals": totals,
                "largest_stock_difference": largest_stock,
                "largest_creditable_difference": largest_credit,
                "species": rows,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
