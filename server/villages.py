"""Counties and their villages, each known by its administrative code."""

from typing import Any

from flask import Blueprint, jsonify
from sqlite_utils import Database

from server import audit
from server.access import PUBLIC, allow
from server.clock import now_iso
from server.db import first, get_db, transaction
from server.errors import ApiError
from server.validation import json_body


def get_county(code: str) -> dict[str, Any] | None:
    return first(get_db(), "SELECT * FROM counties WHERE code = ?", [code])


def get_village(code: str) -> dict[str, Any] | None:
    return first(get_db(), "SELECT * FROM villages WHERE code = ?", [code])


def get_village_by_id(village_id: int) -> dict[str, Any] | None:
    return first(get_db(), "SELECT * FROM villages WHERE id = ?", [village_id])


def user_can_see(user: dict[str, Any], device: dict[str, Any] | None, village: dict) -> bool:
    """Whether a user's scope covers a village (admin and finance: every village)."""
    role = user["role"]
    if role in ("admin", "finance"):
        return True
    if role in ("bureau", "verifier"):
        return user["county_id"] == village["county_id"]
    if role == "measurer":
        return device is not None and user["village_id"] == village["id"] == device["village_id"]
    return False


def create_county(db: Database, code: str, name: str) -> dict[str, Any]:
    if first(db, "SELECT 1 FROM counties WHERE code = ?", [code]):
        raise ApiError(409, "conflict", f"County {code} exists already.")
    with transaction(db):
        db["counties"].insert({"code": code, "name": name, "created_at": now_iso()})
        audit.record(db, "county.created", f"county:{code}", {"name": name})
    return first(db, "SELECT * FROM counties WHERE code = ?", [code])


def create_village(
    db: Database,
    code: str,
    name: str,
    township: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
) -> dict[str, Any]:
    """A village under the county its 12-digit code starts with."""
    county = first(db, "SELECT * FROM counties WHERE code = ?", [code[:6]])
    if county is None:
        raise ApiError(422, "validation_failed", f"No county {code[:6]} for village {code}.")
    if first(db, "SELECT 1 FROM villages WHERE code = ?", [code]):
        raise ApiError(409, "conflict", f"Village {code} exists already.")
    with transaction(db):
        db["villages"].insert(
            {
                "county_id": county["id"],
                "code": code,
                "name": name,
                "township": township,
                "latitude": latitude,
                "longitude": longitude,
                "created_at": now_iso(),
            }
        )
        audit.record(db, "village.created", f"village:{code}", {"name": name})
    return first(db, "SELECT * FROM villages WHERE code = ?", [code])


def public_village(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": row["code"],
        "name": row["name"],
        "township": row["township"],
        "county_code": row["county_code"],
        "county_name": row["county_name"],
        "households": row["households"],
        "trees": row["trees"],
    }


VILLAGE_SUMMARY_SQL = """
SELECT v.*, c.code AS county_code, c.name AS county_name,
       (SELECT count(*) FROM households h WHERE h.village_id = v.id) AS households,
       (SELECT count(*) FROM trees t JOIN households h ON h.id = t.household_id
         WHERE h.village_id = v.id) AS trees
FROM villages v JOIN counties c ON c.id = v.county_id
"""


def list_villages() -> list[dict[str, Any]]:
    rows = get_db().query(VILLAGE_SUMMARY_SQL + " ORDER BY v.code")
    return [public_village(row) for row in rows]


NEW_COUNTY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "name"],
    "properties": {
        "code": {"type": "string", "pattern": "^[0-9]{6}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
    },
    "example": {"code": "330327", "name": "苍南县"},
}

NEW_VILLAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "name"],
    "properties": {
        "code": {"type": "string", "pattern": "^[0-9]{12}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "township": {"type": "string", "maxLength": 100},
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
    },
    "example": {"code": "360423101299", "name": "新村", "township": "宋溪镇"},
}

bp = Blueprint("villages", __name__, url_prefix="/api/v1")


@bp.get("/villages")
@allow(PUBLIC)
def villages():
    """Every village with its code, county and counts (public)."""
    return jsonify(villages=list_villages())


@bp.post("/counties")
@allow("admin", body=NEW_COUNTY)
def add_county():
    """Create a county."""
    data = json_body(NEW_COUNTY)
    county = create_county(get_db(), data["code"], data["name"])
    return jsonify(county={"code": county["code"], "name": county["name"]}), 201


@bp.post("/villages")
@allow("admin", body=NEW_VILLAGE)
def add_village():
    """Create a village in an existing county."""
    data = json_body(NEW_VILLAGE)
    village = create_village(get_db(), **data)
    return jsonify(village={"code": village["code"], "name": village["name"]}), 201
