"""Plausibility checks ("red code"): reasons a measurement must be reviewed before issuance.

Growth is judged against the tree's anchor (the end of its last issued period, or its
registration), so many small steps cannot add up unseen; shrinking against the reading
before. Each check returns flags `{"code": ..., "reason": ...}`; the reason is Chinese and
shown to people as is. Thresholds are in server/carbon/rules.py.
"""

import math
from datetime import datetime
from typing import Any

from server.carbon import rules

# Flags that inform and never hold a record for review.
INFORMATION_ONLY = {"generic_route", "projection", "outside_fitted_range", "reading_in_issued"}


def _flag(code: str, reason: str) -> dict[str, str]:
    return {"code": code, "reason": reason}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def years_between(earlier: str, later: str) -> float:
    start = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
    end = datetime.fromisoformat(later.replace("Z", "+00:00"))
    return (end - start).total_seconds() / (365.25 * 86400)


def dbh_noise_cm(dbh_cm: float) -> float:
    return rules.DBH_NOISE_CM + rules.DBH_NOISE_SHARE * dbh_cm


def height_noise_m(height_m: float) -> float:
    return max(rules.HEIGHT_NOISE_M, rules.HEIGHT_NOISE_SHARE * height_m)


def allowed_dbh_growth_cm(species: dict[str, Any], dbh_cm: float, years: float) -> float:
    """The most a tree of this DBH may plausibly add over `years` (plus tape noise)."""
    group = rules.growth_group(species["id"], species.get("group", "broadleaf"))
    relative = rules.RELATIVE_DBH_GROWTH_PER_YEAR[group]
    per_year = max(dbh_cm * relative, rules.SMALL_TREE_DBH_CM_PER_YEAR)
    per_year = min(per_year, species["growth_ceiling"]["dbh_cm_per_year"])
    return per_year * max(years, 0) + dbh_noise_cm(dbh_cm)


