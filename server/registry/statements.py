"""Providers' daily statements imported and reconciled against orders and refunds.

WeChat Pay's 交易账单 (`GET /v3/bill/tradebill`, bill_type ALL): comma-separated, every field
prefixed with a back-tick, a header row, then the trades, then a summary after 总交易单数.
Alipay's 业务明细 对账单 (a zip of GBK CSV files): `#` comment lines, a header row with
支付宝交易号, trades (业务类型 交易 or 退款), then `#` lines again. Columns are found by their
header names, so added columns do not matter.

Each line gets an outcome: a payment is `matched` (it paid the order it names, for its
amount) or `refunded` (it came in and was sent back), else `unknown_order`,
`amount_mismatch` or `not_applied`; a refund is `refund_matched`, else `refund_mismatch` or
`unknown_refund`. Paid orders of the day that the statement lacks are listed too.
"""

import csv
import hashlib
import io
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server import audit
from server.clock import now_iso
from server.db import first, insert, transaction
from server.errors import ApiError
from server.registry.providers import fen
from server.units import BEIJING

GOOD = ("matched", "refunded", "refund_matched")


def _rows(text: str, start, stop) -> list[dict[str, str]]:
    lines = text.splitlines()
    try:
        head = next(i for i, line in enumerate(lines) if start(line))
    except StopIteration as error:
        raise ApiError(422, "bad_statement", "没有找到账单的表头。") from error
    body = []
    for line in lines[head + 1 :]:
        if stop(line):
            break
        if line.strip():
            body.append(line)
    reader = csv.DictReader([lines[head], *body])
    clean = []
    for row in reader:
        clean.append(
            {(k or "").strip(): (v or "").strip().lstrip("`").strip() for k, v in row.items()}
        )
    return clean


def parse_wechat(raw: bytes) -> list[dict[str, Any]]:
    text = raw.decode("utf-8-sig")
    rows = _rows(
        text, lambda line: line.startswith("交易时间"), lambda line: line.startswith("总交易单数")
    )
    parsed = []
    for row in rows:
        refund = row.get("交易状态") == "REFUND"
        amount = row.get("退款金额") if refund else (row.get("应结订单金额") or row.get("订单金额"))
        parsed.append(
            {
                "kind": "refund" if refund else "payment",
                "trade_time": row.get("交易时间"),
                "transaction_id": row.get("微信订单号", ""),
                "out_trade_no": row.get("商户订单号") or None,
                "out_refund_no": (row.get("商户退款单号") or None) if refund else None,
                "amount_fen": abs(fen(amount or "0")),
            }
        )
    return parsed


