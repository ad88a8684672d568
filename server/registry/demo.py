"""Registry history for the demo county: verified periods, tonnes issued into a bundle on
sale, an individual's certificate and an enterprise lot partly retired. Idempotent: it does
nothing once the county has a bundle."""

import hashlib

from sqlite_utils import Database

from server.carbon import records
from server.carbon.method import load_method
from server.carbon.records import OPEN_FLAGS_OF_CALCULATION
from server.db import first
from server.registry import baseline, bundles, issuance, orders, verification

COUNTY = "360423"
PERIOD = ("2024-10-01", "2025-12-31")
ISSUED_VILLAGES = 4  # each verification renders a PDF report (about a second)


def demo_seed(kind: str, row: dict) -> str:
    """The demo's sample seeds (32 hex digits like a drawn one): fixed, so every build
    issues the same tonnes."""
    name = f"demo-{kind}-{row.get('code') or row['village_id']}"
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _verify(db: Database, calc: dict, verifier: dict, off_by_mm: int) -> dict:
    """The verifier's visit: every sampled tree re-measured as claimed, the first one
    `off_by_mm` away."""
    found = verification.assign(db, calc, verifier["id"], None, demo_seed("period", calc))
    sample = db.query(
        """SELECT vs.tree_id, m.dbh_mm, m.height_cm, t.species_id FROM verification_samples vs
           JOIN measurements m ON m.id = vs.claimed_measurement_id
           JOIN trees t ON t.id = vs.tree_id WHERE vs.verification_id = ? ORDER BY vs.tree_id""",
        [found["id"]],
    )
    for index, tree in enumerate(sample):
        verification.remeasure(
            db,
            found,
            {
                "client_id": f"demo-remeasure-{found['id']:04d}-{index:04d}",
                "tree_id": tree["tree_id"],
                "dbh_cm": (tree["dbh_mm"] + (off_by_mm if index == 0 else 0)) / 10,
                "height_m": tree["height_cm"] / 100,
                "species_id": tree["species_id"],
                "measured_at": "2025-11-12T10:00:00+08:00",
            },
            verifier["id"],
        )
    return verification.decide(db, found, "演示：县林业工作站抽样复测。", verifier["display_name"])


def _check_baselines(db: Database, village: dict, verifier: dict) -> dict:
    """The verifier's visit after the registration census: every sampled tree found as it
    was registered, one of them 4 mm thicker (what the check's upper bound then deducts)."""
    check = baseline.assign(db, village, verifier["id"], None, demo_seed("baseline", village))
    for index, tree in enumerate(baseline.blind_trees(db, check["id"])):
        registered = baseline.claimed(db, check["id"], tree["tree_id"])
        baseline.remeasure(
            db,
            check,
            {
                "client_id": f"demo-baseline-{check['id']:04d}-{index:04d}",
                "tree_id": tree["tree_id"],
                "dbh_cm": (registered["dbh_mm"] + (4 if index == 0 else 0)) / 10,
                "height_m": max(registered["height_cm"] or 130, 130) / 100,
                "species_id": registered["species_id"],
                "measured_at": "2024-11-20T10:00:00+08:00",
            },
            verifier["id"],
        )
    return baseline.decide(db, check, "演示：登记普查后抽样复测基线。")


def add_registry_history(db: Database) -> None:
    """Verify and issue the demo villages' 2025 growth, open a bundle, record two sales."""
    county = first(db, "SELECT * FROM counties WHERE code = ?", [COUNTY])
    if county is None or first(db, "SELECT 1 FROM bundles WHERE county_id = ?", [county["id"]]):
        return
    verifier = first(db, "SELECT * FROM users WHERE role = 'verifier' ORDER BY id")
    enterprise = first(db, "SELECT * FROM users WHERE role = 'enterprise' ORDER BY id")
    bundle = bundles.create_bundle(
        db,
        COUNTY,
        {
            "name": "武宁县八村四旁树碳汇包",
            "description": "武宁县宋溪、泉口等乡镇农户房前屋后、村旁、路旁、水旁树木 2025 年的"
            "新增生长，经县林业工作站抽样复测核查后签发。",
            "vintage_from": 2024,
            "vintage_to": 2025,
            "methods": [load_method().version],
            "min_households": 50,
            "max_household_share_pct": 10,
        },
        None,
    )
    villages = list(
        db.query("SELECT * FROM villages WHERE county_id = ? ORDER BY code", [county["id"]])
    )
    # The 2024–2025 survey arrives in the database today: the county has checked its dates.
    admin = first(db, "SELECT id FROM users WHERE role = 'admin' ORDER BY id")
    for late in db.query("SELECT id FROM flags WHERE code = 'late_reading' AND decision IS NULL"):
        records.review_flag(db, late["id"], "accepted", "演示：历史测量，日期已核实", admin["id"])
    issued = assigned = 0
    for village in villages:
        calc_id = records.calculate_credit(db, village, *PERIOD)
        calc = db["credit_calculations"].get(calc_id)
        if calc["tonnes"] == 0 or db.execute(OPEN_FLAGS_OF_CALCULATION, [calc_id]).fetchone()[0]:
            continue  # red-code records wait for review; nothing whole to issue
        if issued < ISSUED_VILLAGES:  # the first with one tree out of tolerance: partial
            _check_baselines(db, village, verifier)
            decided = _verify(db, calc, verifier, 25 if issued == 0 else 0)
            issuance.issue(db, decided, bundles.get_bundle(db, bundle["id"]), None)
            issued += 1
        elif not assigned:  # samples waiting on the verifier's phone
            verification.assign(db, calc, verifier["id"], None, demo_seed("period", calc))
            baseline.assign(db, village, verifier["id"], None, demo_seed("baseline", village))
            assigned += 1
    try:
        bundles.publish(db, bundles.get_bundle(db, bundle["id"]))
    except Exception:  # noqa: BLE001 - too few households to sell: the demo still works
        return
    sold = [
        (
            {
                "request_id": "demo-individual-0001",
                "bundle_id": bundle["id"],
                "tonnes": 1,
                "beneficiary": "李小明一家",
                "reason": "抵消一年的通勤排放",
            },
            None,
            "DEMO-ICBC-0001",
        ),
        (
            {"request_id": "demo-enterprise-0001", "bundle_id": bundle["id"], "tonnes": 3},
            enterprise,
            "DEMO-BOC-0001",
        ),
    ]
    for data, user, reference in sold:
        try:
            order, _ = orders.reserve(db, data, user)
        except Exception:  # noqa: BLE001 - a small demo bundle may not hold them
            return
        orders.confirm_payment(db, order, "bank", reference, "system")
        if user is not None:
            orders.retire_held(
                db,
                order,
                {
                    "request_id": "demo-retire-0001",
                    "tonnes": 2,
                    "beneficiary": "某化工有限公司",
                    "reason": "（2025）赣0423刑初12号 生态环境损害赔偿",
                },
            )
