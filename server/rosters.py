"""Roster import: a village committee's register becomes households, all rows or none.

Rows are matched to households already registered by ID number, else by household number
(户号), so importing the same roster again updates in place and never duplicates.
"""

import hashlib
from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlite_utils import Database

from server import audit, households, pii, villages
from server.access import allow
from server.clock import now_iso
from server.db import first, get_db, transaction
from server.errors import ApiError
from village_kits import codes
from village_kits.roster import RosterRow, read_roster

PERSONAL = ("head_name", "phone", "id_number", "bank_account", "door_number")


def fingerprint(row: RosterRow) -> str:
    """A keyed hash of a row's personal fields and consent, to tell changed rows apart."""
    text = "\x1f".join(str(getattr(row, name) or "") for name in (*PERSONAL, "consent_date"))
    return pii.blind_index(text, "roster-row")


class RosterRejected(Exception):
    """The roster has problems; nothing was imported."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__(f"{len(problems)} problem(s) in the roster")
        self.problems = problems


def _plan(db: Database, rows: list[RosterRow], default_village: dict[str, Any]):
    """Match every row to a household to update or a new one; collect every problem.

    A row matches by ID number, else by household number (户号); a row with neither matches a
    household an earlier import made from an identical row, so re-importing never duplicates.
    Two rows never match one household, and a blank 户号 never takes one given in the file.
    """
    problems: list[dict[str, Any]] = []
    by_code: dict[str, dict[str, Any]] = {default_village["code"]: default_village}
    existing_by_id: dict[str, dict[str, Any]] = {}
    existing_by_seq: dict[tuple[int, int], dict[str, Any]] = {}
    existing_by_print: dict[tuple[int, str], list[dict[str, Any]]] = {}
    next_seq: dict[int, int] = {}
    asked = {(row.village_code or default_village["code"], row.seq) for row in rows if row.seq}
    claimed: dict[int, int] = {}  # existing household id → the row that matched it
    taken: dict[tuple[int, int], int] = {}  # (village id, seq) of a new household → its row
    plan: list[tuple[RosterRow, dict[str, Any], dict[str, Any] | None, int]] = []

    def problem(row: RosterRow, field: str, text: str) -> None:
        problems.append({"row": row.line, "field": field, "problem": text})

    for row in rows:
        code = row.village_code or default_village["code"]
        village = by_code.get(code)
        if village is None:
            village = villages.get_village(code)
            if village is None or village["county_id"] != default_village["county_id"]:
                problem(row, "village_code", f"本县没有村代码为 {code} 的村")
                continue
            by_code[code] = village
        if village["id"] not in next_seq:
            for household in db.query(
                "SELECT * FROM households WHERE village_id = ?", [village["id"]]
            ):
                existing_by_seq[(village["id"], household["seq"])] = household
                if household["id_number_index"]:
                    existing_by_id[household["id_number_index"]] = household
                if household["pii_fingerprint"]:
                    key = (village["id"], household["pii_fingerprint"])
                    existing_by_print.setdefault(key, []).append(household)
            next_seq[village["id"]] = households.next_seq(db, village["id"])
        index = pii.blind_index(row.id_number, "id_number") if row.id_number else None
        match = existing_by_id.get(index) if index else None
        matched_by = "id_number"
        if index and match is None:
            elsewhere = first(
                db,
                """SELECT v.code, v.name FROM households h JOIN villages v
                                     ON v.id = h.village_id WHERE h.id_number_index = ?""",
                [index],
            )
            if elsewhere:
                problem(
                    row,
                    "id_number",
                    f"已在{elsewhere['name']}（{elsewhere['code']}）登记",
                )
                continue
        if match is not None and row.seq is not None and match["seq"] != row.seq:
            problem(row, "seq", f"这个身份证号是第 {match['seq']} 户，不是第 {row.seq} 户")
            continue
        if match is None and row.seq is not None:
            match, matched_by = existing_by_seq.get((village["id"], row.seq)), "seq"
            if match is not None and index and match["id_number_index"] not in (None, index):
                problem(
                    row,
                    "seq",
                    f"第 {row.seq} 户登记的是另一个身份证号",
                )
                continue
        if match is None and index is None and row.seq is None:
            same = existing_by_print.get((village["id"], fingerprint(row)), [])
            match = next((h for h in same if h["id"] not in claimed), None)
            matched_by = "head_name"
        if match is not None:
            if match["id"] in claimed:
                problem(row, matched_by, f"与第 {claimed[match['id']]} 行是同一户")
                continue
            claimed[match["id"]] = row.line
            plan.append((row, village, match, match["seq"]))
            continue
        seq = row.seq
        if seq is None:
            seq = next_seq[village["id"]]
            while (
                (village["id"], seq) in existing_by_seq
                or (village["id"], seq) in taken
                or (village["code"], seq) in asked
            ):
                seq += 1
            next_seq[village["id"]] = seq
        elif (village["id"], seq) in taken:
            problem(row, "seq", f"与第 {taken[(village['id'], seq)]} 行的户号相同")
            continue
        if seq > codes.MAX_SEQ:
            problem(row, "seq", f"一个村最多 {codes.MAX_SEQ} 户")
            continue
        taken[(village["id"], seq)] = row.line
        plan.append((row, village, None, seq))
    return plan, problems


def import_roster(
    db: Database, data: bytes, filename: str, village: dict[str, Any], user_id: int | None
) -> dict[str, Any]:
    """Import a roster file into `village` (or the villages its rows name): all or nothing."""
    roster = read_roster(data, filename)
    plan, problems = _plan(db, roster.rows, village) if not roster.problems else ([], [])
    problems = sorted(roster.problems + problems, key=lambda p: (p["row"], p["field"]))
    if problems:
        raise RosterRejected(problems)
    now = now_iso()
    created, updated, unchanged = [], [], 0
    secrets: dict[str, bytes] = {}
    for row, row_village, match, seq in plan:
        stamp = fingerprint(row)
        if match is not None and match["pii_fingerprint"] == stamp:
            unchanged += 1
            continue
        county = row_village["code"][:6]
        secret = secrets.setdefault(county, households.code_secret(county))
        code = match["code"] if match else codes.make_code(secret, row_village["code"], seq)
        columns = households.personal_columns(
            code, **{name: getattr(row, name) for name in PERSONAL}
        ) | {
            "pii_fingerprint": stamp,
            "consent_given": int(row.consent_date is not None),
            "consent_date": row.consent_date,
            "updated_at": now,
        }
        if match:
            updated.append((match["id"], columns))
        else:
            created.append(
                {
                    "village_id": row_village["id"],
                    "seq": seq,
                    "code": code,
                    "created_at": now,
                    **columns,
                }
            )
    with transaction(db):
        db["households"].insert_all(created, batch_size=500)
        for household_id, columns in updated:
            db["households"].update(household_id, columns)
        db["roster_imports"].insert(
            {
                "village_id": village["id"],
                "filename": filename[:200],
                "sha256": hashlib.sha256(data).hexdigest(),
                "rows": len(plan),
                "created": len(created),
                "updated": len(updated),
                "unchanged": unchanged,
                "imported_by": user_id,
                "imported_at": now,
            }
        )
        audit.record(
            db,
            "roster.imported",
            f"village:{village['code']}",
            {
                "sha256": hashlib.sha256(data).hexdigest(),
                "rows": len(plan),
                "created": len(created),
                "updated": len(updated),
            },
        )
    return {
        "rows": len(plan),
        "created": len(created),
        "updated": len(updated),
        "unchanged": unchanged,
        "columns": roster.columns,
    }


bp = Blueprint("rosters", __name__, url_prefix="/api/v1")


@bp.post("/villages/<village_code>/roster")
@allow("admin", scope="village", max_body_setting="MAX_ROSTER_BYTES")
def upload_roster(village_code: str):
    """Import a household roster (multipart field `file`: .csv or .xlsx); all rows or none."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ApiError(
            422,
            "validation_failed",
            "Send the roster as the multipart field 'file'.",
            [{"field": "file", "problem": "missing"}],
        )
    try:
        report = import_roster(get_db(), upload.read(), upload.filename, g.village, g.user["id"])
    except RosterRejected as rejected:
        raise ApiError(
            422,
            "roster_rejected",
            f"Nothing was imported: {len(rejected.problems)} problem(s) to fix.",
            rejected.problems,
        ) from rejected
    return jsonify(report), 201
