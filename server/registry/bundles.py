"""Bundles (聚零为整): issued tonnes of many households pooled under rules fixed at creation.

Changing a bundle's rules makes a new version (same bundle number, version + 1); the old
version takes no new issuances but still sells the tonnes it holds, under its own rules.
The split policy (DESIGN.md §8) is stored with the rules; payouts apply it later.
"""

import hashlib
import json
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon.method import available_versions
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.photos import blob_paths
from server.registry import chain_hooks, losses, serials

RULE_FIELDS = (
    "name",
    "description",
    "vintage_from",
    "vintage_to",
    "methods",
    "min_households",
    "max_household_share_pct",
    "price_fen",
    "commission_bp",
    "individual_commission_bp",
    "households_pct",
    "collective_pct",
    "maintenance_pct",
)
DEFAULTS = {
    "description": None,
    "price_fen": 10_000,
    "commission_bp": 100,
    "individual_commission_bp": 50,
    "households_pct": 65,
    "collective_pct": 20,
    "maintenance_pct": 15,
    "min_households": 1,
    "max_household_share_pct": 100,
}


def check_rules(rules: dict[str, Any]) -> list[dict[str, str]]:
    """Problems with a bundle's rules that a schema cannot express."""
    problems = []
    if rules["vintage_to"] < rules["vintage_from"]:
        problems.append({"field": "vintage_to", "problem": "must not be before vintage_from"})
    if rules["households_pct"] + rules["collective_pct"] + rules["maintenance_pct"] != 100:
        problems.append(
            {"field": "households_pct", "problem": "the three shares must add up to 100"}
        )
    if rules["households_pct"] < 60:
        problems.append({"field": "households_pct", "problem": "households get at least 60 %"})
    unknown = sorted(set(rules["methods"]) - set(available_versions()))
    if unknown:
        problems.append({"field": "methods", "problem": f"unknown method versions {unknown}"})
    return problems


def rules_hash(county_code: str, rules: dict[str, Any]) -> str:
    document = {"county": county_code} | {key: rules[key] for key in RULE_FIELDS}
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def get_bundle(db: Database, bundle_id: int) -> dict[str, Any] | None:
    if not 0 < bundle_id < 2**63:
        return None
    return first(
        db,
        """SELECT b.*, c.code AS county_code, c.name AS county_name FROM bundles b
           JOIN counties c ON c.id = b.county_id WHERE b.id = ?""",
        [bundle_id],
    )


def _insert(db, county, rules, seq, version, previous_id, user_id) -> int:
    row = {key: rules[key] for key in RULE_FIELDS} | {
        "methods": json.dumps(sorted(rules["methods"])),
        "county_id": county["id"],
        "seq": seq,
        "version": version,
        "previous_id": previous_id,
        "rules_sha256": rules_hash(county["code"], rules),
        "created_by": user_id,
        "created_at": now_iso(),
    }
    bundle_id = db["bundles"].insert(row).last_pk
    chain_hooks.queue_split_policy(db, county["code"], seq, version, row["rules_sha256"])
    return bundle_id


def create_bundle(
    db: Database, county_code: str, rules: dict[str, Any], user_id: int | None
) -> dict[str, Any]:
    """A new bundle (version 1) with the next bundle number of its county."""
    rules = DEFAULTS | rules
    county = first(db, "SELECT * FROM counties WHERE code = ?", [county_code])
    if county is None:
        raise ApiError(422, "validation_failed", f"No county {county_code}.")
    problems = check_rules(rules)
    if problems:
        raise ApiError(422, "validation_failed", "The bundle rules do not hold.", problems)
    with transaction(db):
        seq = db.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM bundles WHERE county_id = ?", [county["id"]]
        ).fetchone()[0]
        if seq > 9999:
            raise ApiError(409, "conflict", "A county has at most 9,999 bundles.")
        bundle_id = _insert(db, county, rules, seq, 1, None, user_id)
        audit.record(
            db, "bundle.created", f"bundle:{bundle_id}", {"county": county_code, "seq": seq}
        )
    return get_bundle(db, bundle_id)


