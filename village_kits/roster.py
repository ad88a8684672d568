"""Household rosters from the village committee's CSV or Excel file: read, map, validate.

Reading never touches a database: `read_roster` returns the rows and every problem found, each
naming its spreadsheet row (the header is row 1) and field, so the committee can fix the file.
"""

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from village_kits.codes import MAX_SEQ
from village_kits.personal_data import is_bank_card, is_id_number, is_mobile_phone

# The usual headers of a Chinese household register, and ours.
HEADERS = {
    "head_name": ("户主姓名", "户主", "姓名", "户主名称", "head_name", "name"),
    "phone": ("联系电话", "电话", "手机", "手机号", "手机号码", "联系方式", "phone"),
    "id_number": ("身份证号", "身份证号码", "身份证", "公民身份号码", "证件号码", "id_number"),
    "bank_account": ("银行卡号", "银行账号", "银行卡", "卡号", "账号", "收款账号", "bank_account"),
    "door_number": ("门牌号", "门牌", "门牌号码", "住址", "地址", "door_number"),
    "seq": ("户号", "户编号", "户序号", "seq"),
    "village_code": ("村代码", "村编码", "行政区划代码", "村级代码", "village_code"),
    "consent_date": ("同意日期", "授权日期", "数据使用同意日期", "consent_date"),
}
_ALIASES = {alias.lower(): name for name, aliases in HEADERS.items() for alias in aliases}
_DECORATION = re.compile(r"[\s*＊:：]|[（(](必填|选填|可选)[)）]")
MAX_ROWS = 200_000


@dataclass
class RosterRow:
    line: int  # the row's number in the spreadsheet (header = 1)
    head_name: str
    phone: str | None = None
    id_number: str | None = None
    bank_account: str | None = None
    door_number: str | None = None
    seq: int | None = None
    village_code: str | None = None
    consent_date: str | None = None


@dataclass
class Roster:
    rows: list[RosterRow] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # our field → the file's header

    def problem(self, line: int, field_name: str, text: str) -> None:
        self.problems.append({"row": line, "field": field_name, "problem": text})


def _field_of(header: Any) -> str | None:
    text = _DECORATION.sub("", str(header or "")).lower()
    return _ALIASES.get(text)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("文件既不是 UTF-8 也不是 GBK 编码的文本")


def _csv_rows(data: bytes):
    text = _decode(data)
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _xlsx_rows(data: bytes):
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    try:
        sheet = workbook.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield list(row)
    finally:
        workbook.close()


