"""A household name that a spreadsheet would run as a formula is refused where it enters."""

import pytest

from tests.conftest import bearer


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://evil.example","点我")', "+1+1", "-2+3", "@SUM(A1)", "＝1+1"]
)
def test_a_formula_as_a_household_name_is_refused(client, world, db, name):
    before = db["households"].count
    response = client.post(
        f"/api/v1/villages/{world.village_a}/households",
        json={"head_name": name},
        headers=bearer(world.tokens["admin"]),
    )
    assert response.status_code == 422
    assert response.json["error"]["details"] == [
        {"field": "head_name", "problem": "starts like a spreadsheet formula (= + - @)"}
    ]
    assert db["households"].count == before


def test_an_ordinary_name_with_a_dash_inside_is_accepted(client, world):
    response = client.post(
        f"/api/v1/villages/{world.village_a}/households",
        json={"head_name": "欧阳-春晓"},
        headers=bearer(world.tokens["admin"]),
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "options", "status"),
    [
        ("get", "/api/v1/no-such-thing", {}, 404),
        ("delete", "/api/v1/villages", {}, 405),
        ("get", "/api/v1/users", {}, 401),
        ("post", "/api/v1/auth/tokens", {"json": {"username": "x"}}, 422),
        ("post", "/api/v1/auth/tokens", {"data": b"{", "content_type": "application/json"}, 400),
    ],
)
def test_every_error_body_has_the_four_keys(client, method, path, options, status):
    response = getattr(client, method)(path, headers={"Accept": "application/json"}, **options)
    assert response.status_code == status
    assert set(response.json["error"]) == {"status", "code", "message", "details"}