def new_version(
    db: Database, bundle: dict[str, Any], rules: dict[str, Any], user_id: int | None
) -> dict[str, Any]:
    """Changed rules: a new version of the bundle; the old one stops taking issuances."""
    if bundle["status"] == "superseded":
        raise ApiError(409, "superseded", "Change the bundle's latest version.")
    current = {key: bundle[key] for key in RULE_FIELDS} | {"methods": json.loads(bundle["methods"])}
    rules = current | rules
    problems = check_rules(rules)
    if problems:
        raise ApiError(422, "validation_failed", "The bundle rules do not hold.", problems)
    county = {"id": bundle["county_id"], "code": bundle["county_code"]}
    with transaction(db):
        bundle_id = _insert(
            db, county, rules, bundle["seq"], bundle["version"] + 1, bundle["id"], user_id
        )
        db.execute("UPDATE bundles SET status = 'superseded' WHERE id = ?", [bundle["id"]])
        if bundle["published_at"]:
            db.execute(
                "UPDATE bundles SET status = 'on_sale', published_at = ? WHERE id = ?",
                [now_iso(), bundle_id],
            )
        audit.record(
            db,
            "bundle.versioned",
            f"bundle:{bundle_id}",
            {"previous": bundle["id"], "version": bundle["version"] + 1},
        )
    return get_bundle(db, bundle_id)


def household_shares(db: Database, bundle_id: int) -> dict[int, int]:
    """Each household's grams in the bundle (what its tonnes came from)."""
    rows = db.execute(
        """SELECT h.household_id, sum(h.grams) FROM issuance_households h
           JOIN issuances i ON i.id = h.issuance_id WHERE i.bundle_id = ?
           GROUP BY h.household_id""",
        [bundle_id],
    )
    return {household: grams for household, grams in rows if grams}


def share_problem(bundle: dict[str, Any], shares: dict[int, int]) -> str | None:
    """Why the households' shares break the bundle's rules, or None."""
    if len(shares) < bundle["min_households"]:
        return f"needs at least {bundle['min_households']} households, has {len(shares)}"
    total = sum(shares.values())
    limit = bundle["max_household_share_pct"]
    if total and max(shares.values()) * 100 > total * limit:
        return f"one household would hold more than {limit} % of the bundle"
    return None


def publish(db: Database, bundle: dict[str, Any]) -> dict[str, Any]:
    """Put a bundle on sale once its households meet its rules."""
    if bundle["status"] == "on_sale":
        return bundle
    if bundle["status"] != "draft":
        raise ApiError(409, "superseded", "Only the latest version of a bundle can go on sale.")
    problem = share_problem(bundle, household_shares(db, bundle["id"]))
    if problem:
        raise ApiError(409, "rules_not_met", f"The bundle {problem}.")
    with transaction(db):
        db.execute(
            "UPDATE bundles SET status = 'on_sale', published_at = ? WHERE id = ?",
            [now_iso(), bundle["id"]],
        )
        audit.record(db, "bundle.published", f"bundle:{bundle['id']}")
    return get_bundle(db, bundle["id"])


def sellable(bundle: dict[str, Any]) -> bool:
    return bundle["published_at"] is not None


