"""Registry test data built through the real services: grown villages, verified periods,
bundles with issued tonnes, orders. Shared by the registry tests and the route matrix."""

import re
import uuid
from typing import Any

from sqlite_utils import Database

from server import households, trees, villages
from server.carbon import records
from server.carbon.method import load_method
from server.db import first
from server.registry import baseline, bundles, issuance, orders, verification

FIR = "cunninghamia_lanceolata"


def grow_village(
    db: Database,
    code: str,
    *,
    households_count: int = 1,
    trees_per_household: int = 8,
    start_mm: int = 30,
    end_mm: int = 360,
    admin_id: int | None = None,
) -> dict[str, Any]:
    """A village of the seeded county whose big firs grew over 2026, credited and reviewed.

    Returns {"village", "calculation_id", "trees", "households"}."""
    village = villages.get_village(code) or villages.create_village(
        db, code, f"村{code[-3:]}", "宋溪镇", 29.2 + int(code[-2:]) / 100, 115.0
    )
    photo = tree_photo(code)
    store_blob(db, photo)
    made_trees, made_households = [], []
    for n in range(households_count):
        household = households.create_household(db, village, head_name=f"农户{n}")
        made_households.append(household["code"])
        for _ in range(trees_per_household):
            tree_id = str(uuid.uuid4())
            trees.register_tree(db, household, tree_id=tree_id, species_id=FIR, position="road")
            for when, dbh, height in (
                ("2026-01-10T08:00:00Z", start_mm, 200),
                ("2026-09-10T08:00:00Z", end_mm, 2500),
            ):
                trees.record_measurement(
                    db,
                    tree_id,
                    measurement_id=str(uuid.uuid4()),
                    stems_mm=[dbh],
                    height_cm=height,
                    client_time=when,
                    latitude=village["latitude"],
                    longitude=village["longitude"],
                    photo_sha256=photo,
                )
            made_trees.append(tree_id)
    calculation_id = records.calculate_credit(db, village, "2026-01-01", "2026-12-31")
    for flag in db.query(
        "SELECT id FROM flags WHERE village_id = ? AND decision IS NULL", [village["id"]]
    ):
        records.review_flag(db, flag["id"], "accepted", "screened", admin_id or 1)
    return {
        "village": village,
        "calculation_id": calculation_id,
        "trees": made_trees,
        "households": made_households,
    }


def store_blob(db: Database, sha256: str) -> None:
    """Record a photo file as a whole, hash-checked upload (what the blob store does)."""
    from server.photos import blob_paths

    size = blob_paths(sha256)[0].stat().st_size
    db.execute(
        "INSERT OR IGNORE INTO blobs (sha256, size, received_at) VALUES (?, ?, ?)",
        [sha256, size, "2026-09-10T08:00:00.000Z"],
    )


def tree_photo(seed: str) -> str:
    """A small JPEG with camera metadata, stored as a whole uploaded blob; its sha256."""
    import hashlib
    import io

    from PIL import Image

    from server.photos import blob_paths

    image = Image.new("RGB", (320, 240), (40, 100 + int(seed[-2:]) % 100, 60))
    exif = Image.Exif()
    exif[0x010F] = "VillagePhone"  # Make
    exif[0x0132] = "2026:09:10 08:00:00"  # DateTime
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    data = out.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    final = blob_paths(sha256)[0]
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_bytes(data)
    return sha256


def verify(
    db: Database,
    calculation_id: int,
    verifier_id: int,
    *,
    failing: int = 0,
    decide: bool = True,
    check_baseline: bool = True,
) -> dict[str, Any]:
    """Assign, re-measure every sampled tree (the first `failing` of them found at their
    start size: their claimed growth is false), decide. The village's registration readings
    are checked first when no check covers them (`pass_baseline`)."""
    calc = first(db, "SELECT * FROM credit_calculations WHERE id = ?", [calculation_id])
    if check_baseline and baseline.unchecked_trees(db, calc["village_id"]):
        pass_baseline(db, calc["village_id"], verifier_id)
    found = verification.assign(db, calc, verifier_id, None)
    claimed = db.query(
        """SELECT vs.tree_id, e.dbh_mm, e.height_cm, s.dbh_mm AS start_mm,
                  s.height_cm AS start_cm FROM verification_samples vs
           JOIN measurements e ON e.id = vs.claimed_measurement_id
           JOIN credit_tree_lines l
             ON l.calculation_id = ? AND l.tree_id = vs.tree_id
           JOIN measurements s ON s.id = l.start_measurement_id
           WHERE vs.verification_id = ? ORDER BY vs.tree_id""",
        [calculation_id, found["id"]],
    )
    for index, row in enumerate(claimed):
        false = index < failing
        verification.remeasure(
            db,
            found,
            {
                "client_id": str(uuid.uuid4()),
                "tree_id": row["tree_id"],
                "dbh_cm": (row["start_mm"] if false else row["dbh_mm"]) / 10,
                "height_m": max(row["start_cm"] if false else row["height_cm"], 130) / 100,
                "species_id": FIR,
                "measured_at": "2026-10-01T09:00:00+08:00",
            },
            verifier_id,
        )
    if decide:
        found = verification.decide(db, found, None, "核查员")
    return found


