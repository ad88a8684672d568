"""Live updates over Socket.IO (namespace /live): who may watch and who hears what."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PASSWORD

from server import events as domain_events
from server import live, users, villages
from server.db import get_db, transaction
from server.extensions import socketio
from tests.helpers_auth import signed_in

NAMESPACE = "/live"


def watcher(app, client=None, auth=None):
    """A Socket.IO test client on /live, sharing `client`'s cookies when given."""
    return socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client, auth=auth)


def events(socket, name: str | None = None) -> list[dict]:
    received = socket.get_received(NAMESPACE)
    return [event for event in received if name is None or event["name"] == name]


def county_id(app, code: str) -> int:
    with app.app_context():
        return villages.get_county(code)["id"]


@pytest.fixture
def other_bureau(app):
    """A bureau user of county 360424 (signs in with PASSWORD)."""
    with app.app_context():
        return users.create_user(
            get_db(),
            username="bureau.xiushui",
            display_name="修水县农业农村局",
            role="bureau",
            password=PASSWORD,
            county_code="360424",
        )


def test_bureau_session_gets_a_welcome_with_its_county_room(app, client, world):
    signed_in(client, "bureau")

    socket = watcher(app, client)

    assert socket.is_connected(NAMESPACE)
    welcome = events(socket, "welcome")
    assert len(welcome) == 1
    assert welcome[0]["args"] == [
        {
            "user": {
                "id": world.user_ids["bureau"],
                "username": "bureau",
                "display_name": "bureau 用户",
                "role": "bureau",
                "county_code": "360423",
                "village_code": None,
                "organisation": None,
                "active": True,
            },
            "room": f"county:{county_id(app, '360423')}",
        }
    ]
    socket.disconnect(NAMESPACE)


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_platform_watchers_join_the_everywhere_room(app, client, role):
    signed_in(client, role)

    socket = watcher(app, client)

    assert socket.is_connected(NAMESPACE)
    welcome = events(socket, "welcome")
    assert [w["args"][0]["room"] for w in welcome] == ["everywhere"]
    assert welcome[0]["args"][0]["user"]["role"] == role


def test_a_cookie_copied_before_sign_out_is_refused(app, world):
    """Socket.IO identifies watchers as every route does: a signed-out session is over."""
    desk = app.test_client()
    signed_in(desk, "bureau")
    thief = app.test_client()
    thief.set_cookie("session", desk.get_cookie("session").value)
    token = desk.get("/api/v1/auth/csrf").json["csrf_token"]
    assert desk.post("/api/v1/auth/logout", headers={"X-CSRFToken": token}).status_code == 200

    socket = watcher(app, thief)

    assert not socket.is_connected(NAMESPACE)


def test_anonymous_client_is_refused(app, client):
    socket = watcher(app, client)

    assert not socket.is_connected(NAMESPACE)


def test_anonymous_client_without_cookies_is_refused(app):
    socket = watcher(app)

    assert not socket.is_connected(NAMESPACE)


@pytest.mark.parametrize("role", ["enterprise", "verifier"])
def test_non_watching_roles_are_refused(app, client, role):
    signed_in(client, role)

    socket = watcher(app, client)

    assert not socket.is_connected(NAMESPACE)


def test_signed_out_session_is_refused(app, client):
    signed_in(client, "bureau")
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]
    client.post("/api/v1/auth/logout", headers={"X-CSRFToken": token})

    socket = watcher(app, client)

    assert not socket.is_connected(NAMESPACE)


def test_session_of_a_disabled_user_is_refused(app, client, world):
    signed_in(client, "bureau")
    client.post(
        f"/api/v1/users/{world.user_ids['bureau']}/disable",
        headers={"Authorization": f"Bearer {world.tokens['admin']}"},
    )

    socket = watcher(app, client)

    assert not socket.is_connected(NAMESPACE)


def test_bearer_token_in_auth_works(app, world):
    socket = watcher(app, auth={"token": world.tokens["bureau"]})

    assert socket.is_connected(NAMESPACE)
    welcome = events(socket, "welcome")
    assert [w["args"][0]["user"]["username"] for w in welcome] == ["bureau"]
    assert welcome[0]["args"][0]["room"] == f"county:{county_id(app, '360423')}"


@pytest.mark.parametrize("token", ["garbage", "", "sp_" + "A" * 43])
def test_bad_token_in_auth_is_refused(app, token):
    socket = watcher(app, auth={"token": token})

    assert not socket.is_connected(NAMESPACE)


@pytest.mark.parametrize("auth", ["sp_token-as-a-string", ["a", "list"], 42])
def test_malformed_auth_is_refused(app, auth):
    socket = watcher(app, auth=auth)

    assert not socket.is_connected(NAMESPACE)


def test_token_of_a_non_watcher_is_refused(app, world):
    for role in ("enterprise", "verifier", "measurer"):
        socket = watcher(app, auth={"token": world.tokens[role]})
        assert not socket.is_connected(NAMESPACE), role


