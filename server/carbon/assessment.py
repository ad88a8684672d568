"""Each new measurement: its stock under the current parameter set, stored with it, and the
plausibility flags it raises against the tree's anchor, its neighbours and its evidence."""

import json
import math
from typing import Any

from sqlite_utils import Database

from server import events
from server.carbon import evidence, plausibility, rules, tree_anchors
from server.carbon.estimate import EstimateError, estimate_tree, to_grams
from server.carbon.flags import blocking, write_flags
from server.carbon.method import Method, canonical_json, load_method
from server.clock import now_iso
from server.db import first, insert
from sync.engine import memo, remembered


def register_method(db: Database, method: Method) -> None:
    """Keep the parameter set in the database, so stored figures name what made them."""
    kept = memo(db)  # a row found present stays for the rest of a push
    if ("method", method.version) in kept:
        return
    if first(db, "SELECT 1 FROM methods WHERE version = ?", [method.version]) is not None:
        kept[("method", method.version)] = True
    else:
        db["methods"].insert(
            {
                "version": method.version,
                "sha256": method.sha256,
                "document": canonical_json(method.document).decode(),
                "registered_at": now_iso(),
            }
        )


def _measurement(db: Database, measurement_id: str) -> dict[str, Any]:
    return first(
        db,
        """SELECT m.*, t.species_id, t.household_id, t.planting_year, h.village_id
           FROM measurements m JOIN trees t ON t.id = m.tree_id
           JOIN households h ON h.id = t.household_id WHERE m.id = ?""",
        [measurement_id],
    )


def stock_g(method: Method, species_id: str, sizes: dict[str, Any]) -> int:
    """A reading's stock in grams CO2e under `method` (EstimateError when it cannot be)."""
    return estimate_tree(
        species_id,
        sizes["dbh_cm"] if not sizes.get("stems_cm") else None,
        sizes["height_m"],
        stems_cm=sizes.get("stems_cm"),
        method=method,
    ).co2e_g


def _store_estimate(db: Database, row: dict, method: Method, species: dict) -> dict | None:
    record = {"measurement_id": row["id"], "method_version": method.version}
    record["estimated_at"] = now_iso()
    if species["route"] == "excluded":
        reason = json.dumps({"reason": species["excluded_reason"]}, ensure_ascii=False)
        zero = dict.fromkeys(("agb_g", "bgb_g", "carbon_g", "co2e_g", "uncertainty_pct"), 0)
        insert(db, "measurement_estimates", record | {"route": "excluded", "inputs": reason} | zero)
        return None
    sizes = tree_anchors.sizes(row)
    estimate = estimate_tree(
        row["species_id"],
        sizes["dbh_cm"] if not sizes["stems_cm"] else None,
        sizes["height_m"],
        stems_cm=sizes["stems_cm"],
        method=method,
    )
    record |= {
        "route": estimate.route,
        "inputs": json.dumps(estimate.inputs),
        "agb_g": to_grams(estimate.agb_kg),
        "bgb_g": to_grams(estimate.bgb_kg),
        "carbon_g": to_grams(estimate.carbon_kg),
        "co2e_g": estimate.co2e_g,
        "uncertainty_pct": estimate.uncertainty_pct,
    }
    insert(db, "measurement_estimates", record)
    return record | {"flags": estimate.flags}


def _previous(db: Database, row: dict[str, Any]) -> dict[str, Any] | None:
    return first(
        db,
        f"""SELECT m.* FROM measurements m WHERE m.tree_id = ? AND m.client_time < ?
            AND m.id != ? AND {tree_anchors.NOT_REJECTED}
            ORDER BY m.client_time DESC LIMIT 1""",  # noqa: S608 - constant SQL
        [row["tree_id"], row["client_time"], row["id"]],
    )


