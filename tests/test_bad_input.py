"""Bad input gets a clear 4xx in the one error shape and changes nothing in the database."""

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import BANK, ID_NUMBER, PASSWORD, PHONE, bearer

from server import create_app, households
from server.db import get_db
from server.households import code_secret
from village_kits import codes

# Each write route with a body it accepts; the bad cases below spoil one thing at a time.
ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "user": (
        "/api/v1/users",
        {
            "username": "finance.li",
            "display_name": "李会计",
            "role": "finance",
            "password": PASSWORD,
        },
    ),
    "village": (
        "/api/v1/villages",
        {"code": "360423101299", "name": "新村", "township": "宋溪镇", "latitude": 29.2},
    ),
    "county": ("/api/v1/counties", {"code": "330327", "name": "苍南县"}),
    "household": (
        "/api/v1/villages/360423101201/households",
        {"head_name": "王五", "phone": "13800001234", "consent_date": "2026-03-01"},
    ),
    "enrolment_code": ("/api/v1/devices/enrolment-codes", {"measurer_id": 0}),
    "token": ("/api/v1/auth/tokens", {"username": "admin", "password": PASSWORD}),
}


def valid_body(route: str, world) -> dict[str, Any]:
    body = dict(ROUTES[route][1])
    if route == "enrolment_code":
        body["measurer_id"] = world.measurer_id
    return body