def test_revoked_token_is_refused(app, client, world):
    token = client.post(
        "/api/v1/auth/tokens", json={"username": "bureau", "password": PASSWORD}
    ).json["token"]
    client.delete("/api/v1/auth/tokens/current", headers={"Authorization": f"Bearer {token}"})

    socket = watcher(app, auth={"token": token})

    assert not socket.is_connected(NAMESPACE)


def test_announce_reaches_watchers_of_that_county_only(app, client, world, other_bureau):
    signed_in(client, "bureau")
    own = watcher(app, client)
    other = watcher(app, auth={"token": _token_for(app, other_bureau)})
    platform = watcher(app, auth={"token": world.tokens["finance"]})
    for socket in (own, other, platform):
        assert socket.is_connected(NAMESPACE)
        events(socket)  # drop the welcome

    with app.app_context():
        live.announce("payout.paid", {"household": world.household_a}, county_id(app, "360423"))

    news = {
        "name": "payout.paid",
        "args": [{"household": world.household_a}],
        "namespace": NAMESPACE,
    }
    assert events(own) == [news]
    assert events(platform) == [news]
    assert events(other) == []


def test_announce_to_the_other_county(app, client, world, other_bureau):
    signed_in(client, "bureau")
    own = watcher(app, client)
    other = watcher(app, auth={"token": _token_for(app, other_bureau)})
    events(own), events(other)

    with app.app_context():
        live.announce("household.added", {"n": 1}, county_id(app, "360424"))

    assert events(own) == []
    assert [e["args"] for e in events(other)] == [[{"n": 1}]]


def test_announce_outside_an_app_context(app, client, world):
    signed_in(client, "bureau")
    own = watcher(app, client)
    events(own)
    county = county_id(app, "360423")

    live.announce("settlement.done", {"ok": True}, county)

    assert [e["name"] for e in events(own)] == ["settlement.done"]


def test_announce_after_a_watcher_leaves(app, client, world):
    signed_in(client, "bureau")
    leaving = watcher(app, client)
    staying = watcher(app, auth={"token": world.tokens["bureau"]})
    events(staying)
    leaving.disconnect(NAMESPACE)

    live.announce("payout.paid", {}, county_id(app, "360423"))

    assert not leaving.is_connected(NAMESPACE)
    assert [e["name"] for e in events(staying)] == ["payout.paid"]


def test_an_announcement_made_in_a_transaction_is_sent_once_it_commits(app, client, world):
    signed_in(client, "bureau")
    own = watcher(app, client)
    events(own)
    county = county_id(app, "360423")

    with app.app_context():
        db = get_db()
        with transaction(db):
            domain_events.announce("payouts.settled", {"settlement": 7}, county, db=db)
            db.execute("UPDATE villages SET name = name")
            heard_inside = events(own)

    assert heard_inside == []
    assert [(e["name"], e["args"]) for e in events(own)] == [
        ("payouts.settled", [{"settlement": 7}])
    ]


def test_an_announcement_of_a_rolled_back_change_is_never_sent(app, client, world):
    signed_in(client, "bureau")
    own = watcher(app, client)
    events(own)
    county = county_id(app, "360423")

    with app.app_context():
        db = get_db()
        with pytest.raises(RuntimeError), transaction(db):
            domain_events.announce("payouts.settled", {"settlement": 7}, county, db=db)
            raise RuntimeError("the transfer failed")
        with transaction(db):
            pass  # the next transaction does not send the dropped one either

    assert events(own) == []


def test_a_rolled_back_savepoint_drops_only_its_own_announcements(app, client, world):
    signed_in(client, "bureau")
    own = watcher(app, client)
    events(own)
    county = county_id(app, "360423")

    with app.app_context():
        db = get_db()
        with transaction(db):
            domain_events.announce("payouts.batch", {"batch": 1}, county, db=db)
            with pytest.raises(RuntimeError), transaction(db):
                domain_events.announce("payouts.settled", {"settlement": 1}, county, db=db)
                raise RuntimeError("one line of a bank return file was refused")
            domain_events.announce("payouts.settled", {"settlement": 2}, county, db=db)

    assert [(e["name"], e["args"]) for e in events(own)] == [
        ("payouts.batch", [{"batch": 1}]),
        ("payouts.settled", [{"settlement": 2}]),
    ]


SECOND_APP_SCRIPT = """
import sys
from server import create_app, users
from server.db import get_db
from server.extensions import socketio

create_app({"INSTANCE_PATH": sys.argv[1] + "/first"})  # imports server.live for the first time
app = create_app({"INSTANCE_PATH": sys.argv[1] + "/second"})
with app.app_context():
    user = users.create_user(
        get_db(), username="finance", display_name="f", role="finance", password="x" * 12
    )
    token = users.issue_token(get_db(), user["id"], "t")
socket = socketio.test_client(app, namespace="/live", auth={"token": token})
print("connected" if socket.is_connected("/live") else "refused")
"""


def test_live_works_in_every_app_of_a_process(tmp_path):
    """Live handlers survive a second `create_app` in a fresh interpreter (the CLI, tests)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SECOND_APP_SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "connected"


def _token_for(app, user: dict) -> str:
    with app.app_context():
        return users.issue_token(get_db(), user["id"], "live test")