def _alipay_text(raw: bytes) -> str:
    if raw[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [n for n in archive.namelist() if n.endswith(".csv")]
            detail = [n for n in names if "汇总" not in n] or names
            if not detail:
                raise ApiError(422, "bad_statement", "压缩包里没有账单。")
            raw = archive.read(detail[0])
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ApiError(422, "bad_statement", "无法读取账单的文字编码。")


def parse_alipay(raw: bytes) -> list[dict[str, Any]]:
    rows = _rows(
        _alipay_text(raw),
        lambda line: line.lstrip().startswith("支付宝交易号"),
        lambda line: line.lstrip().startswith("#"),
    )
    parsed = []
    for row in rows:
        refund = row.get("业务类型") == "退款"
        parsed.append(
            {
                "kind": "refund" if refund else "payment",
                "trade_time": row.get("完成时间") or row.get("创建时间"),
                "transaction_id": row.get("支付宝交易号", ""),
                "out_trade_no": row.get("商户订单号") or None,
                "out_refund_no": (row.get("退款批次号/请求号") or None) if refund else None,
                "amount_fen": abs(fen(row.get("订单金额（元）") or "0")),
            }
        )
    return parsed


def _outcome(db: Database, provider: str, line: dict[str, Any]) -> tuple[str, int | None]:
    if line["kind"] == "refund":
        refund = first(
            db, "SELECT * FROM refunds WHERE out_refund_no = ?", [line["out_refund_no"] or ""]
        )
        if refund is None:
            return "unknown_refund", None
        if refund["amount_fen"] != line["amount_fen"]:
            return "refund_mismatch", refund["order_id"]
        return "refund_matched", refund["order_id"]
    attempt = first(
        db,
        "SELECT * FROM payment_attempts WHERE provider = ? AND out_trade_no = ?",
        [provider, line["out_trade_no"] or ""],
    )
    if attempt is None:
        return "unknown_order", None
    order = first(db, "SELECT * FROM orders WHERE id = ?", [attempt["order_id"]])
    if (order["payment_method"], order["payment_reference"]) == (provider, line["transaction_id"]):
        return (
            "matched" if line["amount_fen"] == order["amount_fen"] else "amount_mismatch"
        ), order["id"]
    if first(
        db,
        "SELECT 1 FROM refunds WHERE provider = ? AND transaction_id = ?",
        [provider, line["transaction_id"]],
    ):
        return "refunded", order["id"]
    return "not_applied", order["id"]


def import_statement(db: Database, provider: str, filename: str, raw: bytes, actor: str) -> int:
    """Parse, reconcile and store a statement; refused when the same file came before."""
    digest = hashlib.sha256(raw).hexdigest()
    if first(db, "SELECT 1 FROM statements WHERE sha256 = ?", [digest]):
        raise ApiError(409, "already_imported", "这份账单已经导入过。")
    try:
        lines = parse_wechat(raw) if provider == "wechat" else parse_alipay(raw)
    except (ValueError, ArithmeticError, csv.Error, zipfile.BadZipFile) as error:
        raise ApiError(422, "bad_statement", "账单格式不对，无法读取。") from error
    dates = Counter((line["trade_time"] or "")[:10] for line in lines if line["trade_time"])
    with transaction(db):
        judged = [(line, *_outcome(db, provider, line)) for line in lines]
        matched = sum(1 for _, outcome, _ in judged if outcome in GOOD)
        statement_id = insert(
            db,
            "statements",
            {
                "provider": provider,
                "bill_date": dates.most_common(1)[0][0] if dates else None,
                "filename": filename[:200],
                "sha256": digest,
                "line_count": len(lines),
                "matched": matched,
                "unmatched": len(lines) - matched,
                "imported_by": actor,
                "imported_at": now_iso(),
            },
        )
        for number, (line, outcome, order_id) in enumerate(judged, 1):
            insert(
                db,
                "statement_lines",
                line
                | {
                    "statement_id": statement_id,
                    "line_no": number,
                    "outcome": outcome,
                    "order_id": order_id,
                },
            )
        audit.record(
            db,
            "statement.imported",
            f"statement:{statement_id}",
            {"provider": provider, "lines": len(lines), "unmatched": len(lines) - matched},
            actor=actor,
        )
    return statement_id


def missing_paid_orders(db: Database, statement: dict[str, Any]) -> list[dict[str, Any]]:
    """Orders paid through the provider on the statement's day that it does not list."""
    if not statement["bill_date"]:
        return []
    day = datetime.fromisoformat(statement["bill_date"]).replace(tzinfo=BEIJING)
    start = day.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    end = (day + timedelta(days=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return list(
        db.query(
            """SELECT o.id, o.public_id, o.amount_fen, o.payment_reference, o.paid_at
               FROM orders o WHERE o.payment_method = ? AND o.paid_at >= ? AND o.paid_at < ?
               AND o.payment_reference NOT IN (
                   SELECT transaction_id FROM statement_lines
                   WHERE statement_id = ? AND kind = 'payment')
               ORDER BY o.paid_at""",
            [statement["provider"], start, end, statement["id"]],
        )
    )


def summary(db: Database, statement_id: int) -> dict[str, Any] | None:
    statement = first(db, "SELECT * FROM statements WHERE id = ?", [statement_id])
    if statement is None:
        return None
    lines = list(
        db.query(
            """SELECT l.*, o.public_id FROM statement_lines l LEFT JOIN orders o
               ON o.id = l.order_id WHERE statement_id = ? ORDER BY line_no""",
            [statement_id],
        )
    )
    missing = missing_paid_orders(db, statement)
    unmatched = [line for line in lines if line["outcome"] not in GOOD]
    return {
        "statement": statement,
        "lines": lines,
        "unmatched": unmatched,
        "missing": missing,
        "unmatched_count": len(unmatched) + len(missing),
    }