def pass_baseline(
    db: Database,
    village_id: int,
    verifier_id: int,
    *,
    grown_pcts: tuple[int, ...] = (0,),
    decide: bool = True,
) -> dict[str, Any]:
    """A baseline check of the village's unchecked registration readings, decided: the
    sampled trees re-measured larger in DBH than registered by `grown_pcts` % in turn
    (0: exactly as registered)."""
    village = first(db, "SELECT * FROM villages WHERE id = ?", [village_id])
    check = baseline.assign(db, village, verifier_id, None)
    for index, tree in enumerate(baseline.blind_trees(db, check["id"])):
        grown_pct = grown_pcts[index % len(grown_pcts)]
        reading = baseline.claimed(db, check["id"], tree["tree_id"])
        baseline.remeasure(
            db,
            check,
            {
                "client_id": str(uuid.uuid4()),
                "tree_id": tree["tree_id"],
                "dbh_cm": reading["dbh_mm"] * (100 + grown_pct) / 1000,
                "height_m": max(reading["height_cm"] or 130, 130) / 100,
                "species_id": reading["species_id"],
                "measured_at": "2026-02-01T09:00:00+08:00",
            },
            verifier_id,
        )
    return baseline.decide(db, check, None) if decide else check


def bundle(db: Database, admin_id: int | None = None, **rules: Any) -> dict[str, Any]:
    """A draft bundle of county 360423 admitting vintage 2026 and the current method."""
    base = {
        "name": "武宁县四旁树碳汇包",
        "vintage_from": 2025,
        "vintage_to": 2026,
        "methods": [load_method().version],
    }
    return bundles.create_bundle(db, "360423", base | rules, admin_id)


