"""What every blind re-measurement shares, for a period's verification and a village's
baseline check alike: the seeded random sample, the verifier it goes to, and the checks on
one submitted re-measurement.

The sample is reproducible: `random.Random(seed).sample(sorted tree ids, size)`, with the
seed stored; anyone holding the seed and the tree list can redraw it.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from server import audit
from server.clock import now_iso, parse_client_time
from server.db import first, transaction
from server.errors import ApiError

SAMPLE_PCT, SAMPLE_MIN = 5, 30
# A re-measured size is "the same" within the tape's or clinometer's error (a verification
# widens these by half a year of the tree's own claimed growth).
DBH_TOLERANCE_CM, HEIGHT_TOLERANCE_M, HEIGHT_TOLERANCE_SHARE = 0.3, 0.5, 0.05
OUTCOMES = {"measured": "复测", "not_found": "找不到", "dead": "已死亡", "felled": "已砍伐"}


def sample_size(population: int) -> int:
    """At least 5 % of the trees and at least 30 (all of them when fewer)."""
    return min(population, max(SAMPLE_MIN, math.ceil(population * SAMPLE_PCT / 100)))


def draw_sample(tree_ids: list[str], seed: str) -> list[str]:
    """The sample a seed picks from a list of trees."""
    population = sorted(tree_ids)
    return sorted(random.Random(seed).sample(population, sample_size(len(population))))


def check_verifier(db: Database, verifier_id: int, village: dict[str, Any]) -> None:
    """Refuse anyone but an active verifier of the village's county."""
    verifier = first(db, "SELECT * FROM users WHERE id = ?", [verifier_id])
    if verifier is None or verifier["role"] != "verifier" or not verifier["active"]:
        raise ApiError(422, "validation_failed", "verifier_id must name an active verifier.")
    if verifier["county_id"] != village["county_id"]:
        raise ApiError(422, "validation_failed", "The verifier works in another county.")


def remeasured_row(db: Database, data: dict[str, Any], verifier_id: int) -> dict[str, Any]:
    """A submitted re-measurement, checked, as the columns both re-measurement tables share."""
    outcome = data.get("outcome", "measured")
    problems = _problems(db, outcome, data)
    if problems:
        raise ApiError(422, "validation_failed", "复测数据不完整或有误。", problems)
    try:
        measured_at = parse_client_time(data["measured_at"])
    except ValueError as error:
        raise ApiError(
            422,
            "validation_failed",
            "measured_at needs a date, time and time zone.",
            [{"field": "measured_at", "problem": str(error)}],
        ) from error
    measured = outcome == "measured"
    return {
        "client_id": data["client_id"],
        "tree_id": data["tree_id"],
        "outcome": outcome,
        "dbh_mm": round(data["dbh_cm"] * 10) if measured else None,
        "height_cm": round(data["height_m"] * 100) if measured else None,
        "species_id": data["species_id"] if measured else None,
        "measured_at": measured_at,
        "received_at": now_iso(),
        "verifier_id": verifier_id,
    }


def _problems(db: Database, outcome: str, data: dict[str, Any]) -> list[dict]:
    if outcome not in OUTCOMES:
        return [{"field": "outcome", "problem": f"one of {', '.join(OUTCOMES)}"}]
    sizes = ("dbh_cm", "height_m", "species_id")
    if outcome != "measured":
        given = [key for key in sizes if data.get(key) is not None]
        return [{"field": key, "problem": f"not given when the tree is {outcome}"} for key in given]
    problems = [{"field": key, "problem": "required"} for key in sizes if data.get(key) is None]
    if not problems and data["height_m"] < 1.3:
        problems.append({"field": "height_m", "problem": "DBH is taken at 1.3 m: at least 1.3"})
    species = data.get("species_id")
    if species and first(db, "SELECT 1 FROM species WHERE id = ?", [species]) is None:
        problems.append({"field": "species_id", "problem": "unknown species"})
    return problems


def receipt(row: dict[str, Any]) -> dict[str, Any]:
    """What the phone gets back: never whether the tree passed."""
    return {
        "client_id": row["client_id"],
        "tree_id": row["tree_id"],
        "received_at": row["received_at"],
    }


@dataclass(frozen=True)
class Remeasurements:
    """Where one kind of sample keeps its re-measurements, and what it says when refusing."""

    table: str  # the re-measurements' table (names from code, never from a request)
    owner: str  # its column naming the sample
    subject: str  # the audit subject's prefix
    decided: str  # the message once the sample is decided
    outside: str  # the message for a tree outside the sample
    noun: str  # what the sample is called in that error's detail


def store_remeasurement(
    db: Database,
    kind: Remeasurements,
    sample: dict[str, Any],
    data: dict[str, Any],
    verifier_id: int,
    claim: Callable[[], dict[str, Any] | None],
    mismatches: Callable[[dict[str, Any], dict[str, Any]], list[str]],
) -> tuple[dict[str, Any], bool]:
    """Store one blind re-measurement of a sampled tree (`claim()` is what it is checked
    against); the same `client_id` again returns the stored one. Returns (receipt, created)."""
    stored = first(
        db,
        f"SELECT * FROM {kind.table} WHERE client_id = ?",  # noqa: S608 - names from code
        [data["client_id"]],
    )
    if stored is not None:
        if stored[kind.owner] != sample["id"] or stored["tree_id"] != data["tree_id"]:
            raise ApiError(409, "conflict", "This client_id was used for another tree.")
        return receipt(stored), False
    if sample["status"] != "assigned":
        raise ApiError(409, "already_decided", kind.decided)
    claimed = claim()
    if claimed is None:
        raise ApiError(
            422,
            "not_in_sample",
            kind.outside,
            [{"field": "tree_id", "problem": f"not in this {kind.noun}'s sample"}],
        )
    row = remeasured_row(db, data, verifier_id) | {kind.owner: sample["id"]}
    reasons = mismatches(claimed, row)
    row |= {"within_tolerance": int(not reasons), "reason": ",".join(reasons) or None}
    with transaction(db):
        if first(
            db,
            f"SELECT 1 FROM {kind.table} WHERE {kind.owner} = ? AND tree_id = ?",  # noqa: S608
            [sample["id"], data["tree_id"]],
        ):
            raise ApiError(409, "already_remeasured", "This tree was already re-measured.")
        db[kind.table].insert(row)
        audit.record(
            db,
            f"{kind.subject}.remeasured",
            f"{kind.subject}:{sample['id']}",
            {"tree": data["tree_id"], "client_id": data["client_id"]},
        )
    return receipt(row), True
