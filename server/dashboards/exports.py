"""The bureau's exports: the same rows as CSV (UTF-8 with BOM, so Excel reads Chinese; plain
numbers for machines) or XLSX for people (openpyxl): a title row saying what, which county
and when, units in the headers, money and tonnes as numbers that sum, dates as dates."""

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from server import units
from server.clock import now_iso

# (header, kind): kinds pick the spreadsheet number format.
VILLAGE_COLUMNS = [
    ("村代码", "text"),
    ("村名", "text"),
    ("农户数（户）", "int"),
    ("已签发（吨）", "int"),
    ("已售（吨）", "int"),
    ("应得（元）", "yuan"),
    ("已到账（元）", "yuan"),
    ("待付（元）", "yuan"),
    ("逾期（元）", "yuan"),
    ("逾期户数（户）", "int"),
    ("到账率", "pct"),
]
HOUSEHOLD_COLUMNS = [
    ("户码", "text"),
    ("村代码", "text"),
    ("村名", "text"),
    ("户主", "text"),
    ("应得（元）", "yuan"),
    ("已到账（元）", "yuan"),
    ("批次中（元）", "yuan"),
    ("待付（元）", "yuan"),
    ("逾期（元）", "yuan"),
    ("到账率", "pct"),
    ("最近到账（北京时间）", "time"),
]
# A buyer's retirements: a court's case number (案号) in its own column.
RETIREMENT_COLUMNS = [
    ("证书编号", "text"),
    ("注销日期", "date"),
    ("数量（吨）", "int"),
    ("受益人", "text"),
    ("用途", "text"),
    ("案号", "text"),
    ("金额（元）", "yuan"),
    ("农户所得（元）", "yuan"),
]
VILLAGE_HEADER = [name for name, _ in VILLAGE_COLUMNS]
HOUSEHOLD_HEADER = [name for name, _ in HOUSEHOLD_COLUMNS]
FORMATS = {
    "int": "#,##0",
    "yuan": "#,##0.00",
    "tonnes": "#,##0.000",
    "pct": "0.00%",
    "date": 'yyyy"年"m"月"d"日"',
    "month": 'yyyy"年"m"月"',
    "time": 'yyyy"年"m"月"d"日" hh:mm',
}


def _share(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 4)))


def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas in text cells (CSV injection)."""
    risky = isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r")
    if risky and not value[1:2].isdigit():
        return "'" + value
    return value


def _village_row(code: str, name: str, v: dict[str, Any]) -> list[Any]:
    return [
        code,
        name,
        v["households"],
        v["issued_t"],
        v["sold_t"],
        units.yuan_number(v["accrued_fen"]),
        units.yuan_number(v["paid_fen"]),
        units.yuan_number(v["owed_fen"]),
        units.yuan_number(v["overdue_fen"]),
        v["overdue_households"],
        _share(v["arrival"]),
    ]


def village_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [_village_row(v["code"], v["name"], v) for v in summary["villages"]]
    county = summary["county"]
    rows.append(_village_row(county["code"], f"{county['name']}合计", summary["totals"]))
    return VILLAGE_HEADER, rows


def household_rows(households: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    return HOUSEHOLD_HEADER, [
        [
            h["code"],
            h["village_code"],
            h["village_name"],
            h["head_name"],
            units.yuan_number(h["accrued_fen"]),
            units.yuan_number(h["paid_fen"]),
            units.yuan_number(h["pending_fen"]),
            units.yuan_number(h["owed_fen"]),
            units.yuan_number(h["overdue_fen"]),
            _share(h["arrival"]),
            units.spreadsheet_time(h["last_paid_at"]),
        ]
        for h in households
    ]


def retirement_rows(certs: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]], list[str]]:
    """(header, rows, kinds) of certificates: one row each, the case number on its own."""
    rows = [
        [
            cert["id"],
            date.fromisoformat(cert["retired_on"]),
            cert["tonnes"],
            cert["beneficiary"],
            cert["reason"],
            cert["case_number"],
            units.yuan_number(cert["amount_fen"]),
            units.yuan_number(cert["farmers_fen"]),
        ]
        for cert in certs
    ]
    return [n for n, _ in RETIREMENT_COLUMNS], rows, [k for _, k in RETIREMENT_COLUMNS]


def kinds_of(header: list[str]) -> list[str]:
    known = dict(VILLAGE_COLUMNS) | dict(HOUSEHOLD_COLUMNS)
    return [known.get(name, "text") for name in header]


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else _cell(value)


def xlsx_bytes(
    header: list[str], rows: list[list[Any]], title: str, types: list[str] | None = None
) -> bytes:
    """A workbook: title row, when it was made, the header, then typed cells."""
    types = types or kinds_of(header)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("四旁")
    heading = WriteOnlyCell(sheet, value=title)
    heading.font = Font(bold=True, size=14)
    sheet.append([heading])
    sheet.append([f"导出时间：{units.when(now_iso())}（北京时间）"])
    bold = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        bold.append(cell)
    sheet.append(bold)
    for row in rows:
        cells = []
        for value, kind in zip(row, types, strict=False):
            cell = WriteOnlyCell(sheet, value=_cell(value))
            if kind in FORMATS and value is not None:
                cell.number_format = FORMATS[kind]
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def respond(
    fmt: str,
    name: str,
    header: list[str],
    rows: list[list[Any]],
    title: str | None = None,
    types: list[str] | None = None,
) -> Response:
    """The rows as a CSV (header first, for machines) or XLSX (title first, for people)."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([[_csv_value(value) for value in row] for row in rows])
        body, mimetype = ("\ufeff" + out.getvalue()).encode(), "text/csv; charset=utf-8"
    else:
        body = xlsx_bytes(header, rows, title or name, types)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response.headers["Cache-Control"] = "no-store"
    return response
