"""The bank's return file (CSV or XLSX): one row per transfer with our settlement number,
the amount, the outcome and the bank's reference. The same file twice changes nothing."""

import csv
import hashlib
import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlite_utils import Database

from server.clock import now_iso
from server.db import first, insert, transaction
from server.errors import ApiError
from server.payouts import settlement

COLUMNS = {
    "settlement": ("settlement", "settlement_id", "明细编号", "编号"),
    "amount_fen": ("amount_fen", "金额(分)"),
    "amount_yuan": ("amount", "amount_yuan", "金额", "金额(元)"),
    "status": ("status", "状态", "结果"),
    "reference": ("reference", "流水号", "银行流水号"),
    "reason": ("reason", "失败原因", "备注"),
}
PAID = {"paid", "success", "succeeded", "ok", "成功", "已到账"}
FAILED = {"failed", "failure", "fail", "失败", "退回", "退票"}
MAX_ROWS = 100_000


def yuan_to_fen(text: str) -> int:
    """'12.30' → 1230, exactly (no floats); ValueError on anything else."""
    try:
        value = Decimal(text.replace(",", "").replace("¥", "").strip())
    except InvalidOperation as error:
        raise ValueError(f"not an amount: {text!r}") from error
    fen = value * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"not a whole number of fen: {text!r}")
    return int(fen)


def whole(text: str) -> int:
    """'1230' or a spreadsheet's '1230.0' → 1230; ValueError on anything else."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as error:
        raise ValueError(f"not a number: {text!r}") from error
    if value != value.to_integral_value():
        raise ValueError(f"not a whole number: {text!r}")
    return int(value)


def read_table(filename: str, data: bytes) -> list[list[str]]:
    """The file's rows as text cells: XLSX (first sheet) or CSV (UTF-8 or GB18030)."""
    if data[:2] == b"PK" or filename.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable workbook is bad input
            raise ApiError(422, "bad_file", "无法读取这个 XLSX 文件。") from error
        rows = []
        for values in book.worksheets[0].iter_rows(values_only=True):
            rows.append(["" if v is None else str(v) for v in values])
            if len(rows) > MAX_ROWS:
                break
        return rows
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ApiError(422, "bad_file", "文件编码无法识别（请用 UTF-8 或 GBK 的 CSV）。")
    return list(csv.reader(io.StringIO(text)))[: MAX_ROWS + 1]


def parse(filename: str, data: bytes) -> list[dict[str, Any]]:
    """Rows as {"settlement", "amount_fen", "outcome", "reference", "reason"}."""
    table = [row for row in read_table(filename, data) if any(c.strip() for c in row)]
    if not table:
        raise ApiError(422, "bad_file", "文件是空的。")
    header = [cell.strip().lower() for cell in table[0]]
    where = {}
    for name, aliases in COLUMNS.items():
        for alias in aliases:
            if alias.lower() in header:
                where[name] = header.index(alias.lower())
                break
    if (
        "settlement" not in where
        or "status" not in where
        or not ("amount_fen" in where or "amount_yuan" in where)
    ):
        raise ApiError(
            422,
            "bad_file",
            "表头需要：明细编号（settlement）、金额（amount 或 amount_fen）、状态（status）。",
        )
    out = []
    for number, row in enumerate(table[1:], start=2):
        cell = _cells(row, where)
        try:
            settlement_id = whole(re.sub(r"^S0*", "", cell("settlement")))
            amount = (
                whole(cell("amount_fen"))
                if "amount_fen" in where
                else yuan_to_fen(cell("amount_yuan"))
            )
        except ValueError:
            out.append({"line": number, "problem": "编号或金额不是数字"})
            continue
        status = cell("status").lower()
        outcome = "paid" if status in PAID else "failed" if status in FAILED else None
        out.append(
            {
                "line": number,
                "settlement": settlement_id,
                "amount_fen": amount,
                "outcome": outcome,
                "reference": cell("reference")[:64] or None,
                "reason": cell("reason")[:200] or None,
            }
        )
    return out


def _cells(row: list[str], where: dict[str, int]):
    def cell(name: str) -> str:
        index = where.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    return cell


def apply_file(db: Database, filename: str, data: bytes, actor: str) -> dict[str, Any]:
    """Apply a return file once: paid rows recorded with their reference, failed rows owed
    again; rows that match no pending transfer of the same amount are ignored."""
    digest = hashlib.sha256(data).hexdigest()
    seen = first(db, "SELECT * FROM bank_return_files WHERE sha256 = ?", [digest])
    if seen is not None:
        return seen | {"duplicate": True, "problems": []}
    rows = parse(filename, data)
    counts = {"paid": 0, "failed": 0, "ignored": 0}
    problems, changed = [], []
    with transaction(db):
        file_id = insert(
            db,
            "bank_return_files",
            {
                "sha256": digest,
                "filename": filename[:200],
                "rows": len(rows),
                "paid": 0,
                "failed": 0,
                "ignored": 0,
                "uploaded_by": actor,
                "uploaded_at": now_iso(),
            },
        )
        for row in rows:
            problem = row.get("problem") or _apply_row(db, row, actor, file_id, changed)
            if problem:
                counts["ignored"] += 1
                problems.append({"line": row["line"], "problem": problem})
            else:
                counts[row["outcome"]] += 1
        db.execute(
            "UPDATE bank_return_files SET paid = ?, failed = ?, ignored = ? WHERE id = ?",
            [counts["paid"], counts["failed"], counts["ignored"], file_id],
        )
    result = first(db, "SELECT * FROM bank_return_files WHERE id = ?", [file_id])
    return result | {"duplicate": False, "problems": problems[:50]}


def _apply_row(db: Database, row: dict, actor: str, file_id: int, changed: list) -> str | None:
    found = settlement.get_settlement(db, row["settlement"])
    if found is None:
        return "没有这笔转账"
    if found["amount_fen"] != row["amount_fen"]:
        return "金额与这笔转账不符"
    if row["outcome"] is None:
        return "状态看不懂（应为 成功 或 失败）"
    if found["status"] != "pending":
        return "已经记录为" + {"paid": "已到账", "failed": "失败"}.get(found["status"], "已处理")
    try:
        if row["outcome"] == "paid":
            reference = row["reference"] or f"return-{file_id}-{found['id']}"
            settlement.record_transfer(db, found["id"], reference, actor, file_id)
        else:
            reason = row["reason"] or "bank returned the transfer"
            settlement.record_failure(db, found["id"], reason, actor, file_id)
    except ApiError as error:
        return error.code
    changed.append(found["id"])
    return None