def public_view(db: Database, bundle: dict[str, Any], detail: bool = False) -> dict[str, Any]:
    """What anyone may see of a bundle: rules, split, tonnes, villages (no personal data)."""
    totals = serials.bundle_totals(db, bundle["id"])
    price = bundle["price_fen"]
    view = {
        "id": bundle["id"],
        "number": f"{bundle['county_code']}-{bundle['seq']:04d}",
        "version": bundle["version"],
        "name": bundle["name"],
        "description": bundle["description"],
        "county": {"code": bundle["county_code"], "name": bundle["county_name"]},
        "status": bundle["status"],
        "on_sale": sellable(bundle),
        "price_fen": price,
        "farmers_fen_per_tonne": farmers_fen(price, bundle, "individual"),
        "rules": {
            "vintage_from": bundle["vintage_from"],
            "vintage_to": bundle["vintage_to"],
            "methods": json.loads(bundle["methods"]),
            "min_households": bundle["min_households"],
            "max_household_share_pct": bundle["max_household_share_pct"],
            "rules_sha256": bundle["rules_sha256"],
        },
        "split": {
            key: bundle[key]
            for key in (
                "commission_bp",
                "individual_commission_bp",
                "households_pct",
                "collective_pct",
                "maintenance_pct",
            )
        },
        "tonnes": totals,
        "sold": totals["retired"] + totals["held"],
        "losses": losses.bundle_losses(db, bundle["id"]),
    }
    if detail:
        villages = list(
            db.query(
                """SELECT v.code, v.name, v.township, v.latitude, v.longitude,
                          count(DISTINCT ih.household_id) AS households,
                          sum(ih.grams) AS grams
                   FROM issuances i JOIN issuance_households ih ON ih.issuance_id = i.id
                   JOIN households h ON h.id = ih.household_id
                   JOIN villages v ON v.id = h.village_id
                   WHERE i.bundle_id = ? GROUP BY v.id ORDER BY v.code""",
                [bundle["id"]],
            )
        )
        view["villages"] = _place_on_map(villages)
        view["households"] = len(household_shares(db, bundle["id"]))
        view["photos"] = photos(db, bundle["id"])
        view["versions"] = [
            row["id"]
            for row in db.query(
                "SELECT id FROM bundles WHERE county_id = ? AND seq = ? ORDER BY version",
                [bundle["county_id"], bundle["seq"]],
            )
        ]
    return view


def _place_on_map(villages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each village's position (percent) inside the bounding box of the bundle's villages."""
    located = [v for v in villages if v["latitude"] is not None and v["longitude"] is not None]
    if located:
        lats = [v["latitude"] for v in located]
        lons = [v["longitude"] for v in located]
        lat_span = (max(lats) - min(lats)) or 1
        lon_span = (max(lons) - min(lons)) or 1
        for v in located:
            v["x_pct"] = round(15 + 70 * (v["longitude"] - min(lons)) / lon_span, 1)
            v["y_pct"] = round(90 - 65 * (v["latitude"] - min(lats)) / lat_span, 1)
    return villages


def farmers_fen(amount_fen: int, bundle: dict[str, Any], buyer_kind: str) -> int:
    """The households' share of a sale: after commission, `households_pct` (rounded down;
    payouts later split it per household by largest remainder)."""
    bp = bundle["individual_commission_bp" if buyer_kind == "individual" else "commission_bp"]
    commission = -(-amount_fen * bp // 10_000)
    return (amount_fen - commission) * bundle["households_pct"] // 100


PHOTOS_OF_BUNDLE = """
SELECT DISTINCT m.photo_sha256 FROM issuances i
JOIN credit_tree_lines l ON l.calculation_id = i.calculation_id
JOIN measurements m ON m.id = l.end_measurement_id
WHERE i.bundle_id = ? AND m.photo_sha256 IS NOT NULL"""


def photos(db: Database, bundle_id: int, limit: int = 6) -> list[str]:
    """Photos (sha256) of trees whose growth the bundle holds, those the server has whole."""
    found = []
    for (sha256,) in db.execute(PHOTOS_OF_BUNDLE + " ORDER BY m.photo_sha256", [bundle_id]):
        if blob_paths(sha256)[0].exists():
            found.append(sha256)
            if len(found) == limit:
                break
    return found


def has_photo(db: Database, bundle_id: int, sha256: str) -> bool:
    sql = PHOTOS_OF_BUNDLE + " AND m.photo_sha256 = ?"
    return db.execute(sql, [bundle_id, sha256]).fetchone() is not None


def list_public(db: Database) -> list[dict[str, Any]]:
    """Bundles that are or were on sale, newest first."""
    rows = db.query(
        """SELECT b.*, c.code AS county_code, c.name AS county_name FROM bundles b
           JOIN counties c ON c.id = b.county_id WHERE b.published_at IS NOT NULL
           ORDER BY b.id DESC"""
    )
    return [public_view(db, row) for row in rows]
