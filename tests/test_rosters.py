"""Roster import: CSV (UTF-8, BOM, GBK, tabs) and XLSX, all rows or none, re-imports update."""

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BANK, ID_NUMBER, PHONE, bearer
from openpyxl import Workbook

from server import create_app, households, rosters, villages
from server.cli import main
from server.db import connect, get_db
from village_kits.personal_data import id_check_character, luhn_check_digit
from village_kits.roster import HEADERS, _field_of, read_roster, roster_xlsx

HEADER = ["户主姓名", "联系电话", "身份证号", "银行卡号", "门牌号"]
SURNAMES = "王李赵刘陈杨黄周吴徐"
GIVEN = "建国秀英志强桂兰海燕"
DEMO_VILLAGE = "360423101201"


def person(n: int) -> dict[str, str]:
    """A made-up household head whose phone, ID and bank numbers pass their checks."""
    first17 = f"36042319600101{n:03d}"
    bank = f"622202020{n:09d}"
    return {
        "head_name": SURNAMES[n % 10] + GIVEN[(n // 10) % 10] + "某",
        "phone": f"1370000{n:04d}",
        "id_number": first17 + id_check_character(first17),
        "bank_account": bank + luhn_check_digit(bank),
        "door_number": f"长水村{n}号",
    }


def as_cells(people: list[dict[str, str]]) -> list[list[str]]:
    keys = ("head_name", "phone", "id_number", "bank_account", "door_number")
    return [[p[key] for key in keys] for p in people]


def csv_bytes(header, rows, encoding="utf-8", delimiter=",") -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(header, rows) -> bytes:
    """A workbook written cell by cell with openpyxl, as Excel would save it."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "花名册"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def run_import(app, data: bytes, filename: str = "roster.csv", village_code: str = DEMO_VILLAGE):
    with app.app_context():
        village = villages.get_village(village_code)
        return rosters.import_roster(get_db(), data, filename, village, None)


def problems_of(app, data: bytes, filename: str = "roster.csv", village_code: str = DEMO_VILLAGE):
    with app.app_context(), pytest.raises(rosters.RosterRejected) as rejected:
        village = villages.get_village(village_code)
        rosters.import_roster(get_db(), data, filename, village, None)
    return rejected.value.problems


def counts(db) -> dict[str, int]:
    return {
        table: db[table].count
        for table in ("households", "audit_log", "roster_imports", "revoked_plates")
    }


def village_households(db, village_code: str) -> list[dict]:
    return list(
        db.query(
            """SELECT h.* FROM households h JOIN villages v ON v.id = h.village_id
               WHERE v.code = ? ORDER BY h.seq""",
            [village_code],
        )
    )


def revealed(app, code: str, field: str) -> str | None:
    with app.app_context():
        row = households.get_household(code)
        return households.reveal(get_db(), row, field, "test")


# --- reading: encodings, delimiters, workbooks, header variants -------------------------------

PEOPLE = [person(n) for n in range(1, 4)]
ROSTER_FILES = {
    "utf-8": ("roster.csv", csv_bytes(HEADER, as_cells(PEOPLE))),
    "utf-8 with BOM": ("roster.csv", csv_bytes(HEADER, as_cells(PEOPLE), "utf-8-sig")),
    "gbk": ("roster.csv", csv_bytes(HEADER, as_cells(PEOPLE), "gbk")),
    "tab-separated": ("roster.txt", csv_bytes(HEADER, as_cells(PEOPLE), delimiter="\t")),
    "tab-separated gbk": ("名册.tsv", csv_bytes(HEADER, as_cells(PEOPLE), "gbk", "\t")),
    "xlsx (roster_xlsx)": ("roster.xlsx", roster_xlsx(PEOPLE)),
    "xlsx (openpyxl)": ("roster.xlsx", xlsx_bytes(HEADER, as_cells(PEOPLE))),
}


@pytest.mark.parametrize("kind", list(ROSTER_FILES))
def test_every_file_kind_imports_the_same_households(app, db, world, kind):
    filename, data = ROSTER_FILES[kind]
    if kind == "gbk":
        assert data != csv_bytes(HEADER, as_cells(PEOPLE))  # really another encoding

    report = run_import(app, data, filename)

    assert report["created"] == 3 and report["updated"] == 0 and report["unchanged"] == 0
    rows = village_households(db, world.village_a)[1:]
    assert [row["seq"] for row in rows] == [2, 3, 4]
    for row, expected in zip(rows, PEOPLE, strict=True):
        for field in ("head_name", "phone", "id_number", "bank_account", "door_number"):
            assert revealed(app, row["code"], field) == expected[field]


HEADER_VARIANTS = [
    ["户主姓名", "联系电话", "身份证号码", "银行卡号", "门牌号", "户号", "村代码", "同意日期"],
    ["户主", "手机号码", "身份证号码", "银行卡号", "门牌号", "户号", "村代码", "同意日期"],
    ["姓名", "联系电话（必填）", "身份证号码", "银行卡号", "门牌号", "户号", "村代码", "同意日期"],
    [
        "户主姓名*",
        "联系电话(必填)",
        " 身份证号码 ",
        "银行卡号：",
        "门牌号",
        "户号*",
        "村代码",
        "同意日期",
    ],
    [
        "户主姓名\n（必填）",
        "手机号码＊",
        "身份证号码",
        "银行卡号",
        "门牌号",
        "户号",
        "村代码",
        "同意日期",
    ],
]


@pytest.mark.parametrize("header", HEADER_VARIANTS, ids=lambda h: "|".join(h[:2]))
def test_usual_chinese_headers_map_to_our_fields(app, db, world, header):
    someone = person(7)
    row = [*as_cells([someone])[0], "42", world.village_b, "2026/03/05"]

    report = run_import(app, csv_bytes(header, [row]))

    assert set(report["columns"]) == {
        "head_name",
        "phone",
        "id_number",
        "bank_account",
        "door_number",
        "seq",
        "village_code",
        "consent_date",
    }
    assert report["created"] == 1
    [household] = village_households(db, world.village_b)
    assert household["seq"] == 42 and household["code"].startswith(f"{world.village_b}-0042-")
    assert household["consent_given"] == 1 and household["consent_date"] == "2026-03-05"
    assert revealed(app, household["code"], "phone") == someone["phone"]
    assert revealed(app, household["code"], "id_number") == someone["id_number"]


def test_the_declared_aliases_all_map():
    for name, aliases in HEADERS.items():
        for alias in aliases:
            assert _field_of(alias) == name, alias


# --- valid rows -------------------------------------------------------------------------------


def test_valid_rows_become_households_with_encrypted_personal_data(app, db, client, world):
    someone = {**person(11), "phone": "13655559876", "head_name": "欧阳春晓"}

    report = run_import(app, csv_bytes(HEADER, as_cells([someone])))

    assert report["created"] == 1
    [_, household] = village_households(db, world.village_a)
    assert household["seq"] == 2  # the next free number after the seeded household 1
    assert household["head_name_masked"] == "欧**晓"
    assert household["phone_masked"] == "136********"
    assert household["bank_account_masked"].endswith(someone["bank_account"][-4:])
    assert household["id_number_index"] and household["pii_fingerprint"]
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = b"".join(
        path.read_bytes() for path in Path(app.config["DATABASE"]).parent.glob("sipang.db*")
    )
    for secret in (
        someone["phone"],
        someone["id_number"],
        someone["bank_account"],
        someone["head_name"],
        someone["door_number"],
    ):
        assert secret.encode() not in stored, secret
    response = client.get(
        f"/api/v1/villages/{world.village_a}/households", headers=bearer(world.tokens["admin"])
    )
    assert response.status_code == 200
    listed = response.get_json()["households"][1]
    assert listed["head_name"] == "欧**晓" and listed["phone"] == "136********"
    assert someone["phone"] not in response.get_data(as_text=True)


def test_household_numbers_given_are_honoured_and_missing_ones_take_the_next_free(app, db, world):
    rows = [
        [*as_cells([person(1)])[0], "3"],
        [*as_cells([person(2)])[0], ""],
        [*as_cells([person(3)])[0], "0042"],
        [*as_cells([person(4)])[0], ""],
    ]

    report = run_import(app, csv_bytes([*HEADER, "户号"], rows))

    assert report["created"] == 4
    seqs = {
        revealed(app, row["code"], "head_name"): row["seq"]
        for row in village_households(db, world.village_a)
    }
    assert seqs == {
        "张三丰": 1,
        person(1)["head_name"]: 3,
        person(2)["head_name"]: 2,
        person(3)["head_name"]: 42,
        person(4)["head_name"]: 4,
    }


@pytest.mark.parametrize("with_ids", [True, False], ids=["with ID numbers", "names only"])
def test_a_blank_number_never_takes_a_number_given_later_in_the_file(app, db, world, with_ids):
    # village A holds household 1, so a blank row would take 2 — but row 3 asks for 2
    header, rows = (
        [*HEADER, "户号"],
        [
            [*as_cells([person(1)])[0], ""],
            [*as_cells([person(2)])[0], "2"],
        ],
    )
    if not with_ids:
        header, rows = ["户主姓名", "户号"], [[row[0], row[-1]] for row in rows]

    report = run_import(app, csv_bytes(header, rows))

    assert report["created"] == 2
    seqs = {
        revealed(app, row["code"], "head_name"): row["seq"]
        for row in village_households(db, world.village_a)
    }
    assert seqs == {"张三丰": 1, person(2)["head_name"]: 2, person(1)["head_name"]: 3}


@pytest.mark.parametrize("with_ids", [True, False], ids=["with ID numbers", "names only"])
def test_a_number_given_with_the_village_code_and_without_is_a_duplicate(app, db, world, with_ids):
    before = counts(db)
    header, rows = (
        [*HEADER, "户号", "村代码"],
        [
            [*as_cells([person(1)])[0], "7", ""],
            [*as_cells([person(2)])[0], "7", world.village_a],
        ],
    )
    if not with_ids:
        header, rows = ["户主姓名", "户号", "村代码"], [[row[0], *row[-2:]] for row in rows]

    problems = problems_of(app, csv_bytes(header, rows))

    assert [(p["row"], p["field"]) for p in problems] == [(3, "seq")]
    assert "第 2 行" in problems[0]["problem"]
    assert counts(db) == before


def test_two_rows_of_one_household_are_refused(app, db, world):
    """One row matches the seeded household by ID number, another by its household number."""
    before = counts(db)
    rows = [
        ["张三丰", PHONE, ID_NUMBER, BANK, "", ""],
        ["张三", "13700009999", "", "", "", "1"],
    ]

    problems = problems_of(app, csv_bytes([*HEADER, "户号"], rows))

    assert [(p["row"], p["field"]) for p in problems] == [(3, "seq")]
    assert "与第 2 行是同一户" in problems[0]["problem"]
    assert counts(db) == before


@pytest.mark.parametrize(
    "typed",
    ["13912345678", "139 1234 5678", "139-1234-5678", "+8613912345678", "+86 139 1234 5678"],
)
def test_phones_are_read_as_people_type_them(app, db, world, typed):
    report = run_import(app, csv_bytes(["户主姓名", "联系电话"], [["王五", typed]]))

    assert report["created"] == 1
    household = village_households(db, world.village_a)[-1]
    assert revealed(app, household["code"], "phone") == "13912345678"


# --- all rows or none ---------------------------------------------------------------------------


BAD_ROWS = {
    "bad phone": ("联系电话", "1371234567", "phone"),
    "landline": ("联系电话", "079112345678", "phone"),
    "bad ID checksum": ("身份证号", person(4)["id_number"][:-1] + "0", "id_number"),
    "short ID": ("身份证号", "36042319600101004", "id_number"),
    "bad Luhn": ("银行卡号", person(4)["bank_account"][:-1] + "0", "bank_account"),
    "missing name": ("户主姓名", "", "head_name"),
    "blank name": ("户主姓名", "   ", "head_name"),
    "formula in a cell": ("门牌号", "=SUM(A1)", "door_number"),
    "formula as name": ("户主姓名", '=HYPERLINK("http://x.cn","点我")', "head_name"),
    "household number 0": ("户号", "0", "seq"),
    "household number 10000": ("户号", "10000", "seq"),
    "household number with letters": ("户号", "12a", "seq"),
    "bad village code": ("村代码", "3604231012", "village_code"),
    "bad consent date": ("同意日期", "2026-02-30", "consent_date"),
    "duplicate ID within the file": ("身份证号", person(2)["id_number"], "id_number"),
    "duplicate household number within the file": ("户号", "12", "seq"),
    "ID registered in another village": ("身份证号", ID_NUMBER, "id_number"),
    "other county": ("村代码", "360424100201", "village_code"),
    "unknown village": ("村代码", "360423999999", "village_code"),
}
FULL_HEADER = [
    "户主姓名",
    "联系电话",
    "身份证号",
    "银行卡号",
    "门牌号",
    "户号",
    "村代码",
    "同意日期",
]


def full_rows(village_code: str) -> list[dict[str, str]]:
    """Five good rows (spreadsheet rows 2–6) for the village."""
    rows = []
    for n in range(1, 6):
        p = person(n)
        rows.append(
            {
                "户主姓名": p["head_name"],
                "联系电话": p["phone"],
                "身份证号": p["id_number"],
                "银行卡号": p["bank_account"],
                "门牌号": p["door_number"],
                "户号": str(10 + n),
                "村代码": village_code,
                "同意日期": "2026-03-01",
            }
        )
    return rows


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_one_bad_row_imports_nothing_and_names_the_row_and_field(app, db, world, case):
    column, value, field = BAD_ROWS[case]
    rows = full_rows(world.village_b)
    rows[2] = rows[2] | {column: value}  # spreadsheet row 4
    data = csv_bytes(FULL_HEADER, [[row[h] for h in FULL_HEADER] for row in rows])
    before = counts(db)

    problems = problems_of(app, data, village_code=world.village_b)

    assert {"row": 4, "field": field} in [{"row": p["row"], "field": p["field"]} for p in problems]
    assert all(p["row"] == 4 for p in problems), problems
    assert all(p["problem"] for p in problems)
    assert counts(db) == before
    assert village_households(db, world.village_b) == []


def test_the_good_rows_alone_import(app, db, world):
    rows = full_rows(world.village_b)
    data = csv_bytes(FULL_HEADER, [[row[h] for h in FULL_HEADER] for row in rows])

    report = run_import(app, data, village_code=world.village_b)

    assert report["created"] == 5
    assert [row["seq"] for row in village_households(db, world.village_b)] == [11, 12, 13, 14, 15]


def test_an_xlsx_formula_cell_imports_nothing(app, db, world):
    rows = as_cells([person(1), person(2), person(3)])
    rows[1][4] = "=CONCATENATE(A2,B2)"  # openpyxl stores it as a formula cell
    data = xlsx_bytes(HEADER, rows)
    before = counts(db)

    problems = problems_of(app, data, "roster.xlsx")

    assert [(p["row"], p["field"]) for p in problems] == [(3, "door_number")]
    assert "公式" in problems[0]["problem"]
    assert counts(db) == before


def test_an_id_number_typed_as_a_number_in_excel_imports_nothing(app, db, world):
    rows = as_cells([person(1), person(2), person(3), person(4)])
    rows[3][2] = float(person(4)["id_number"])  # Excel keeps 15 significant digits
    data = xlsx_bytes(HEADER, rows)
    before = counts(db)

    problems = problems_of(app, data, "roster.xlsx")

    assert [(p["row"], p["field"]) for p in problems] == [(5, "id_number")]
    assert "15" in problems[0]["problem"]
    assert counts(db) == before


def test_numbers_excel_holds_exactly_are_read_as_text(app, db, world):
    someone = person(5)
    data = xlsx_bytes(
        [*HEADER, "户号"],
        [[someone["head_name"], int(someone["phone"]), someone["id_number"], None, None, 8.0]],
    )

    report = run_import(app, data, "roster.xlsx")

    assert report["created"] == 1
    household = village_households(db, world.village_a)[-1]
    assert household["seq"] == 8
    assert revealed(app, household["code"], "phone") == someone["phone"]


@pytest.mark.parametrize(
    "filename,data,row,field,words",
    [
        ("roster.csv", b"", 0, "(file)", "文件是空的"),
        ("roster.csv", b"  \r\n\r\n ", 0, "(file)", "文件是空的"),
        ("roster.xlsx", b"", 0, "(file)", "文件是空的"),
        ("roster.csv", "户主姓名,联系电话\r\n".encode(), 0, "(file)", "没有农户"),
        ("roster.csv", "户主姓名,联系电话\r\n,\r\n".encode(), 0, "(file)", "没有农户"),
        ("roster.xlsx", xlsx_bytes(HEADER, []), 0, "(file)", "没有农户"),
        ("roster.csv", "序号,联系电话\r\n1,13700000001\r\n".encode(), 1, "(header)", "户主姓名"),
        ("roster.xlsx", b"PK\x03\x04" + bytes(range(256)) * 8, 0, "(file)", "XLSX"),
        ("roster.xlsx", "户主姓名\r\n王五\r\n".encode(), 0, "(file)", "XLSX"),
        ("roster.csv", bytes(range(128, 256)) * 16, 0, "(file)", "UTF-8"),
    ],
    ids=[
        "empty",
        "whitespace",
        "empty xlsx",
        "header only",
        "header and blank row",
        "xlsx header only",
        "no name column",
        "garbage xlsx",
        "csv named xlsx",
        "binary csv",
    ],
)
def test_unreadable_files_are_reported_and_import_nothing(
    app, db, filename, data, row, field, words
):
    before = counts(db)

    problems = problems_of(app, data, filename)

    assert [(p["row"], p["field"]) for p in problems] == [(row, field)]
    assert words in problems[0]["problem"]
    assert counts(db) == before


def test_a_field_too_large_for_the_csv_reader_is_reported(app, db):
    before = counts(db)
    data = csv_bytes(HEADER, [as_cells([person(1)])[0], ["王五", "", "", "", "号" * 200_000]])

    problems = problems_of(app, data)

    assert [(p["row"], p["field"]) for p in problems] == [(3, "(file)")]
    assert "内容过长" in problems[0]["problem"]
    assert counts(db) == before


# --- re-import ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,cells",
    [
        (HEADER, as_cells([person(n) for n in range(1, 6)])),
        (
            ["户号", "户主姓名", "联系电话"],
            [[str(n + 1), f"王{n}", f"1370000{n:04d}"] for n in (1, 2)],
        ),
        (["户主姓名", "联系电话"], [[f"王{n}", f"1370000{n:04d}"] for n in range(1, 4)]),
        (["户主姓名"], [["王五"], ["王五"]]),  # two households of the same name, nothing else
    ],
    ids=["by ID number", "by household number", "names and phones only", "names only"],
)
def test_importing_the_same_roster_twice_leaves_the_same_households(app, db, header, cells):
    data = csv_bytes(header, cells)
    first = run_import(app, data)
    after_first = list(db.query("SELECT * FROM households ORDER BY id"))

    second = run_import(app, data)

    assert first["created"] == len(cells)
    assert second == first | {"created": 0, "updated": 0, "unchanged": len(cells)}
    assert list(db.query("SELECT * FROM households ORDER BY id")) == after_first
    assert db["roster_imports"].count == 2


def test_editing_one_phone_updates_that_household_only(app, db, world):
    people = [person(n) for n in range(1, 6)]
    run_import(app, roster_xlsx(people), "roster.xlsx")
    before = {row["id"]: row for row in village_households(db, world.village_a)}
    people[3] = people[3] | {"phone": "18800001111"}

    report = run_import(app, roster_xlsx(people), "roster.xlsx")

    assert report | {"columns": None} == {
        "rows": 5,
        "created": 0,
        "updated": 1,
        "unchanged": 4,
        "columns": None,
    }
    after = {row["id"]: row for row in village_households(db, world.village_a)}
    assert after.keys() == before.keys()
    changed = [id_ for id_ in after if after[id_] != before[id_]]
    assert len(changed) == 1
    row = after[changed[0]]
    assert row["code"] == before[changed[0]]["code"]
    assert row["phone_masked"] == "188********"
    assert revealed(app, row["code"], "phone") == "18800001111"
    assert revealed(app, row["code"], "id_number") == people[3]["id_number"]


def demo_roster(instance: Path, out: Path) -> Path:
    """The demo village's roster as its committee would keep it, rebuilt from the database
    (the demo leaves no plaintext roster behind)."""
    from server import pii
    from server.households import pii_context

    app = create_app({"INSTANCE_PATH": str(instance)})
    people = []
    with app.app_context():
        rows = connect(instance / "sipang.db").query(
            "SELECT h.* FROM households h JOIN villages v ON v.id = h.village_id "
            "WHERE v.code = ? ORDER BY h.seq",
            [DEMO_VILLAGE],
        )
        for row in rows:
            person = {"seq": row["seq"], "consent_date": row["consent_date"]}
            for field in ("head_name", "phone", "id_number", "bank_account", "door_number"):
                person[field] = pii.decrypt(row[f"{field}_enc"], pii_context(row["code"], field))
            people.append(person)
    out.write_bytes(roster_xlsx(people))
    return out


def test_importing_the_demo_roster_again_changes_nothing(demo_instance, tmp_path):
    # the demo leaves no plaintext roster in the instance folder
    assert [p.name for p in demo_instance.rglob("*") if p.suffix in (".xlsx", ".csv")] == []
    roster = demo_roster(demo_instance, tmp_path / f"{DEMO_VILLAGE}.xlsx")
    database = connect(demo_instance / "sipang.db")
    try:
        before = list(database.query("SELECT * FROM households ORDER BY id"))
        count = len([row for row in before if row["code"].startswith(DEMO_VILLAGE)])

        result = CliRunner().invoke(
            main,
            [
                "roster",
                "import",
                str(roster),
                "--village",
                DEMO_VILLAGE,
                "--instance",
                str(demo_instance),
            ],
        )

        assert result.exit_code == 0, result.output
        assert 44 <= count <= 56
        assert f"Imported {count} rows: 0 new households, 0 updated, {count} unchanged." in (
            result.output
        )
        assert list(database.query("SELECT * FROM households ORDER BY id")) == before
    finally:
        database.close()


# --- other villages of the county ---------------------------------------------------------------


def test_a_village_code_column_routes_rows_within_the_county(app, db, world):
    rows = [
        [person(1)["head_name"], world.village_a],
        [person(2)["head_name"], world.village_b],
        [person(3)["head_name"], ""],
        [person(4)["head_name"], world.village_b],
    ]

    report = run_import(app, csv_bytes(["户主姓名", "村代码"], rows))

    assert report["created"] == 4
    assert [row["seq"] for row in village_households(db, world.village_a)] == [1, 2, 3]
    assert [row["seq"] for row in village_households(db, world.village_b)] == [1, 2]
    assert village_households(db, world.village_b)[0]["code"].startswith(world.village_b)


def test_a_village_of_another_county_is_refused(app, db, world):
    before = counts(db)
    rows = [[person(1)["head_name"], world.village_b], [person(2)["head_name"], world.village_c]]

    problems = problems_of(app, csv_bytes(["户主姓名", "村代码"], rows))

    assert [(p["row"], p["field"]) for p in problems] == [(3, "village_code")]
    assert world.village_c in problems[0]["problem"]
    assert counts(db) == before


# --- HTTP ---------------------------------------------------------------------------------------


def upload(client, village_code: str, data: bytes | None, filename="roster.csv", token=None):
    form = {} if data is None else {"file": (io.BytesIO(data), filename)}
    return client.post(
        f"/api/v1/villages/{village_code}/roster",
        data=form,
        content_type="multipart/form-data",
        headers=bearer(token),
    )


def test_an_admin_uploads_a_roster(client, db, world):
    data = roster_xlsx([person(n) for n in range(1, 4)])

    response = upload(client, world.village_a, data, "花名册.xlsx", world.tokens["admin"])

    assert response.status_code == 201, response.get_json()
    assert response.get_json() | {"columns": None} == {
        "rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "columns": None,
    }
    assert len(village_households(db, world.village_a)) == 4
    [imported] = db["roster_imports"].rows
    assert imported["imported_by"] == world.user_ids["admin"] and imported["created"] == 3
    entry = list(db.query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1"))[0]
    assert entry["action"] == "roster.imported"
    assert entry["actor"] == f"user:{world.user_ids['admin']}"


def test_a_bad_upload_is_422_with_every_problem_and_changes_nothing(client, db, world):
    rows = as_cells([person(n) for n in range(1, 5)])
    rows[1][1] = "12345"
    rows[3][3] = "6222020200112345678"
    before = counts(db)

    response = upload(client, world.village_a, csv_bytes(HEADER, rows), token=world.tokens["admin"])

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "roster_rejected"
    assert [(d["row"], d["field"]) for d in error["details"]] == [
        (3, "phone"),
        (5, "bank_account"),
    ]
    assert all(set(d) == {"row", "field", "problem"} for d in error["details"])
    assert counts(db) == before


def test_an_upload_without_a_file_is_422(client, db, world):
    before = counts(db)

    response = upload(client, world.village_a, None, token=world.tokens["admin"])

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_failed"
    assert counts(db) == before


@pytest.mark.parametrize("role", ["bureau", "verifier", "finance", "measurer"])
def test_only_an_admin_uploads_a_roster(client, db, world, role):
    before = counts(db)

    response = upload(
        client, world.village_a, roster_xlsx([person(1)]), "r.xlsx", world.tokens[role]
    )

    assert response.status_code == 403
    assert counts(db) == before


def test_an_anonymous_upload_is_401(client, db, world):
    response = client.post(
        f"/api/v1/villages/{world.village_a}/roster",
        data={"file": (io.BytesIO(roster_xlsx([person(1)])), "r.xlsx")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 401


def padded_roster(size: int) -> bytes:
    """A roster with a long 备注 column (ignored), about `size` bytes."""
    note = "村委会核实，无异议。" * 60
    rows, total, n = [], 0, 0
    while total < size:
        n += 1
        row = [f"王{n}", f"170{n:08d}", note]
        rows.append(row)
        total += len(",".join(row).encode()) + 2
    return csv_bytes(["户主姓名", "联系电话", "备注"], rows)


def test_a_5_mb_roster_is_accepted(client, db, world, app):
    data = padded_roster(5 * 1024 * 1024)
    assert len(data) > 5 * 1024 * 1024 > app.config["MAX_CONTENT_LENGTH"]

    response = upload(client, world.village_b, data, token=world.tokens["admin"])

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["created"] == len(village_households(db, world.village_b))


def test_other_routes_keep_the_small_body_limit(client, world):
    response = client.post(
        f"/api/v1/villages/{world.village_a}/households",
        data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        content_type="application/json",
        headers=bearer(world.tokens["admin"]),
    )

    assert response.status_code == 413


def test_a_roster_over_max_roster_bytes_is_413(app, instance, world):
    small = create_app({"INSTANCE_PATH": str(instance), "MAX_ROSTER_BYTES": 20_000})
    data = padded_roster(40_000)
    database = connect(small.config["DATABASE"])
    before = counts(database)

    response = upload(small.test_client(), world.village_b, data, token=world.tokens["admin"])

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert counts(database) == before
    database.close()


# --- command line -------------------------------------------------------------------------------


def test_the_command_imports_a_roster_and_prints_counts(app, instance, db, world, tmp_path):
    path = tmp_path / "花名册.csv"
    path.write_bytes(csv_bytes(HEADER, as_cells([person(1), person(2)]), "gbk"))
    args = [
        "roster",
        "import",
        str(path),
        "--village",
        world.village_b,
        "--instance",
        str(instance),
    ]

    first = CliRunner().invoke(main, args)
    second = CliRunner().invoke(main, args)

    assert first.exit_code == 0, first.output
    assert "Imported 2 rows: 2 new households, 0 updated, 0 unchanged." in first.output
    assert "Imported 2 rows: 0 new households, 0 updated, 2 unchanged." in second.output
    assert len(village_households(db, world.village_b)) == 2


def test_the_command_refuses_a_bad_roster_naming_row_and_field(app, instance, db, world, tmp_path):
    path = tmp_path / "roster.csv"
    rows = as_cells([person(1), person(2), person(3)])
    rows[2][2] = "36042319600101003X"  # wrong check character
    path.write_bytes(csv_bytes(HEADER, rows))
    before = counts(db)

    result = CliRunner().invoke(
        main,
        ["roster", "import", str(path), "--village", world.village_b, "--instance", str(instance)],
    )

    assert result.exit_code == 1
    assert "Nothing was imported: 1 problem(s) to fix." in result.output
    assert "row 4" in result.output and "id_number" in result.output
    assert counts(db) == before


def test_the_command_refuses_an_unknown_village(app, instance, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes(csv_bytes(HEADER, as_cells([person(1)])))

    result = CliRunner().invoke(
        main,
        ["roster", "import", str(path), "--village", "360423999999", "--instance", str(instance)],
    )

    assert result.exit_code == 1
    assert "No village 360423999999" in result.output


# --- 100,000 rows -------------------------------------------------------------------------------

BIG_ROWS = 100_000
BIG_VILLAGES = [f"360423300{n:03d}" for n in range(1, 21)]


def big_roster(bad_line: int | None = None) -> bytes:
    """100,000 households over 20 villages (5,000 each), written cheaply."""
    lines = ["户主姓名,联系电话,村代码"]
    for n in range(BIG_ROWS):
        phone = f"170{n:08d}" if n + 2 != bad_line else "170123"
        lines.append(f"户{n},{phone},{BIG_VILLAGES[n % 20]}")
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def big_county(app, world):
    with app.app_context():
        for code in BIG_VILLAGES:
            villages.create_village(get_db(), code, f"{code[-2:]}号村")
    return app


@pytest.mark.slow  # 100,000 rows, twice
@pytest.mark.parametrize("bad_line", [None, 77_777], ids=["all good", "one bad row"])
def test_a_100000_row_roster_imports_all_or_nothing(big_county, db, world, bad_line):
    data = big_roster(bad_line)
    before = counts(db)

    if bad_line is None:
        report = run_import(big_county, data, "big.csv", world.village_a)
        assert report["rows"] == report["created"] == BIG_ROWS
        assert db["households"].count == before["households"] + BIG_ROWS
        for code in (BIG_VILLAGES[0], BIG_VILLAGES[-1]):
            seqs = [row["seq"] for row in village_households(db, code)]
            assert seqs == list(range(1, 5001))
    else:
        problems = problems_of(big_county, data, "big.csv", world.village_a)
        assert [(p["row"], p["field"]) for p in problems] == [(bad_line, "phone")]
        assert counts(db) == before


def test_a_title_line_above_the_header_is_skipped():
    text = "长水村农户花名册（2026年）\n\n户主姓名,联系电话\n张三,13900001111\n李四,139\n"
    roster = read_roster(text.encode("gbk"), "titled.csv")
    assert [row.head_name for row in roster.rows] == ["张三"]
    assert roster.problems == [{"row": 5, "field": "phone", "problem": "不是 11 位手机号码"}]