def _cell_text(roster: Roster, line: int, name: str, value: Any) -> str | None:
    """A cell as text; numbers that Excel cannot hold exactly are refused, formulas too."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, float):
        if not value.is_integer():
            roster.problem(line, name, "这里应填文字或整数，却是带小数的数字")
            return None
        value = int(value)
    if isinstance(value, int):
        if name in ("id_number", "bank_account") and abs(value) >= 10**15:
            roster.problem(
                line,
                name,
                "存成了数字，超过 15 位的部分会丢失：请把这一列设为文本格式后重新填写",
            )
            return None
        value = str(value)
    if isinstance(value, datetime | date):
        value = value.strftime("%Y-%m-%d")
    text = str(value).strip()
    number = re.sub(r"[\s-]", "", text[1:])  # "+86 139 1234 5678" is a phone, not a formula
    if text.startswith(("=", "+", "@")) and len(text) > 1 and not number.isdigit():
        roster.problem(line, name, "含有公式，请直接填写内容")
        return None
    return text or None


def _parse_row(roster: Roster, line: int, cells: dict[str, Any]) -> RosterRow | None:
    values = {name: _cell_text(roster, line, name, value) for name, value in cells.items()}
    before = len(roster.problems)
    name = values.get("head_name")
    if not name:
        roster.problem(line, "head_name", "缺少户主姓名")
    elif len(name) > 50 or any(ord(c) < 32 for c in name):
        roster.problem(line, "head_name", "姓名最多 50 个字，且不能换行")
    digits = {
        key: re.sub(r"[\s-]", "", values[key]).upper() if values.get(key) else None
        for key in ("phone", "id_number", "bank_account")
    }
    if digits["phone"] and re.fullmatch(r"(\+?86|0086)1\d{10}", digits["phone"]):
        digits["phone"] = digits["phone"][-11:]  # drop the country code
    checks = {
        "phone": (is_mobile_phone, "不是 11 位手机号码"),
        "id_number": (is_id_number, "不是有效的 18 位身份证号（校验位不符）"),
        "bank_account": (is_bank_card, "不是有效的银行卡号（校验不通过）"),
    }
    for key, (valid, text) in checks.items():
        if digits[key] is not None and not valid(digits[key]):
            roster.problem(line, key, text)
    seq = None
    if values.get("seq") is not None:
        if values["seq"].isdigit() and 1 <= int(values["seq"]) <= MAX_SEQ:
            seq = int(values["seq"])
        else:
            roster.problem(line, "seq", f"户号应为 1–{MAX_SEQ} 的整数")
    village = values.get("village_code")
    if village is not None and not re.fullmatch(r"\d{12}", village):
        roster.problem(line, "village_code", "村代码应为 12 位数字")
    consent = values.get("consent_date")
    if consent is not None:
        try:
            consent = date.fromisoformat(consent.replace("/", "-")[:10]).isoformat()
        except ValueError:
            roster.problem(line, "consent_date", "日期应写成 2026-03-01 这样的格式")
    if len(roster.problems) > before:
        return None
    return RosterRow(
        line=line,
        head_name=name,
        seq=seq,
        village_code=village,
        door_number=values.get("door_number"),
        consent_date=consent,
        **digits,
    )


HEADER_SEARCH_ROWS = 10


def _find_header(rows) -> tuple[int, list[Any] | None]:
    """The header row: the first of the top rows naming the head of household (registers
    often carry a title line or two above it); else the first non-empty row."""
    first: tuple[int, list[Any] | None] = (1, None)
    for line, cells in enumerate(rows, start=1):
        if first[1] is None and any(str(cell or "").strip() for cell in cells):
            first = (line, cells)
        if any(_field_of(cell) == "head_name" for cell in cells):
            return line, cells
        if line >= HEADER_SEARCH_ROWS:
            break
    return first


def read_roster(data: bytes, filename: str) -> Roster:
    """Parse a roster file (.csv in UTF-8 or GBK, or .xlsx) and check every row on its own."""
    roster = Roster()
    if not data.strip():
        roster.problem(0, "(file)", "文件是空的")
        return roster
    suffix = filename.lower().rsplit(".", 1)[-1]
    try:
        rows = _xlsx_rows(data) if suffix == "xlsx" else _csv_rows(data)
        header_line, header = _find_header(rows)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported, not raised
        roster.problem(
            0,
            "(file)",
            f"无法按 {suffix.upper()} 格式读取这个文件：{_why(error)}",
        )
        return roster
    if header is None:
        roster.problem(0, "(file)", "文件是空的")
        return roster
    positions = {}
    for index, title in enumerate(header):
        name = _field_of(title)
        if name and name not in positions:
            positions[name] = index
            roster.columns[name] = str(title).strip()
    if "head_name" not in positions:
        roster.problem(
            header_line,
            "(header)",
            f"前 {HEADER_SEARCH_ROWS} 行里没有户主姓名这一列（表头可写 户主姓名、户主 或 姓名）",
        )
        return roster
    line = header_line
    try:
        for line, cells in enumerate(rows, start=header_line + 1):
            if all(cell is None or str(cell).strip() == "" for cell in cells):
                continue
            if len(roster.rows) + len(roster.problems) >= MAX_ROWS:
                roster.problem(line, "(file)", f"一份花名册最多 {MAX_ROWS:,} 行")
                break
            picked = {name: cells[i] if i < len(cells) else None for name, i in positions.items()}
            row = _parse_row(roster, line, picked)
            if row is not None:
                roster.rows.append(row)
    except Exception as error:  # noqa: BLE001 - a file unreadable part-way is reported too
        roster.problem(
            line + 1,
            "(file)",
            f"第 {line} 行之后的内容无法读取：{_why(error)}",
        )
        return roster
    _check_duplicates(roster)
    if not roster.rows and not roster.problems:
        roster.problem(0, "(file)", "文件只有表头，没有农户")
    return roster


def _why(error: Exception) -> str:
    """Why a file could not be read, for a village clerk: our own Chinese reasons as they
    are, a library's English message as what it means."""
    text = str(error)
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return text
    if "field larger than field limit" in text:
        return "有一格内容过长（超过表格单元的上限），请检查是否有整段文字粘进了一格"
    return "请确认文件完好、格式与扩展名一致"


def _check_duplicates(roster: Roster) -> None:
    for key, label in (("id_number", "身份证号"), ("seq", "户号")):
        seen: dict[tuple, int] = {}
        for row in roster.rows:
            value = getattr(row, key)
            if value is None:
                continue
            scope = (row.village_code, value) if key == "seq" else (value,)
            if scope in seen:
                roster.problem(row.line, key, f"与第 {seen[scope]} 行的{label}相同")
            else:
                seen[scope] = row.line


EXPORT_HEADERS = {
    "seq": "户号",
    "head_name": "户主姓名",
    "phone": "联系电话",
    "id_number": "身份证号",
    "bank_account": "银行卡号",
    "door_number": "门牌号",
    "village_code": "村代码",
    "consent_date": "同意日期",
}


def roster_xlsx(rows: list[dict[str, Any]]) -> bytes:
    """A roster workbook in the usual Chinese layout (numbers kept as text)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("农户花名册")
    fields = [name for name in EXPORT_HEADERS if any(name in row for row in rows)]
    sheet.append([EXPORT_HEADERS[name] for name in fields])
    for row in rows:
        sheet.append([None if row.get(name) is None else str(row[name]) for name in fields])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