def stocked_bundle(
    db: Database, verifier_id: int, village_code: str = "360423101202", **grow: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A published bundle holding one grown, verified, issued village.

    Returns (bundle, issuance, grown village)."""
    grown = grow_village(db, village_code, **grow)
    found = verify(db, grown["calculation_id"], verifier_id)
    made = bundle(db)
    issued = issuance.issue(db, found, made, None)
    published = bundles.publish(db, bundles.get_bundle(db, made["id"]))
    return published, issued, grown


def order(
    db: Database, bundle_id: int, tonnes: int = 1, user: dict | None = None, **extra: Any
) -> dict[str, Any]:
    data = {"request_id": uuid.uuid4().hex, "bundle_id": bundle_id, "tonnes": tonnes} | extra
    made, _ = orders.reserve(db, data, user)
    return made


# --- samples for the route matrix (tests/test_access.py) ------------------------------------

UNCHECKED_VILLAGE = "360423101205"  # registered trees no baseline check covers
REGISTRY_BLUEPRINTS = ("registry", "market", "registry_pages")


def build_sample(app) -> dict[str, Any]:
    """Every state a registry route needs, built on the seeded world (`app.world`): the
    `registry_sample` snapshot of tests/conftest.py, built once per session."""
    from server.db import get_db
    from server.registry import orders as order_service
    from server.trees import set_status

    world = app.world
    verifier = world.user_ids["verifier"]
    db = get_db()
    village_a = villages.get_village(world.village_a)
    for flag in db.query("SELECT id FROM flags WHERE decision IS NULL"):
        records.review_flag(db, flag["id"], "accepted", "screened", world.user_ids["admin"])

    def calc(start: str) -> int:
        return records.calculate_credit(db, village_a, start, "2026-12-31")

    open_calc = first(db, "SELECT * FROM credit_calculations WHERE id = ?", [calc("2026-01-01")])
    b_open = baseline.assign(db, village_a, verifier, None)  # holds the seeded trees
    v_open = verification.assign(db, open_calc, verifier, None)
    v_ready = verify(db, calc("2025-01-01"), verifier, decide=False)
    # A small village whose photos are stored: its verified period can be issued.
    small = grow_village(db, "360423101203", households_count=1, trees_per_household=2)
    v_decided = verify(db, small["calculation_id"], verifier)
    stocked, issued, grown = stocked_bundle(
        db, verifier, trees_per_household=24, start_mm=100, end_mm=400
    )
    set_status(db, grown["trees"][0], "felled", "2026-12-01T00:00:00.000Z")
    enterprise = db["users"].get(world.user_ids["enterprise"])
    reserved = order(db, stocked["id"])
    webhook_order = order(db, stocked["id"])
    held = order(db, stocked["id"], user=enterprise)
    order_service.confirm_payment(db, held, "bank", "HELD-0001", "user:1")
    sold = order(db, stocked["id"], beneficiary="李小明")
    order_service.confirm_payment(db, sold, "bank", "SOLD-0001", "user:1")
    cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
    ready = grow_village(db, "360423101204", households_count=1, trees_per_household=2)
    b_ready = pass_baseline(db, ready["village"]["id"], verifier, decide=False)
    grow_village(db, UNCHECKED_VILLAGE, households_count=1, trees_per_household=1)
    photo = tree_photo(world.village_b)  # the grown village's photo, written again
    return {
        "<int:verification_id>": v_open["id"],
        "<int:check_id>": b_open["id"],
        "b_ready": b_ready["id"],
        "v_ready": v_ready["id"],
        "v_decided": v_decided["id"],
        "<int:bundle_id>": stocked["id"],
        "<int:issuance_id>": issued["id"],
        "felled_tree": grown["trees"][0],
        "<order_id>": reserved["public_id"],
        "webhook_order": webhook_order,
        "held_order": held["public_id"],
        "<cert_id>": cert_id,
        "<sha256>": photo,
    }


def route_sample(app, world, endpoint: str, rule: str, caller: str | None, restore):
    """(url, request kwargs) for a registry route, or None for other routes; `restore()` puts
    the registry sample in place of the test's database and returns its ids."""
    import json
    import time

    from server.access import rule_for
    from server.registry import payments
    from tests.pay_world import PAY_BLUEPRINTS

    if endpoint.split(".")[0] not in (*REGISTRY_BLUEPRINTS, *PAY_BLUEPRINTS):
        return None
    with app.app_context():
        access = rule_for(endpoint)
    if not (access.public or caller in access.roles):  # refused before the view runs
        return re.sub(r"<int:\w+>", "1", re.sub(r"<\w+>", "sample", rule)), {}
    ids = restore()
    values = {key: str(value) for key, value in ids.items() if key.startswith("<")}
    if endpoint == "registry.assign":
        values["<int:calculation_id>"] = str(world.calculation_id)
    elif endpoint == "registry.decide":
        values["<int:verification_id>"] = str(ids["v_ready"])
    elif endpoint in ("registry.report", "registry.issue"):
        values["<int:verification_id>"] = str(ids["v_decided"])
    elif endpoint == "registry.decide_baseline_check":
        values["<int:check_id>"] = str(ids["b_ready"])
    elif endpoint == "market.webhook":
        values["<provider>"] = "testpay"
    elif endpoint == "market.retire":
        values["<order_id>"] = ids["held_order"]
    if "baseline" in endpoint:
        values["<village_code>"] = UNCHECKED_VILLAGE
    url = rule
    for placeholder, value in values.items():
        url = url.replace(placeholder, value)
    from tests.pay_world import pay_route_sample

    paying = pay_route_sample(app, world, endpoint, url, ids["<order_id>"])
    if paying is not None:
        return paying
    bodies: dict[str, Any] = {
        "registry.assign": {"json": {"verifier_id": world.user_ids["verifier"]}},
        "registry.issue": {"json": {"bundle_id": ids["<int:bundle_id>"]}},
        "registry.reverse": {"json": {"tree_ids": [ids["felled_tree"]]}},
        "market.reserve": {
            "json": {
                "request_id": uuid.uuid4().hex,
                "bundle_id": ids["<int:bundle_id>"],
                "tonnes": 1,
            }
        },
        "registry_pages.buy": {"data": {"request_id": uuid.uuid4().hex, "tonnes": "1"}},
    }
    if endpoint == "market.webhook":
        app.config.update(TESTPAY_ENABLED=True, TESTPAY_SECRET="route-matrix-secret")
        order_row = ids["webhook_order"]
        raw = json.dumps(
            {
                "event_id": uuid.uuid4().hex,
                "type": "payment.succeeded",
                "order_id": order_row["public_id"],
                "amount_fen": order_row["amount_fen"],
                "reference": "TP-" + uuid.uuid4().hex[:12],
            }
        ).encode()
        signature = payments.sign(b"route-matrix-secret", raw, int(time.time()))
        bodies[endpoint] = {
            "data": raw,
            "content_type": "application/json",
            "headers": {payments.SIGNATURE_HEADER: signature},
        }
    if endpoint in bodies:
        return url, bodies[endpoint]
    if access.body is not None:
        return url, {"json": dict(access.body["example"])}
    return url, {}
