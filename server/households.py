"""Households (一户一码): their codes, encrypted personal data and masked views."""

import json
from typing import Any

from flask import Blueprint, current_app, g, jsonify
from sqlite_utils import Database

from server import audit, pii
from server.access import allow
from server.clock import now_iso
from server.dashboards import figures, money
from server.db import first, get_db, transaction
from server.errors import ApiError
from server.tree_reasons import reason_zh
from server.validation import json_body
from village_kits import codes
from village_kits.personal_data import (
    is_bank_card,
    is_id_number,
    is_mobile_phone,
    normalise_digits,
)


def code_secret(county_code: str) -> bytes:
    return codes.county_secret(bytes.fromhex(current_app.config["CODE_KEY"]), county_code)


def household_key(code: str) -> str:
    """The part of a code that never changes (village and number), e.g. `360423101201-0042`."""
    return code[:17]


def pii_context(code: str, field: str) -> str:
    """What a personal field's ciphertext is bound to: this household, this field."""
    return f"household:{household_key(code)}:{field}"


def get_household(code: str) -> dict[str, Any] | None:
    """The household whose current plate carries this code, or None."""
    return resolve_plate(code)[0]


def resolve_plate(code: str) -> tuple[dict[str, Any] | None, str | None]:
    """(household, None) for a valid current plate, else (None, why it is not valid)."""
    if not codes.is_well_formed(code):
        return None, "the code is mistyped or the plate is damaged"
    village_code, seq, check = codes.parse_code(code)
    normalised = f"{village_code}-{seq:04d}-{check}"
    db = get_db()
    household = first(db, "SELECT * FROM households WHERE code = ?", [normalised])
    if household is not None:
        return household, None
    if first(db, "SELECT 1 FROM revoked_plates WHERE code = ?", [normalised]):
        return None, "this plate was replaced by a new one"
    return None, "no household has this plate"


def check_personal_data(data: dict[str, Any]) -> list[dict[str, str]]:
    """Problems with the head name, phone, ID and bank numbers, one per field."""
    checks = {
        "phone": (is_mobile_phone, "not an 11-digit mobile number"),
        "id_number": (is_id_number, "not an 18-character ID number with a valid check"),
        "bank_account": (is_bank_card, "not a bank card number (Luhn check fails)"),
    }
    problems = [
        {"field": field, "problem": problem}
        for field, (valid, problem) in checks.items()
        if data.get(field) is not None and not valid(data[field])
    ]
    name = data.get("head_name")
    if isinstance(name, str) and name.strip()[:1] in FORMULA_STARTS:
        problems.append(
            {"field": "head_name", "problem": "starts like a spreadsheet formula (= + - @)"}
        )
    return problems


# A name starting with one of these runs as a formula when an export is opened (=HYPERLINK…).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def personal_columns(code: str, **values: str | None) -> dict[str, Any]:
    """The stored form of personal fields: ciphertexts, masks and the ID number's blind index.

    Only the fields given are returned, so an update touches nothing else.
    """
    columns: dict[str, Any] = {}
    for field, value in values.items():
        columns[f"{field}_enc"] = pii.encrypt(value, pii_context(code, field))
        if field == "head_name":
            columns["head_name_masked"] = pii.mask_name(value)
        elif field == "phone":  # never its last 4 digits: the plate's second factor
            columns["phone_masked"] = pii.mask_phone(value)
        elif field == "bank_account":
            columns[f"{field}_masked"] = pii.mask_tail(value)
        elif field == "id_number":
            columns["id_number_index"] = pii.blind_index(value, "id_number") if value else None
    return columns


def next_seq(db: Database, village_id: int) -> int:
    return db.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM households WHERE village_id = ?", [village_id]
    ).fetchone()[0]


