"""Every route × every role, generated from the route table and each route's `@allow` rule."""

import copy
import hashlib
import io
import tempfile
import uuid
from pathlib import Path

import pytest
from flask import Flask

from server import create_app
from server.access import allow, rule_for
from server.extensions import limiter
from server.push.owners import household_token
from tests.conftest import PASSWORD, PHONE, ROLES, bearer
from tests.payouts_world import payout_sample
from tests.plate_world import plate_sample
from tests.registry_world import route_sample
from tests.workspace_world import workspace_sample
from village_kits.codes import checksum_symbol

CALLERS = (None, *ROLES)
PHOTO = b"\xff\xd8 a tiny photo"
DENIALS = {"unauthorized", "forbidden", "device_required", "out_of_scope"}


def route_table(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url rule) for every route the app serves."""
    return sorted(
        (rule.endpoint, method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def pytest_generate_tests(metafunc):
    """The matrix's cases, from the route table of an app built (and thrown away) here."""
    matrices = {
        "test_route_answers_each_role_as_its_rule_says": "endpoint,method,rule",
        "test_scoped_route_refuses_another_countys_village": "endpoint,method,rule,caller",
    }
    argnames = matrices.get(metafunc.function.__name__)
    if argnames is None:
        return
    with tempfile.TemporaryDirectory(prefix="sipang-routes-") as folder:
        app = create_app({"INSTANCE_PATH": folder})
        routes = route_table(app)
        scoped = [
            (endpoint, method, rule, caller)
            for endpoint, method, rule in routes
            if rule_for_app(app, endpoint).scope
            for caller in sorted(rule_for_app(app, endpoint).roles)
        ]
    metafunc.parametrize(argnames, scoped if "caller" in argnames else routes, ids=str)


class RoleApps:
    """One app per caller for the whole matrix; each case starts it on a fresh copy of the
    seeded instance (the database, photos and keys), with its settings, extensions and rate
    limits as built, so no case sees another's writes."""

    def __init__(self, root, seeded, registry):
        self.root, self.seeded, self.registry = root, seeded, registry
        self.apps: dict[str, tuple[Flask, dict, dict]] = {}

    def __call__(self, caller: str | None) -> Flask:
        name = caller or "anonymous"
        if name not in self.apps:
            app = self.seeded.app(self.root / name)
            self.apps[name] = (app, dict(app.config), dict(app.extensions))
        app, config, extensions = self.apps[name]
        self.seeded.copy_to(self.root / name)
        app.config.clear()
        app.config.update(copy.deepcopy(config))
        app.extensions.clear()
        app.extensions.update(extensions)
        limiter.reset()
        app.world = copy.deepcopy(self.seeded.data)
        return app


@pytest.fixture(scope="module")
def role_apps(tmp_path_factory, seeded, registry_sample) -> RoleApps:
    return RoleApps(tmp_path_factory.mktemp("matrix"), seeded, registry_sample)


def url_for_world(rule: str, world, *, own: bool = True) -> str:
    values = {
        "<village_code>": world.village_a if own else world.village_c,
        "<household_code>": world.household_a if own else world.household_c,
        "<int:user_id>": str(world.user_ids["finance"]),
        "<device_id>": world.device_id,
        "<path:filename>": "js/carbon.js" if rule.startswith("/app/") else "site.css",
        "<int:flag_id>": str(world.flag_id),
        "<int:calculation_id>": str(world.calculation_id),
        "<version>": "sipang-2026.1",
        "<county_code>": "360423",
        "<fmt>": "csv",
        "<sha256>": hashlib.sha256(PHOTO).hexdigest(),
        "<code>": "ABCDEFGHJKMN" if rule.startswith(("/e/", "/E/")) else world.household_a,
        "<tag>": "360423101201-T00001-" + checksum_symbol("360423101201-T00001"),
    }
    for placeholder, value in values.items():
        rule = rule.replace(placeholder, value)
    assert "<" not in rule, f"the matrix needs a sample value for {rule}"
    return rule


def request_body(app, client, endpoint: str, world) -> dict:
    """A body that succeeds for an allowed caller: the route's documented example."""
    view_rule = rule_for_app(app, endpoint)
    if endpoint == "pages.login_submit":
        return {"data": {"username": "admin", "password": PASSWORD}}
    if endpoint == "sync.push":
        op = {
            "op_id": str(uuid.uuid4()),
            "device_seq": 1,
            "record_id": str(uuid.uuid4()),
            "kind": "tree.register",
            "client_time": "2026-10-01T08:00:00Z",
            "payload": {
                "household_code": world.household_a,
                "species_id": "ginkgo_biloba",
                "position": "house",
            },
        }
        return {"json": {"device_id": world.device_id, "ops": [op]}}
    if endpoint == "farmer.unlock":
        return {"data": {"phone_tail": PHONE[-4:]}}
    if endpoint == "sync.blob_chunk":
        return {"data": PHOTO, "headers": {"Upload-Offset": "0", "Upload-Length": str(len(PHOTO))}}
    if endpoint in ("rosters.upload_roster", "admin.upload_roster"):
        roster = "户主姓名,联系电话\n新农户,13900001111\n".encode()
        return {"data": {"file": (io.BytesIO(roster), "roster.csv")}}
    if view_rule.body is None:
        return {}
    body = dict(view_rule.body["example"])
    if endpoint in ("push.subscribe", "push.unsubscribe"):  # for a verified household
        body.pop("kinds", None)
        del body["order"]
        with app.test_request_context():
            body |= {"household": world.household_a, "token": household_token(world.household_a)}
    if endpoint == "devices.new_enrolment_code":
        body["measurer_id"] = world.measurer_id
    if endpoint == "devices.enrol_device":
        admin = bearer(world.tokens["admin"])
        made = client.post(
            "/api/v1/devices/enrolment-codes",
            headers=admin,
            json={"measurer_id": world.measurer_id},
        )
        body["code"] = made.json["code"]
    return {"json": body}