def growth_flags(
    species: dict[str, Any],
    anchor: dict[str, Any],
    current: dict[str, Any],
    anchor_co2e_g: int,
    current_co2e_g: int,
    previous: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Growth since the anchor (relative to size, height too, CO2e ceiling); shrinking since
    the reading before."""
    flags = []
    name = species["name_zh"]
    years = years_between(anchor["client_time"], current["client_time"])
    d0, d2 = anchor["dbh_cm"], current["dbh_cm"]
    allowed = allowed_dbh_growth_cm(species, d0, years)
    if d2 - d0 > allowed:
        flags.append(
            _flag(
                "growth_above_ceiling",
                f"胸径自 {anchor['client_time'][:10]} 的 {d0:g} 厘米长到 {d2:g} 厘米，"
                f"{years * 12:.1f} 个月内增加 {d2 - d0:.1f} 厘米，超过{name}此径级的合理上限 "
                f"{allowed:.1f} 厘米",
            )
        )
    h0, h2 = anchor.get("height_m"), current.get("height_m")
    if h0 is not None and h2 is not None:
        group = rules.growth_group(species["id"], species.get("group", "broadleaf"))
        allowed_h = rules.HEIGHT_M_PER_YEAR[group] * max(years, 0) + height_noise_m(h0)
        if h2 - h0 > allowed_h:
            flags.append(
                _flag(
                    "height_jump",
                    f"树高自 {h0:g} 米增至 {h2:g} 米（{years * 12:.1f} 个月），"
                    f"超过合理上限 {allowed_h:.1f} 米",
                )
            )
    per_year = (current_co2e_g - anchor_co2e_g) / max(years, 1 / 12)
    ceiling = species["growth_ceiling"]["co2e_kg_per_year"]
    if per_year > ceiling * 1000:
        flags.append(
            _flag(
                "growth_above_ceiling",
                f"每年增加 {per_year / 1000:.1f} 千克二氧化碳当量，超过一株{name}的上限 "
                f"{ceiling} 千克",
            )
        )
    before = previous or anchor
    d1 = before["dbh_cm"]
    if d2 < d1 - dbh_noise_cm(d1):
        flags.append(
            _flag(
                "dbh_shrinking",
                f"胸径从 {d1:g} 厘米降到 {d2:g} 厘米（超过 {dbh_noise_cm(d1):.1f} 厘米的测量误差）",
            )
        )
    h1 = before.get("height_m")
    if h1 is not None and h2 is not None and h2 < h1 - height_noise_m(h1):
        flags.append(_flag("height_shrinking", f"树高从 {h1:g} 米降到 {h2:g} 米：断梢还是测错？"))
    return flags


def size_flags(
    species: dict[str, Any], current: dict[str, Any], planting_year: int | None
) -> list[dict[str, str]]:
    """Sizes outside the species' DBH–height envelope (e.g. a girth typed as a DBH), too large
    for the tree's age, or outside the range its model was fitted on."""
    flags = []
    dbh, height = current["dbh_cm"], current.get("height_m")
    group = rules.growth_group(species["id"], species.get("group", "broadleaf"))
    if height is not None:
        slenderness = height / (dbh / 100)
        if slenderness < rules.MIN_SLENDERNESS[group]:
            flags.append(
                _flag(
                    "size_envelope",
                    f"胸径 {dbh:g} 厘米配树高 {height:g} 米过粗（高径比 {slenderness:.0f}，"
                    f"{species['name_zh']}一般不低于 {rules.MIN_SLENDERNESS[group]}）："
                    "是否把胸围当成了胸径？",
                )
            )
        elif slenderness > rules.MAX_SLENDERNESS:
            flags.append(
                _flag(
                    "size_envelope",
                    f"胸径 {dbh:g} 厘米配树高 {height:g} 米过细（高径比 {slenderness:.0f}）",
                )
            )
    if planting_year:
        age = int(current["client_time"][:4]) - planting_year + 1
        most = species["growth_ceiling"]["dbh_cm_per_year"] * max(age, 1) + rules.DBH_NOISE_CM
        if dbh > most:
            flags.append(
                _flag(
                    "too_large_for_age",
                    f"{planting_year} 年种植的树约 {age} 年生，胸径 {dbh:g} 厘米超过 {most:g} 厘米",
                )
            )
    return flags


def fitted_range(species: dict[str, Any], key: str) -> tuple[float, float]:
    """The range the species' model was fitted on (its screening limits when none is given)."""
    fitted = (species.get("fitted_range") or {}).get(key)
    if fitted:
        return float(fitted[0]), float(fitted[1])
    limits = species.get("limits", {}).get(key)
    return (float(limits[0]), float(limits[1])) if limits else (0.0, math.inf)


def _radius(a: dict[str, Any], b: dict[str, Any], bounds: tuple[float, float]) -> float:
    spread = (a.get("gps_accuracy_m") or rules.ASSUMED_GPS_ACCURACY_M) + (
        b.get("gps_accuracy_m") or rules.ASSUMED_GPS_ACCURACY_M
    )
    return min(max(spread, bounds[0]), bounds[1])


def same_size(dbh_cm: float, other_cm: float | None) -> bool:
    """Two readings of one tree: DBH within 1 cm or 10 %, whichever is larger."""
    return other_cm is None or abs(dbh_cm - other_cm) <= max(1.0, 0.1 * dbh_cm)


def duplicate_flags(current: dict[str, Any], neighbours: list[dict[str, Any]]) -> list[dict]:
    """The same tree twice: another tree of the village, any household or species, of the
    same size and closer than the two readings' combined GPS accuracy."""
    if current.get("latitude") is None or current.get("longitude") is None:
        return []
    for other in neighbours:
        if not same_size(current["dbh_cm"], other.get("dbh_cm")):
            continue
        same_species = other["species_id"] == current["species_id"]
        radius = _radius(
            current,
            other,
            rules.DUPLICATE_RADIUS_M if same_species else rules.OTHER_SPECIES_RADIUS_M,
        )
        gap = distance_m(
            current["latitude"], current["longitude"], other["latitude"], other["longitude"]
        )
        if gap <= radius:
            whose = "本户" if other["household_id"] == current["household_id"] else "另一户"
            return [
                _flag(
                    "possible_duplicate",
                    f"{whose}的{other['species_name']}（树 {other['tree_id'][:8]}）相距 "
                    f"{gap:.1f} 米，在定位精度 {radius:.0f} 米以内：是否同一棵树登记了两次？",
                )
            ]
    return []


def location_flags(current: dict[str, Any], village: dict[str, Any]) -> list[dict[str, str]]:
    """GPS missing, or far from the village centre."""
    if current.get("latitude") is None or current.get("longitude") is None:
        return [_flag("gps_missing", "没有定位：无法查重，也无法核对位置")]
    if village.get("latitude") is None:
        return []
    gap = distance_m(
        current["latitude"], current["longitude"], village["latitude"], village["longitude"]
    )
    if gap > rules.VILLAGE_RADIUS_M:
        return [
            _flag(
                "gps_outside_village",
                f"定位距{village['name']}中心 {gap / 1000:.1f} 公里"
                f"（上限 {rules.VILLAGE_RADIUS_M / 1000:g} 公里）",
            )
        ]
    return []


def record_flags(
    current: dict[str, Any], server_time: str, clock_offset_s: float | None = None
) -> list[dict[str, str]]:
    """Missing photo; a device clock more than 5 minutes off; a reading received late."""
    flags = []
    if not current.get("photo_sha256"):
        flags.append(_flag("photo_missing", "没有拍树的照片"))
    ahead_s = years_between(server_time, current["client_time"]) * 365.25 * 86400
    offset = clock_offset_s if clock_offset_s is not None else (ahead_s if ahead_s > 0 else 0)
    if abs(offset) > rules.CLOCK_SKEW_S:
        flags.append(_flag("clock_skew", f"手机时钟与服务器相差 {offset / 60:+.0f} 分钟"))
    age_days = -ahead_s / 86400
    if age_days > rules.MAX_READING_AGE_DAYS:
        flags.append(
            _flag(
                "late_reading",
                f"测量日期 {current['client_time'][:10]} 比收到时早 {age_days:.0f} 天"
                f"（超过 {rules.MAX_READING_AGE_DAYS} 天）：核实后才能计入",
            )
        )
    return flags


def photo_flags(reused: list[dict[str, Any]], similar: list[dict[str, Any]]) -> list[dict]:
    """A photo already used for another tree, byte for byte or re-encoded."""
    flags = []
    if reused:
        flags.append(
            _flag("photo_reused", f"这张照片已用于另一棵树（树 {reused[0]['tree_id'][:8]}）")
        )
    if similar:
        flags.append(
            _flag(
                "photo_reused",
                f"这张照片与另一棵树（树 {similar[0]['tree_id'][:8]}）的照片几乎相同",
            )
        )
    return flags