def create_household(
    db: Database,
    village: dict[str, Any],
    *,
    head_name: str,
    phone: str | None = None,
    id_number: str | None = None,
    bank_account: str | None = None,
    consent_date: str | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """Register a household, encrypting its personal data; returns the stored row."""
    problems = check_personal_data(
        {
            "head_name": head_name,
            "phone": phone,
            "id_number": id_number,
            "bank_account": bank_account,
        }
    )
    if problems:
        raise ApiError(422, "validation_failed", "Personal data failed its checks.", problems)
    phone, id_number, bank_account = (
        normalise_digits(v).upper() if v else None for v in (phone, id_number, bank_account)
    )
    id_index = pii.blind_index(id_number, "id_number") if id_number else None
    if id_index and first(db, "SELECT 1 FROM households WHERE id_number_index = ?", [id_index]):
        raise ApiError(409, "conflict", "A household with this ID number is registered already.")
    with transaction(db):
        seq = seq or next_seq(db, village["id"])
        if seq > codes.MAX_SEQ:
            raise ApiError(409, "conflict", f"A village holds at most {codes.MAX_SEQ} households.")
        code = codes.make_code(code_secret(village["code"][:6]), village["code"], seq)
        now = now_iso()
        db["households"].insert(
            {
                "village_id": village["id"],
                "seq": seq,
                "code": code,
                **personal_columns(
                    code,
                    head_name=head_name,
                    phone=phone,
                    id_number=id_number,
                    bank_account=bank_account,
                ),
                "consent_given": int(consent_date is not None),
                "consent_date": consent_date,
                "created_at": now,
                "updated_at": now,
            }
        )
        audit.record(db, "household.created", f"household:{code}", {"village": village["code"]})
    return first(db, "SELECT * FROM households WHERE code = ?", [code])


def replace_plate(db: Database, household: dict[str, Any], reason: str) -> dict[str, Any]:
    """Issue a new plate (lost or damaged): a new code; the old plate stops working."""
    village_code, seq = household["code"][:12], household["seq"]
    secret = code_secret(village_code[:6])
    plate_no = household["plate_no"] + 1
    used = {household["code"]} | {
        row["code"]
        for row in db.query(
            "SELECT code FROM revoked_plates WHERE household_id = ?", [household["id"]]
        )
    }
    # The keyed check has 31 values: skip plate numbers whose code this household ever had,
    # so a revoked plate can never come back to life.
    while (code := codes.make_code(secret, village_code, seq, plate_no)) in used:
        plate_no += 1
        if plate_no > household["plate_no"] + 200:
            raise ApiError(409, "conflict", "No unused plate code is left for this household.")
    with transaction(db):
        db["revoked_plates"].insert(
            {
                "code": household["code"],
                "household_id": household["id"],
                "plate_no": household["plate_no"],
                "revoked_at": now_iso(),
                "reason": reason,
            }
        )
        db.execute(
            "UPDATE households SET code = ?, plate_no = ?, updated_at = ? WHERE id = ?",
            [code, plate_no, now_iso(), household["id"]],
        )
        audit.record(
            db,
            "plate.replaced",
            f"household:{code}",
            {"old_code": household["code"], "reason": reason},
        )
    return first(db, "SELECT * FROM households WHERE id = ?", [household["id"]])


def reveal(db: Database, household: dict[str, Any], field: str, purpose: str) -> str | None:
    """Decrypt one personal field for a stated purpose; every access is audited."""
    value = pii.decrypt(household[f"{field}_enc"], pii_context(household["code"], field))
    audit.record(
        db, "pii.revealed", f"household:{household['code']}", {"field": field, "purpose": purpose}
    )
    return value


def roster_for_phone(db: Database, household_ids: list[int], device_id: str) -> list[dict]:
    """The households as a measurer's phone keeps them: code, number, masked head name (王*三)
    and door number, never the full name or a phone. Door numbers are decrypted for the
    phone's roster and that access is audited once per page."""
    rows = list(
        db.query(
            """SELECT code, seq, status, head_name_masked, door_number_enc FROM households
               WHERE id IN (SELECT value FROM json_each(?)) ORDER BY seq""",
            [json.dumps(household_ids)],
        )
    )
    out = []
    for row in rows:
        door = row.pop("door_number_enc")
        row["head_name"] = row.pop("head_name_masked")
        row["door_number"] = pii.decrypt(door, pii_context(row["code"], "door_number"))
        out.append(row)
    if any(row["door_number"] for row in out):
        audit.record(
            db,
            "pii.roster_pulled",
            f"device:{device_id}",
            {"households": len(out), "fields": ["door_number"]},
        )
    return out


def tree_count(db: Database, household_id: int) -> int:
    return db.execute(
        "SELECT count(*) FROM trees WHERE household_id = ?", [household_id]
    ).fetchone()[0]


def masked_view(row: dict[str, Any], village_code: str) -> dict[str, Any]:
    """A household as staff see it: personal data masked, never decrypted."""
    return {
        "code": row["code"],
        "village_code": village_code,
        "seq": row["seq"],
        "head_name": row["head_name_masked"],
        "phone": pii.phone_mask_for_view(row["phone_masked"]),
        "bank_account": row["bank_account_masked"],
        "consent_given": bool(row["consent_given"]),
        "consent_date": row["consent_date"],
        "status": row["status"],
        "trees": row.get("trees"),
    }


NEW_HOUSEHOLD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["head_name"],
    "properties": {
        "head_name": {"type": "string", "minLength": 1, "maxLength": 50},
        "phone": {"type": "string", "maxLength": 20},
        "id_number": {"type": "string", "maxLength": 25},
        "bank_account": {"type": "string", "maxLength": 30},
        "consent_date": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
    "example": {
        "head_name": "示例户主",
        "phone": "17000000042",
        "bank_account": "6200000000000000000",
        "consent_date": "2026-03-01",
    },
}

bp = Blueprint("households", __name__, url_prefix="/api/v1")


@bp.get("/villages/<village_code>/households")
@allow("admin", "bureau", "verifier", "measurer", scope="village")
def village_households(village_code: str):
    """A village's households, personal data masked."""
    rows = get_db().query(
        """SELECT h.*, (SELECT count(*) FROM trees t WHERE t.household_id = h.id) AS trees
           FROM households h WHERE h.village_id = ? ORDER BY h.seq""",
        [g.village["id"]],
    )
    return jsonify(households=[masked_view(row, village_code) for row in rows])


@bp.post("/villages/<village_code>/households")
@allow("admin", scope="village", body=NEW_HOUSEHOLD)
def add_household(village_code: str):
    """Register one household (the roster import registers many at once)."""
    data = json_body(NEW_HOUSEHOLD)
    row = create_household(get_db(), g.village, **data)
    return jsonify(household=masked_view(row | {"trees": 0}, village_code)), 201


PLATE_REPLACEMENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["reason"],
    "properties": {"reason": {"enum": ["lost", "damaged", "other"]}},
    "example": {"reason": "damaged"},
}