def rule_for_app(app, endpoint):
    with app.app_context():
        return rule_for(endpoint)


def call(role_apps, endpoint, method, rule, caller, *, own=True):
    """The case's request, as `caller`, on its role's app restored to the seeded world (or to
    the registry sample, for routes that need its state); (app, response)."""
    app = role_apps(caller)
    client, world = app.test_client(), app.world
    headers = {"Accept": "application/json"}
    if caller is not None:
        headers |= bearer(world.tokens[caller])
    else:
        headers["X-CSRFToken"] = client.get("/api/v1/auth/csrf").json["csrf_token"]

    def restore() -> dict:
        role_apps.registry.copy_to(Path(app.instance_path))
        return role_apps.registry.data

    # registry, payout and workspace routes need the registry sample's state
    sample = route_sample(app, world, endpoint, rule, caller, restore)
    sample = sample or payout_sample(app, world, endpoint, rule, caller, restore)
    sample = sample or workspace_sample(app, world, endpoint, rule, caller, restore)
    sample = sample or plate_sample(app, client, world, endpoint)
    sample = sample or tile_sample(app, endpoint)
    body = sample[1] if sample else request_body(app, client, endpoint, world)
    headers |= body.pop("headers", {})
    url = sample[0] if sample else url_for_world(rule, world, own=own)
    return app, client.open(url, method=method, headers=headers, **body)


def tile_sample(app: Flask, endpoint: str) -> tuple[str, dict] | None:
    """A county map tile already kept on disk, with a tile service configured (never asked)."""
    if endpoint != "pwa.map_tile":
        return None
    app.config["MAP_TILE_URL"] = "http://127.0.0.1:9/{z}/{x}/{y}.png"
    kept = Path(app.config["INSTANCE_PATH"]) / "tiles" / "1" / "0" / "0"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    return "/app/tiles/1/0/0.png", {}


def test_every_route_declares_an_access_rule(app):
    missing = [e for e, _, _ in route_table(app) if rule_for_app(app, e) is None]
    assert missing == []


def test_the_tests_kept_url_builders_build_what_werkzeug_compiles(app):
    """tests/conftest.py keeps each URL rule's compiled builder for the session: every rule
    builds the same URLs with it as with one compiled afresh."""
    from werkzeug.routing.rules import Rule

    assert Rule._compile_builder.kept
    for rule in app.url_map.iter_rules():
        values = {name: "1" for name in rule.arguments if name not in (rule.defaults or {})}
        for unknown in (False, True):
            fresh = Rule._compile_builder.original(rule, unknown).__get__(rule, None)
            kept = rule._build_unknown if unknown else rule._build
            extra = {"next": "/a b"} if unknown else {}
            assert kept(**values, **extra) == fresh(**values, **extra), rule.rule


def test_a_route_without_a_rule_is_refused(instance):
    app = create_app({"INSTANCE_PATH": str(instance)})
    app.add_url_rule("/api/v1/forgotten", "forgotten", lambda: "secret")
    response = app.test_client().get("/api/v1/forgotten")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "no_access_rule"


def test_allow_rejects_unknown_roles_and_scopes():
    with pytest.raises(ValueError):
        allow("admin", "superuser")
    with pytest.raises(ValueError):
        allow("admin", scope="planet")


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "anonymous")
def test_route_answers_each_role_as_its_rule_says(role_apps, endpoint, method, rule, caller):
    app, response = call(role_apps, endpoint, method, rule, caller)
    access = rule_for_app(app, endpoint)
    code = (response.get_json(silent=True) or {}).get("error", {}).get("code")
    if access.public or (caller is not None and caller in access.roles):
        assert response.status_code < 400, (response.status_code, response.get_data(True))
        assert code is None
    elif caller is None:
        assert (response.status_code, code) == (401, "unauthorized")
    else:
        assert (response.status_code, code) == (403, "forbidden")


def test_scoped_route_refuses_another_countys_village(role_apps, endpoint, method, rule, caller):
    _, response = call(role_apps, endpoint, method, rule, caller, own=False)
    if caller in ("admin", "finance"):  # villages.user_can_see: every village
        assert response.status_code < 400
    else:
        assert response.status_code == 403
        assert response.json["error"]["code"] == "out_of_scope"


def test_measurer_is_limited_to_own_village_within_the_county(client, world):
    token = bearer(world.tokens["measurer"])
    assert (
        client.get(f"/api/v1/villages/{world.village_a}/households", headers=token).status_code
        == 200
    )
    response = client.get(f"/api/v1/villages/{world.village_b}/households", headers=token)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"
