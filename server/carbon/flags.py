"""The one writer of plausibility flags: open flags hold a record for review; information
flags are stored already settled, so reviewers see them and nothing waits on them."""

from typing import Any

from sqlite_utils import Database

from server.carbon.plausibility import INFORMATION_ONLY
from server.clock import now_iso
from server.db import insert

SETTLED_NOTE = "仅提示，不需复核"


def write_flags(db: Database, measurement: dict[str, Any], flags: list[dict[str, str]]) -> None:
    """Store a measurement's flags (inside the caller's transaction)."""
    now = now_iso()
    for flag in flags:
        settled = flag["code"] in INFORMATION_ONLY
        insert(
            db,
            "flags",
            {
                "measurement_id": measurement["id"],
                "tree_id": measurement["tree_id"],
                "village_id": measurement["village_id"],
                "code": flag["code"],
                "reason": flag["reason"],
                "created_at": now,
                "decision": "accepted" if settled else None,
                "reviewed_at": now if settled else None,
                "review_note": SETTLED_NOTE if settled else None,
            },
        )


def blocking(flags: list[dict[str, str]]) -> list[dict[str, str]]:
    """The flags that hold a record for review."""
    return [f for f in flags if f["code"] not in INFORMATION_ONLY]