@bp.post("/households/<household_code>/plates")
@allow("admin", scope="household", body=PLATE_REPLACEMENT)
def new_plate(household_code: str):
    """Issue a replacement door plate; the old plate's code stops working at once."""
    data = json_body(PLATE_REPLACEMENT)
    row = replace_plate(get_db(), g.household, data["reason"])
    return jsonify(household=masked_view(row | {"trees": None}, g.village["code"])), 201


@bp.get("/households/<household_code>")
@allow("admin", "bureau", "verifier", "measurer", scope="household")
def household(household_code: str):
    """One household, personal data masked."""
    row = g.household | {"trees": tree_count(get_db(), g.household["id"])}
    return jsonify(household=masked_view(row, g.village["code"]))


def public_summary(household: dict[str, Any]) -> dict[str, Any]:
    """What a door plate shows anyone: trees, carbon, tonnes issued, money accrued, owed
    and paid. No personal data."""
    db = get_db()
    village = first(
        db,
        """SELECT v.name, v.code, c.name AS county FROM villages v
                           JOIN counties c ON c.id = v.county_id WHERE v.id = ?""",
        [household["village_id"]],
    )
    trees = list(
        db.query(
            """SELECT t.id, t.position, t.status, t.tag, s.name_zh AS species,
                  m.dbh_mm, m.height_cm, m.client_time, e.co2e_g, e.route,
                  m.latitude, m.longitude, t.status_reason,
                  (SELECT count(*) FROM blobs b
                   WHERE b.sha256 IN (m.photo_sha256, t.status_photo_sha256)) > 0 AS photo
           FROM trees t JOIN species s ON s.id = t.species_id
           LEFT JOIN measurements m ON m.id = (SELECT id FROM measurements
                                               WHERE tree_id = t.id
                                               ORDER BY client_time DESC LIMIT 1)
           LEFT JOIN measurement_estimates e ON e.measurement_id = m.id
           WHERE t.household_id = ? ORDER BY t.created_at, t.id""",
            [household["id"]],
        )
    )
    # The registry's own shares of issued tonnes: what a partial verification took away
    # is not in them, unlike the calculation's lines.
    issued_g = figures.household_issued_g(db, household["id"])
    payouts = money.household_totals(db, household["id"])
    alive = [tree for tree in trees if tree["status"] == "alive"]
    for tree in trees:
        tree["status_reason_zh"] = reason_zh(tree["status_reason"])
    return {
        "code": household["code"],
        "seq": household["seq"],
        "village": village,
        "trees": trees,
        "alive": len(alive),
        "stock_co2e_g": sum(tree["co2e_g"] or 0 for tree in alive),
        "issued_g": issued_g,
        "accrued_fen": payouts["accrued_fen"],
        "owed_fen": payouts["owed_fen"],
        "paid_fen": payouts["paid_fen"],
    }
