"""Certificates `SPC-<year>-<seq 6>`: terminal records of retired tonnes, not tokens.

A certificate's fields are stored as columns and as their canonical JSON (sorted keys, no
spaces, UTF-8), with the sha256 of that JSON. `check` rebuilds the JSON from the columns
and the retired serials, so any altered field, document or hash shows as a mismatch.
"""

import hashlib
import hmac
import json
import re
from typing import Any

from sqlite_utils import Database

from server.clock import now_iso
from server.db import first, insert
from server.errors import ApiError
from server.push import triggers as push
from server.registry import chain_hooks

CERT_ID = re.compile(r"SPC-\d{4}-\d{6}")
# A court's case number (案号, 最高人民法院《关于人民法院案件案号的若干规定》): （year）court
# abbreviation and code, case-type characters, number, 号 — e.g. （2026）赣0423刑初12号.
CASE_NUMBER = re.compile(
    r"（(19|20)\d{2}）[\u4e00-\u9fff]{1,4}\d{0,6}[\u4e00-\u9fff]{1,6}\d{1,6}号"
)


def normalise_case_number(text: str | None) -> str | None:
    """A 案号 as stored (full-width brackets, no spaces), None when blank; 422 when it is not
    one."""
    text = re.sub(r"\s+", "", text or "").replace("(", "（").replace(")", "）")
    text = text.replace("〔", "（").replace("〕", "）").replace("[", "（").replace("]", "）")
    if not text:
        return None
    if len(text) > 40 or not CASE_NUMBER.fullmatch(text):
        raise ApiError(
            422,
            "validation_failed",
            "案号格式不对，应如（2026）赣0423刑初12号。",
            [{"field": "case_number", "problem": "not a court case number"}],
        )
    return text


def canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _document(row: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "programme": "Sipang 四旁",
        "tonnes": row["tonnes"],
        "serials": json.loads(row["serials"]),
        "vintages": json.loads(row["vintages"]),
        "bundle": {
            "number": f"{bundle['county_code']}-{bundle['seq']:04d}",
            "version": bundle["version"],
            "name": bundle["name"],
        },
        "villages": json.loads(row["villages"]),
        "beneficiary": row["beneficiary"],
        "reason": row["reason"],
        **({"case_number": row["case_number"]} if row.get("case_number") else {}),
        "retired_on": row["retired_on"],
        "price_fen": row["price_fen"],
        "amount_fen": row["amount_fen"],
        "farmers_fen": row["farmers_fen"],
        "unit": "t CO2e",
    }


def _bundle(db: Database, bundle_id: int) -> dict[str, Any]:
    return first(
        db,
        """SELECT b.*, c.code AS county_code FROM bundles b JOIN counties c
           ON c.id = b.county_id WHERE b.id = ?""",
        [bundle_id],
    )