def snapshot(database_path: str) -> dict[str, list[tuple]]:
    """The schema and every row of every table (a device's last-seen time aside: any request
    from a phone sets it)."""
    conn = sqlite3.connect(database_path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        rows = {
            table: conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
            for table in tables
        }
        rows["sqlite_master"] = conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
        rows["devices"] = conn.execute(
            "SELECT id, user_id, village_id, label, enrolled_at, revoked_at FROM devices"
        ).fetchall()
        return rows
    finally:
        conn.close()


@pytest.fixture
def unchanged(app):
    """Call at the end of a test: asserts the database holds exactly what it held at the start."""
    before = snapshot(app.config["DATABASE"])
    assert before["audit_log"], "the seeded world should have audit entries to compare"

    def check() -> None:
        assert snapshot(app.config["DATABASE"]) == before

    return check


def error_of(response, status: int, code: str) -> dict[str, Any]:
    """The error object of a response in the one error shape, after checking status and code."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    assert list(response.json) == ["error"]
    error = response.json["error"]
    assert set(error) <= {"status", "code", "message", "details"}
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def fields_named(error: dict[str, Any]) -> list[str]:
    return [detail["field"] for detail in error["details"]]


def post_raw(client, path: str, data: bytes | str, content_type: str, token: str):
    return client.post(path, data=data, content_type=content_type, headers=bearer(token))


@pytest.mark.parametrize("route", ROUTES)
def test_valid_body_is_accepted(client, world, route):
    path, _ = ROUTES[route]
    response = client.post(
        path, json=valid_body(route, world), headers=bearer(world.tokens["admin"])
    )
    assert response.status_code == 201, response.get_data(as_text=True)


MALFORMED_JSON = {
    "truncated": b'{"name": "x"',
    "single_quotes": b"{'name': 'x'}",
    "trailing_comma": b'{"name": "x",}',
    "empty": b"",
    "not_utf8": b'{"name": "\xff\xfe"}',
    "nan": b'{"latitude": NaN, "measurer_id": NaN}',
    "infinity": b'{"latitude": Infinity}',
}


@pytest.mark.parametrize("body", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
@pytest.mark.parametrize("route", ROUTES)
def test_malformed_json_is_refused(client, world, unchanged, route, body):
    response = post_raw(client, ROUTES[route][0], body, "application/json", world.tokens["admin"])
    error_of(response, 400, "invalid_json")
    unchanged()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
@pytest.mark.parametrize("route", ROUTES)
def test_non_json_content_type_is_refused(client, world, unchanged, route, content_type):
    body = json.dumps(valid_body(route, world))
    response = post_raw(client, ROUTES[route][0], body, content_type, world.tokens["admin"])
    error_of(response, 415, "unsupported_media_type")
    unchanged()


WRONG_TYPES = [
    ("user", "display_name", 42),
    ("user", "role", "king"),
    ("user", "password", ["correct", "horse"]),
    ("village", "latitude", "29.2"),
    ("village", "name", {"zh": "新村"}),
    ("village", "code", 360423101299),
    ("county", "code", 330327),
    ("county", "name", None),
    ("household", "head_name", None),
    ("household", "phone", 13800001234),
    ("household", "consent_date", True),
    ("enrolment_code", "measurer_id", "2"),
    ("enrolment_code", "measurer_id", True),
    ("enrolment_code", "measurer_id", 1.5),
    ("token", "password", 123),
    ("token", "username", ["admin"]),
]


@pytest.mark.parametrize(("route", "field", "value"), WRONG_TYPES)
def test_wrong_type_names_the_field(client, world, unchanged, route, field, value):
    body = valid_body(route, world) | {field: value}
    response = client.post(ROUTES[route][0], json=body, headers=bearer(world.tokens["admin"]))
    error = error_of(response, 422, "validation_failed")
    assert fields_named(error) == [field]
    unchanged()


BAD_VALUES = [
    ("user", "username", "a b"),
    ("user", "username", "newuser\n"),  # a trailing newline slips past Python's `$`
    ("user", "password", "short"),
    ("user", "display_name", ""),
    ("user", "display_name", "x" * 101),
    ("village", "code", "36042310129"),
    ("village", "code", "360423101299\n"),
    ("village", "code", "３６０４２３１０１２９９"),  # full-width digits
    ("village", "latitude", 91),
    ("village", "longitude", -180.5),
    ("county", "code", "330327\n"),
    ("county", "code", "33032"),
    ("household", "head_name", ""),
    ("household", "head_name", "名" * 51),
    ("household", "consent_date", "2026-02-30"),
    ("household", "consent_date", "2026-03-01\n"),
    ("household", "consent_date", "２０２６-０３-０１"),
    ("enrolment_code", "measurer_id", 0),
    ("enrolment_code", "measurer_id", 10**30),  # too big for an SQLite integer
    ("token", "username", ""),
    ("token", "password", "x" * 201),
]


@pytest.mark.parametrize(("route", "field", "value"), BAD_VALUES)
def test_out_of_range_value_names_the_field(client, world, unchanged, route, field, value):
    body = valid_body(route, world) | {field: value}
    response = client.post(ROUTES[route][0], json=body, headers=bearer(world.tokens["admin"]))
    error = error_of(response, 422, "validation_failed")
    assert set(fields_named(error)) == {field}
    unchanged()


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("user", "display_name"),
        ("village", "name"),
        ("county", "name"),
        ("household", "head_name"),
        ("token", "username"),
    ],
)
def test_lone_surrogate_in_a_string_is_refused(client, world, unchanged, route, field):
    raw = json.dumps(valid_body(route, world) | {field: "SURROGATE"}).replace(
        "SURROGATE", "\\ud800x"
    )
    response = post_raw(client, ROUTES[route][0], raw, "application/json", world.tokens["admin"])
    error = error_of(response, 422, "validation_failed")
    assert fields_named(error) == [field]
    unchanged()


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" * 400])
def test_number_too_large_to_hold_is_refused(client, world, unchanged, number):
    raw = '{"code": "360423101299", "name": "新村", "latitude": ' + number + "}"
    response = post_raw(client, "/api/v1/villages", raw, "application/json", world.tokens["admin"])
    error = error_of(response, 422, "validation_failed")
    assert set(fields_named(error)) == {"latitude"}
    unchanged()


REQUIRED = {
    "user": ["username", "display_name", "role"],
    "village": ["code", "name"],
    "county": ["code", "name"],
    "household": ["head_name"],
    "enrolment_code": ["measurer_id"],
    "token": ["username", "password"],
}


@pytest.mark.parametrize(
    ("route", "field"), [(route, field) for route, fields in REQUIRED.items() for field in fields]
)
def test_missing_field_is_named(client, world, unchanged, route, field):
    body = valid_body(route, world)
    del body[field]
    response = client.post(ROUTES[route][0], json=body, headers=bearer(world.tokens["admin"]))
    error = error_of(response, 422, "validation_failed")
    assert [detail["problem"] for detail in error["details"]] == [
        f"'{field}' is a required property"
    ]
    unchanged()


@pytest.mark.parametrize("route", ROUTES)
def test_empty_object_names_every_missing_field(client, world, unchanged, route):
    response = client.post(ROUTES[route][0], json={}, headers=bearer(world.tokens["admin"]))
    error = error_of(response, 422, "validation_failed")
    problems = " ".join(detail["problem"] for detail in error["details"])
    for field in REQUIRED[route]:
        assert f"'{field}' is a required property" in problems
    unchanged()


@pytest.mark.parametrize("extra", ["is_admin", "id", "role_override"])
@pytest.mark.parametrize("route", ROUTES)
def test_extra_field_is_refused(client, world, unchanged, route, extra):
    body = valid_body(route, world) | {extra: True}
    response = client.post(ROUTES[route][0], json=body, headers=bearer(world.tokens["admin"]))
    error = error_of(response, 422, "validation_failed")
    assert len(error["details"]) == 1
    assert f"'{extra}' was unexpected" in error["details"][0]["problem"]
    unchanged()


@pytest.mark.parametrize(
    "body", [None, [], "text", 42, True], ids=["null", "array", "string", "number", "bool"]
)
@pytest.mark.parametrize("route", ROUTES)
def test_body_that_is_not_an_object_is_refused(client, world, unchanged, route, body):
    raw = json.dumps(body)
    response = post_raw(client, ROUTES[route][0], raw, "application/json", world.tokens["admin"])
    error = error_of(response, 422, "validation_failed")
    assert fields_named(error) == ["(body)"]
    unchanged()


@pytest.fixture
def small_body_app(app, instance: Path):
    """A second app on the same instance (same database and keys) that takes at most 2,000 B."""
    return create_app({"INSTANCE_PATH": str(instance), "MAX_CONTENT_LENGTH": 2000})


@pytest.mark.parametrize("route", ROUTES)
def test_body_over_the_size_limit_is_refused(small_body_app, world, unchanged, route):
    client = small_body_app.test_client()
    path, _ = ROUTES[route]
    fits = client.post(path, json={"padding": "x" * 1000}, headers=bearer(world.tokens["admin"]))
    assert fits.status_code == 422  # under the limit the body is read and judged
    body = valid_body(route, world) | {"padding": "x" * 2000}
    response = client.post(path, json=body, headers=bearer(world.tokens["admin"]))
    error_of(response, 413, "payload_too_large")
    unchanged()


def test_body_over_a_mebibyte_is_refused_by_default(client, world, unchanged):
    body = {"username": "big", "display_name": "名" * 400_000, "role": "finance"}
    response = client.post("/api/v1/users", json=body, headers=bearer(world.tokens["admin"]))
    error_of(response, 413, "payload_too_large")
    unchanged()


def household_code(app, village_code: str, seq: int) -> str:
    """A household code with correct check characters (registered or not)."""
    with app.app_context():
        return codes.make_code(code_secret(village_code[:6]), village_code, seq)


def forge(code: str, position: int = -1) -> str:
    """The same code with one check character changed (only one check is right)."""
    chars = list(code)
    chars[position] = "A" if chars[position] != "A" else "B"
    return "".join(chars)


def test_household_in_an_unknown_village_is_not_found(client, world, unchanged):
    for village_code in ("360423101999", "999999999999", "not-a-village"):
        response = client.post(
            f"/api/v1/villages/{village_code}/households",
            json=valid_body("household", world),
            headers=bearer(world.tokens["admin"]),
        )
        error_of(response, 404, "not_found")
    unchanged()


def test_households_of_an_unknown_village_are_not_found(client, world, unchanged):
    response = client.get(
        "/api/v1/villages/360423101999/households", headers=bearer(world.tokens["admin"])
    )
    error_of(response, 404, "not_found")
    unchanged()


@pytest.mark.parametrize(
    "make_code",
    [
        lambda app, world: household_code(app, world.village_a, 9999),  # valid check, no row
        lambda app, world: household_code(app, "360423101999", 1),  # unknown village
        lambda app, world: forge(world.household_a),  # one check character changed
        lambda app, world: forge(world.household_a, -2),
        lambda app, world: world.household_a.replace("-0001-", "-0002-"),  # other seq, old check
        lambda app, world: "360423101201-1-K7",
        lambda app, world: "not-a-code",
    ],
    ids=[
        "unregistered",
        "unknown_village",
        "forged_last",
        "forged_first",
        "seq_changed",
        "short",
        "junk",
    ],
)
def test_unknown_or_forged_household_code_is_not_found(app, client, world, unchanged, make_code):
    code = make_code(app, world)
    assert code != world.household_a
    response = client.get(f"/api/v1/households/{code}", headers=bearer(world.tokens["admin"]))
    error_of(response, 404, "not_found")
    unchanged()


def test_household_code_is_read_case_insensitively(client, world):
    response = client.get(
        f"/api/v1/households/{world.household_a.lower()}", headers=bearer(world.tokens["admin"])
    )
    assert response.status_code == 200
    assert response.json["household"]["code"] == world.household_a


def test_enrolment_code_for_an_unknown_user_is_not_found(client, world, unchanged):
    response = client.post(
        "/api/v1/devices/enrolment-codes",
        json={"measurer_id": 999_999},
        headers=bearer(world.tokens["admin"]),
    )
    error_of(response, 404, "not_found")
    unchanged()


def test_enrolment_code_for_a_non_measurer_is_refused(client, world, unchanged):
    response = client.post(
        "/api/v1/devices/enrolment-codes",
        json={"measurer_id": world.user_ids["finance"]},
        headers=bearer(world.tokens["admin"]),
    )
    error_of(response, 422, "validation_failed")
    unchanged()


def test_user_id_too_big_for_sqlite_is_not_found(client, world, unchanged):
    response = client.post(f"/api/v1/users/{10**30}/disable", headers=bearer(world.tokens["admin"]))
    error_of(response, 404, "not_found")
    unchanged()


@pytest.mark.parametrize("username", ["finance", "FINANCE", "Finance"])
def test_duplicate_username_conflicts(client, world, unchanged, username):
    body = valid_body("user", world) | {"username": username}
    response = client.post("/api/v1/users", json=body, headers=bearer(world.tokens["admin"]))
    error_of(response, 409, "conflict")
    unchanged()


@pytest.mark.parametrize(
    "id_number",
    [ID_NUMBER, ID_NUMBER.lower(), f"{ID_NUMBER[:6]} {ID_NUMBER[6:14]} {ID_NUMBER[14:]}"],
    ids=["same", "lower_case_x", "spaced"],
)
def test_duplicate_id_number_conflicts(client, world, unchanged, id_number):
    body = {"head_name": "张三丰", "id_number": id_number}
    response = client.post(
        f"/api/v1/villages/{world.village_b}/households",
        json=body,
        headers=bearer(world.tokens["admin"]),
    )
    error = error_of(response, 409, "conflict")
    assert ID_NUMBER not in str(error) and ID_NUMBER[:17] not in str(error)
    unchanged()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/counties", {"code": "360423", "name": "又一个武宁县"}),
        ("/api/v1/villages", {"code": "360423101201", "name": "又一个长水村"}),
    ],
)
def test_duplicate_place_code_conflicts(client, world, unchanged, path, body):
    response = client.post(path, json=body, headers=bearer(world.tokens["admin"]))
    error_of(response, 409, "conflict")
    unchanged()


def test_village_in_an_unknown_county_is_refused(client, world, unchanged):
    body = {"code": "999999101201", "name": "无县村"}
    response = client.post("/api/v1/villages", json=body, headers=bearer(world.tokens["admin"]))
    error_of(response, 422, "validation_failed")
    unchanged()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"role": "measurer", "village_code": "360423101999"}, "village"),
        ({"role": "bureau", "county_code": "999999"}, "county"),
        ({"role": "verifier"}, "county"),
    ],
)
def test_user_in_an_unknown_place_is_refused(client, world, unchanged, body, message):
    body = valid_body("user", world) | body
    response = client.post("/api/v1/users", json=body, headers=bearer(world.tokens["admin"]))
    error = error_of(response, 422, "validation_failed")
    assert message in error["message"]
    unchanged()


BAD_PHONE, BAD_ID, BAD_BANK = "1391234567", ID_NUMBER[:-1] + "1", BANK[:-1] + "0"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", BAD_PHONE),
        ("phone", "23912345678"),
        ("phone", "phone"),
        ("phone", ""),
        ("id_number", BAD_ID),
        ("id_number", ID_NUMBER[:-1]),
        ("bank_account", BAD_BANK),
        ("bank_account", "12345"),
    ],
)
def test_invalid_personal_number_names_the_field(client, world, unchanged, field, value):
    body = {"head_name": "王五", field: value}
    response = client.post(
        f"/api/v1/villages/{world.village_b}/households",
        json=body,
        headers=bearer(world.tokens["admin"]),
    )
    error = error_of(response, 422, "validation_failed")
    assert fields_named(error) == [field]
    unchanged()


def test_every_invalid_personal_number_is_named_at_once(client, world, unchanged):
    body = {"head_name": "王五", "phone": BAD_PHONE, "id_number": BAD_ID, "bank_account": BAD_BANK}
    response = client.post(
        f"/api/v1/villages/{world.village_b}/households",
        json=body,
        headers=bearer(world.tokens["admin"]),
    )
    error = error_of(response, 422, "validation_failed")
    assert fields_named(error) == ["phone", "id_number", "bank_account"]
    assert all(detail["problem"] for detail in error["details"])
    assert not any(value in str(error) for value in (BAD_PHONE, BAD_ID, BAD_BANK))
    unchanged()


SQL_NAME = "Robert'); DROP TABLE users;--"
HTML_NAME = '<script>alert("x")</script> & <b>'


@pytest.mark.parametrize("display_name", [SQL_NAME, HTML_NAME, "O'Brien \" ; --"])
def test_sql_and_html_in_a_display_name_are_stored_literally(client, world, db, display_name):
    body = valid_body("user", world) | {"display_name": display_name}
    response = client.post("/api/v1/users", json=body, headers=bearer(world.tokens["admin"]))
    assert response.status_code == 201
    assert response.json["user"]["display_name"] == display_name
    listed = client.get("/api/v1/users", headers=bearer(world.tokens["admin"])).json["users"]
    assert [u["display_name"] for u in listed if u["username"] == "finance.li"] == [display_name]
    rows = list(db["users"].rows_where("username = ?", ["finance.li"]))
    assert [row["display_name"] for row in rows] == [display_name]
    assert db["users"].count == len(world.user_ids) + 1


@pytest.mark.parametrize("name", [SQL_NAME, HTML_NAME])
def test_sql_and_html_in_a_village_name_are_stored_literally(client, world, db, name):
    body = {"code": "360423101299", "name": name, "township": name}
    response = client.post("/api/v1/villages", json=body, headers=bearer(world.tokens["admin"]))
    assert response.status_code == 201
    assert response.json["village"] == {"code": "360423101299", "name": name}
    listed = client.get("/api/v1/villages").json["villages"]
    assert [(v["name"], v["township"]) for v in listed if v["code"] == "360423101299"] == [
        (name, name)
    ]
    assert [row["name"] for row in db["villages"].rows_where("code = '360423101299'")] == [name]
    assert db["users"].count == len(world.user_ids)


def test_html_in_a_village_name_is_escaped_on_the_home_page(client, world):
    body = {"code": "360423101299", "name": HTML_NAME, "township": "<i>镇</i>"}
    assert (
        client.post(
            "/api/v1/villages", json=body, headers=bearer(world.tokens["admin"])
        ).status_code
        == 201
    )
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert "&lt;i&gt;镇&lt;/i&gt;" in html


def test_sql_and_html_in_a_head_name_are_stored_literally(app, client, world, db):
    for name in (SQL_NAME, "<script>alert(1)</script>"):
        response = client.post(
            f"/api/v1/villages/{world.village_b}/households",
            json={"head_name": name},
            headers=bearer(world.tokens["admin"]),
        )
        assert response.status_code == 201
        # Staff see a masked name: first and last character, literally, never interpreted.
        assert response.json["household"]["head_name"] == name[0] + "*" * (len(name) - 2) + name[-1]
    with app.app_context():
        rows = list(get_db().query("SELECT * FROM households ORDER BY id"))
        revealed = [households.reveal(get_db(), row, "head_name", "test") for row in rows[-2:]]
    assert revealed == [SQL_NAME, "<script>alert(1)</script>"]
    assert db["users"].count == len(world.user_ids)


@pytest.mark.parametrize(
    ("role", "path", "body_route"),
    [
        ("finance", "/api/v1/users", "user"),
        ("bureau", "/api/v1/users", "user"),
        ("enterprise", "/api/v1/villages", "village"),
        ("bureau", "/api/v1/villages", "village"),
        ("verifier", "/api/v1/counties", "county"),
        ("measurer", "/api/v1/counties", "county"),
        ("bureau", "/api/v1/villages/360423101201/households", "household"),
        ("measurer", "/api/v1/villages/360423101201/households", "household"),
        ("finance", "/api/v1/devices/enrolment-codes", "enrolment_code"),
        ("measurer", "/api/v1/devices/enrolment-codes", "enrolment_code"),
    ],
)
def test_wrong_role_is_forbidden(client, world, unchanged, role, path, body_route):
    response = client.post(
        path, json=valid_body(body_route, world), headers=bearer(world.tokens[role])
    )
    error_of(response, 403, "forbidden")
    unchanged()


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "unauthorized"), (bearer("sp_not-a-token"), "invalid_token")],
    ids=["no_token", "unknown_token"],
)
@pytest.mark.parametrize("route", [r for r in ROUTES if r != "token"])
def test_write_without_a_valid_token_is_unauthorized(
    client, world, unchanged, route, headers, code
):
    response = client.post(ROUTES[route][0], json=valid_body(route, world), headers=headers)
    error_of(response, 401, code)
    unchanged()


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("bureau", "/api/v1/households/{household_c}"),
        ("verifier", "/api/v1/households/{household_c}"),
        ("bureau", "/api/v1/villages/{village_c}/households"),
        ("verifier", "/api/v1/villages/{village_c}/households"),
        ("measurer", "/api/v1/villages/{village_b}/households"),
        ("measurer", "/api/v1/villages/{village_c}/households"),
        ("measurer", "/api/v1/households/{household_c}"),
    ],
)
def test_another_places_data_is_out_of_scope(client, world, unchanged, role, path):
    path = path.format(**vars(world))
    response = client.get(path, headers=bearer(world.tokens[role]))
    error = error_of(response, 403, "out_of_scope")
    assert "李四" not in str(error)
    unchanged()


def test_measurer_of_village_a_reads_only_village_a(client, world):
    headers = bearer(world.tokens["measurer"])
    own = client.get(f"/api/v1/villages/{world.village_a}/households", headers=headers)
    assert own.status_code == 200
    assert [h["code"] for h in own.json["households"]] == [world.household_a]
    other = client.get(f"/api/v1/villages/{world.village_b}/households", headers=headers)
    error_of(other, 403, "out_of_scope")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nothing-here"),
        ("POST", "/api/v1/nothing-here"),
        ("GET", "/api/v2/villages"),
        ("GET", "/api/v1/villages/360423101201/households/extra"),
        ("DELETE", "/api/v1/users/1/everything"),
    ],
)
def test_unknown_api_route_is_json_404(client, world, unchanged, method, path):
    response = client.open(path, method=method, headers=bearer(world.tokens["admin"]))
    error_of(response, 404, "not_found")
    unchanged()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/villages", "POST"),
        ("PUT", "/api/v1/users", "POST"),
        ("GET", "/api/v1/counties", "POST"),
        ("GET", "/api/v1/auth/tokens", "POST"),
        ("PATCH", "/api/v1/devices/enrolment-codes", "POST"),
        ("DELETE", "/api/v1/villages/360423101201/households", "GET"),
    ],
)
def test_wrong_method_is_json_405(client, world, unchanged, method, path, allowed):
    response = client.open(path, method=method, headers=bearer(world.tokens["admin"]), json={})
    error_of(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"]
    unchanged()


def test_personal_numbers_given_as_json_numbers_are_refused(client, world, unchanged):
    """Numbers given as JSON numbers would lose leading zeros: they are refused, not coerced."""
    body = {"head_name": "王五", "phone": int(PHONE), "bank_account": int(BANK)}
    response = client.post(
        f"/api/v1/villages/{world.village_b}/households",
        json=body,
        headers=bearer(world.tokens["admin"]),
    )
    error = error_of(response, 422, "validation_failed")
    assert fields_named(error) == ["bank_account", "phone"]
    unchanged()
