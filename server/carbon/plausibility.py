"""Plausibility checks ("red code"): reasons a measurement must be reviewed before issuance.

Each check returns flags `{"code": ..., "reason": ...}`; the reason is shown to people as is.
"""

import math
from datetime import datetime
from typing import Any

DBH_TOLERANCE_CM = 0.5  # the verifier's tolerance: ±0.5 cm or ±3 %, whichever is larger
DBH_TOLERANCE_SHARE = 0.03
DUPLICATE_DISTANCE_M = 5.0
VILLAGE_RADIUS_M = 3000.0
CLOCK_SKEW_S = 300


def _flag(code: str, reason: str) -> dict[str, str]:
    return {"code": code, "reason": reason}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def _years(earlier: str, later: str) -> float:
    start = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
    end = datetime.fromisoformat(later.replace("Z", "+00:00"))
    return (end - start).total_seconds() / (365.25 * 86400)


def growth_flags(
    species: dict[str, Any],
    previous: dict[str, Any],
    current: dict[str, Any],
    previous_co2e_g: int,
    current_co2e_g: int,
) -> list[dict[str, str]]:
    """Compare a re-measurement with the one before: shrinking DBH, growth above the ceiling."""
    flags = []
    years = _years(previous["client_time"], current["client_time"])
    d1, d2 = previous["dbh_cm"], current["dbh_cm"]
    tolerance = max(DBH_TOLERANCE_CM, DBH_TOLERANCE_SHARE * d1)
    if d2 < d1 - tolerance:
        flags.append(
            _flag(
                "dbh_shrinking",
                f"DBH fell from {d1:g} to {d2:g} cm (more than the {tolerance:.1f} cm "
                "measurement tolerance)",
            )
        )
    ceiling = species["growth_ceiling"]
    # The ceiling is already a generous upper bound: the measurement tolerance only stands in
    # for it over intervals too short for the ceiling to exceed measurement noise.
    allowed_dbh = max(ceiling["dbh_cm_per_year"] * max(years, 0), tolerance)
    if d2 - d1 > allowed_dbh:
        flags.append(
            _flag(
                "growth_above_ceiling",
                f"DBH grew {d2 - d1:.1f} cm in {years:.2f} years; {species['name_zh']} "
                f"grows at most {ceiling['dbh_cm_per_year']} cm a year",
            )
        )
    per_year = (current_co2e_g - previous_co2e_g) / max(years, 1 / 12)
    if per_year > ceiling["co2e_kg_per_year"] * 1000:
        flags.append(
            _flag(
                "growth_above_ceiling",
                f"{per_year / 1000:.1f} kg CO2e a year is above the "
                f"{ceiling['co2e_kg_per_year']} kg ceiling for one "
                f"{species['name_zh']}",
            )
        )
    return flags


def duplicate_flags(current: dict[str, Any], neighbours: list[dict[str, Any]]) -> list[dict]:
    """The same tree twice: another tree of the household and species within 5 m."""
    if current.get("latitude") is None or current.get("longitude") is None:
        return []
    for other in neighbours:
        if other.get("latitude") is None or other.get("longitude") is None:
            continue
        gap = distance_m(
            current["latitude"], current["longitude"], other["latitude"], other["longitude"]
        )
        if gap < DUPLICATE_DISTANCE_M:
            return [
                _flag(
                    "possible_duplicate",
                    f"another {other['species_name']} of this household stands {gap:.1f} m "
                    f"away (tree {other['tree_id'][:8]}): the same tree twice?",
                )
            ]
    return []


def location_flags(current: dict[str, Any], village: dict[str, Any]) -> list[dict[str, str]]:
    """GPS far from the village centre."""
    if current.get("latitude") is None or village.get("latitude") is None:
        return []
    gap = distance_m(
        current["latitude"], current["longitude"], village["latitude"], village["longitude"]
    )
    if gap > VILLAGE_RADIUS_M:
        return [
            _flag(
                "gps_outside_village",
                f"recorded {gap / 1000:.1f} km from the centre of {village['name']} "
                f"(limit {VILLAGE_RADIUS_M / 1000:g} km)",
            )
        ]
    return []


def record_flags(
    current: dict[str, Any], server_time: str, clock_offset_s: float | None = None
) -> list[dict[str, str]]:
    """Missing photo; a device clock more than 5 minutes off."""
    flags = []
    if not current.get("photo_sha256"):
        flags.append(_flag("photo_missing", "no photo of the tree was taken"))
    ahead_s = _years(server_time, current["client_time"]) * 365.25 * 86400
    offset = clock_offset_s if clock_offset_s is not None else (ahead_s if ahead_s > 0 else 0)
    if abs(offset) > CLOCK_SKEW_S:
        flags.append(
            _flag(
                "clock_skew", f"the phone's clock was {offset / 60:+.0f} minutes off the server's"
            )
        )
    return flags