def create(
    db: Database,
    order: dict[str, Any],
    retired: list[str],
    *,
    beneficiary: str | None,
    reason: str | None,
    request_id: str | None = None,
    case_number: str | None = None,
) -> dict[str, Any]:
    """Write the certificate for serials just retired (inside the caller's transaction) and
    the retirements that make a second retirement impossible. A court's retirement carries
    its case number (案号) as its own field."""
    case_number = normalise_case_number(case_number)
    now = now_iso()
    year = int(now[:4])
    seq = db.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM certificates WHERE year = ?", [year]
    ).fetchone()[0]
    cert_id = f"SPC-{year}-{seq:06d}"
    marks = ",".join("?" for _ in retired)
    vintages = [
        r[0]
        for r in db.execute(
            f"SELECT DISTINCT vintage FROM tonnes WHERE serial IN ({marks}) ORDER BY vintage",  # noqa: S608
            retired,
        )
    ]
    villages = [
        {"code": r[0], "name": r[1]}
        for r in db.execute(
            f"""SELECT DISTINCT v.code, v.name FROM tonnes t
                JOIN issuances i ON i.id = t.issuance_id
                JOIN credit_calculations c ON c.id = i.calculation_id
                JOIN villages v ON v.id = c.village_id
                WHERE t.serial IN ({marks}) ORDER BY v.code""",  # noqa: S608
            retired,
        )
    ]
    amount = order["price_fen"] * len(retired)
    share = order["farmers_fen"] * len(retired) // order["tonnes"]
    row = {
        "id": cert_id,
        "year": year,
        "seq": seq,
        "order_id": order["id"],
        "request_id": request_id,
        "bundle_id": order["bundle_id"],
        "tonnes": len(retired),
        "serials": json.dumps(sorted(retired)),
        "vintages": json.dumps(vintages),
        "villages": json.dumps(villages, ensure_ascii=False),
        "beneficiary": beneficiary,
        "reason": reason,
        "case_number": case_number,
        "retired_on": now[:10],
        "price_fen": order["price_fen"],
        "amount_fen": amount,
        "farmers_fen": share,
        "created_at": now,
    }
    document = canonical(_document(row, _bundle(db, order["bundle_id"])))
    row["document"] = document
    row["sha256"] = hashlib.sha256(document.encode()).hexdigest()
    insert(db, "certificates", row)
    push.certificate_ready(db, order, cert_id, len(retired))
    db.conn.executemany(
        "UPDATE tonnes SET status = 'retired', certificate_id = ? WHERE serial = ?",
        [(cert_id, s) for s in retired],
    )
    db.conn.executemany(
        "INSERT INTO retirements (serial, certificate_id, retired_at) VALUES (?, ?, ?)",
        [(s, cert_id, now) for s in retired],
    )
    chain_hooks.queue_retirement(db, row["sha256"], retired)
    return row


def get(db: Database, cert_id: str) -> dict[str, Any] | None:
    if not CERT_ID.fullmatch(cert_id):
        return None
    return first(db, "SELECT * FROM certificates WHERE id = ?", [cert_id])


def check(db: Database, row: dict[str, Any]) -> dict[str, Any]:
    """Recompute the certificate: its JSON from the stored fields, the hash from the JSON,
    and the serials retired under it. Lists every mismatch found."""
    problems = []
    try:
        rebuilt = canonical(_document(row, _bundle(db, row["bundle_id"])))
    except (TypeError, ValueError, KeyError):
        rebuilt = None
    digest = hashlib.sha256((rebuilt or "").encode()).hexdigest()
    if rebuilt != row["document"]:
        problems.append("stored fields do not match the certificate document")
    if digest != row["sha256"]:
        problems.append("the certificate hash does not match its fields")
    if hashlib.sha256(row["document"].encode()).hexdigest() != row["sha256"]:
        problems.append("the stored document does not match its hash")
    retired = sorted(
        r[0]
        for r in db.execute("SELECT serial FROM retirements WHERE certificate_id = ?", [row["id"]])
    )
    try:
        listed = json.loads(row["serials"])
    except (TypeError, ValueError):
        listed = None
    if retired != listed or len(retired) != row["tonnes"]:
        problems.append("the serials retired under this certificate differ")
    return {"valid": not problems, "problems": problems, "recomputed_sha256": digest}


def beneficiary_shown(db: Database, row: dict[str, Any], order_key: str | None = None) -> bool:
    """Whether a public view may show the beneficiary: the buyer opted in, or the caller
    holds the order's link id. Certificate ids are sequential, so nothing else shows it."""
    order = first(
        db, "SELECT public_id, show_beneficiary FROM orders WHERE id = ?", [row["order_id"]]
    )
    if order is None:
        return False
    if order["show_beneficiary"]:
        return True
    return bool(order_key) and hmac.compare_digest(order_key, order["public_id"])


HIDDEN = "（未公开）"


def public_view(row: dict[str, Any], show_beneficiary: bool = False) -> dict[str, Any]:
    """The certificate for the API; the beneficiary reads 未公开 unless it may be shown
    (the hash is over the full document: /verify recomputes it on the server)."""
    document = json.loads(row["document"])
    if not show_beneficiary and document.get("beneficiary") is not None:
        document["beneficiary"] = HIDDEN
    return {
        "id": row["id"],
        "beneficiary_public": show_beneficiary,
        "document": document,
        "sha256": row["sha256"],
        "chain_tx": row["chain_tx"],
    }
