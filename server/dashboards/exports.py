"""The bureau's exports: the same rows as CSV (UTF-8 with BOM, so Excel reads Chinese) or
XLSX (openpyxl). Money columns are yuan with two decimals, computed from integer fen."""

import csv
import io
from typing import Any

from flask import Response
from openpyxl import Workbook

VILLAGE_HEADER = [
    "村代码",
    "村名",
    "农户数",
    "已签发吨数",
    "已售吨数",
    "应得（元）",
    "已到账（元）",
    "待付（元）",
    "逾期（元）",
    "逾期户数",
    "到账率",
]
HOUSEHOLD_HEADER = [
    "户码",
    "村代码",
    "村名",
    "户主",
    "应得（元）",
    "已到账（元）",
    "批次中（元）",
    "待付（元）",
    "逾期（元）",
    "到账率",
    "最近到账",
]


def _yuan(fen: int | None) -> str:
    fen = fen or 0
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.2f}%"


def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas in text cells (CSV injection)."""
    risky = isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r")
    if risky and not value[1:2].isdigit():
        return "'" + value
    return value


def village_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [
            v["code"],
            v["name"],
            v["households"],
            v["issued_t"],
            v["sold_t"],
            _yuan(v["accrued_fen"]),
            _yuan(v["paid_fen"]),
            _yuan(v["owed_fen"]),
            _yuan(v["overdue_fen"]),
            v["overdue_households"],
            _share(v["arrival"]),
        ]
        for v in summary["villages"]
    ]
    t = summary["totals"]
    rows.append(
        [
            summary["county"]["code"],
            f"{summary['county']['name']}合计",
            t["households"],
            t["issued_t"],
            t["sold_t"],
            _yuan(t["accrued_fen"]),
            _yuan(t["paid_fen"]),
            _yuan(t["owed_fen"]),
            _yuan(t["overdue_fen"]),
            t["overdue_households"],
            _share(t["arrival"]),
        ]
    )
    return VILLAGE_HEADER, rows


def household_rows(households: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    return HOUSEHOLD_HEADER, [
        [
            h["code"],
            h["village_code"],
            h["village_name"],
            h["head_name"],
            _yuan(h["accrued_fen"]),
            _yuan(h["paid_fen"]),
            _yuan(h["pending_fen"]),
            _yuan(h["owed_fen"]),
            _yuan(h["overdue_fen"]),
            _share(h["arrival"]),
            h["last_paid_at"] or "",
        ]
        for h in households
    ]


def respond(fmt: str, name: str, header: list[str], rows: list[list[Any]]) -> Response:
    """The rows as a CSV or XLSX download."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([[_cell(value) for value in row] for row in rows])
        body, mimetype = ("\ufeff" + out.getvalue()).encode(), "text/csv; charset=utf-8"
    else:
        book = Workbook(write_only=True)
        sheet = book.create_sheet("四旁")
        sheet.append(header)
        for row in rows:
            sheet.append([_cell(value) for value in row])
        out = io.BytesIO()
        book.save(out)
        body = out.getvalue()
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response.headers["Cache-Control"] = "no-store"
    return response