def _neighbours(db: Database, row: dict[str, Any], radius_m: float) -> list[dict[str, Any]]:
    """Other trees of the village with a reading inside a box of `radius_m` around this one,
    each distinct reading once, in village order (household, tree, reading)."""
    lat, lon = row["latitude"], row["longitude"]
    dlat = radius_m / 111_000
    dlon = dlat / max(0.05, abs(math.cos(math.radians(lat))))
    cursor = db.execute(  # the box by its index (`+`: not every reading of the village)
        """SELECT m.tree_id, t.species_id, t.household_id, s.name_zh AS species_name,
                  m.latitude, m.longitude, m.gps_accuracy_m, m.dbh_mm / 10.0 AS dbh_cm
           FROM measurements m JOIN trees t ON t.id = m.tree_id
           JOIN households h ON h.id = t.household_id
           JOIN species s ON s.id = t.species_id
           WHERE m.latitude BETWEEN ? AND ? AND m.longitude BETWEEN ? AND ?
             AND +h.village_id = ? AND m.tree_id != ? AND t.status = 'alive'
           ORDER BY h.seq, t.rowid, m.client_time, m.rowid""",
        [lat - dlat, lat + dlat, lon - dlon, lon + dlon, row["village_id"], row["tree_id"]],
    )
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, found, strict=True)) for found in dict.fromkeys(cursor)]


def _growth_flags(
    db, method, species, row, current: dict, current_g: int, registration: dict | None
) -> list[dict]:
    anchor = tree_anchors.tree_anchor(db, row["tree_id"], registration=registration)
    if anchor is None or anchor["id"] == row["id"]:
        return []
    flags = []
    if anchor["issued"] and row["client_time"] < tree_anchors.day_after(anchor["period_end"]):
        flags.append(
            {
                "code": "reading_in_issued",
                "reason": f"测量日期落在已签发的计入期内（至 {anchor['period_end']}）：不计入",
            }
        )
        return flags
    if row["client_time"] <= anchor["client_time"]:
        return flags  # older than the anchor: never used for crediting
    start = tree_anchors.sizes(anchor)
    try:
        start_g = stock_g(method, row["species_id"], start)
    except EstimateError:
        return flags
    previous = _previous(db, row)
    return plausibility.growth_flags(
        species,
        start,
        current,
        start_g,
        current_g,
        tree_anchors.sizes(previous) if previous else None,
    )


def assess_measurement(
    db: Database,
    measurement_id: str,
    clock_offset_s: float | None = None,
    row: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Estimate a new measurement's stock and raise its flags (inside the caller's
    transaction); returns the flags that hold it for review. `row`: the measurement as
    stored with its tree's species_id, household_id, planting_year and village_id, when the
    caller knows it exactly (else it is read)."""
    method = load_method()
    row = row if row is not None else _measurement(db, measurement_id)
    species = method.species[row["species_id"]]
    current = tree_anchors.sizes(row) | {"species_id": row["species_id"]}
    current["household_id"] = row["household_id"]
    flags: list[dict[str, str]] = []
    register_method(db, method)
    try:
        stored = _store_estimate(db, row, method, species)
    except EstimateError as error:
        stored = None
        flags.append({"code": "estimate_failed", "reason": f"无法估算碳储量：{error}"})
    if stored:
        flags += stored["flags"]
        flags += plausibility.size_flags(species, current, row["planting_year"])
        registration = tree_anchors.registration_reading(db, row["tree_id"], exclude=row["id"])
        flags += _growth_flags(db, method, species, row, current, stored["co2e_g"], registration)
        first_reading = registration is None
        if first_reading and row["latitude"] is not None:
            radius = max(rules.DUPLICATE_RADIUS_M[1], rules.OTHER_SPECIES_RADIUS_M[1])
            flags += plausibility.duplicate_flags(current, _neighbours(db, row, radius))
    village = remembered(  # nothing in a push changes a village
        db,
        ("village", row["village_id"]),
        lambda: first(db, "SELECT * FROM villages WHERE id = ?", [row["village_id"]]),
    )
    flags += plausibility.location_flags(current, village)
    flags += plausibility.record_flags(current, row["server_time"], clock_offset_s)
    if row["photo_sha256"]:
        flags += plausibility.photo_flags(
            evidence.reused_on(db, row["photo_sha256"], row["tree_id"]),
            evidence.similar_on(db, row["photo_sha256"], row["tree_id"], row["village_id"]),
        )
    flags = [f for f in flags if f["code"] not in ("generic_route", "projection")]
    write_flags(db, row, flags)
    held = blocking(flags)
    events.publish(db, "record.flagged", measurement_id=row["id"], flags=held)
    return held
