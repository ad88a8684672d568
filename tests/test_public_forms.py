"""The door plate and the bundle page are the same bytes for every anonymous reader, so
nginx's micro-cache can keep them: no session cookie set on a GET, no session-bound CSRF token
or per-reader order id in the page, a Cache-Control the cache accepts. Their forms still
work: a browser fetches its token when the form is about to be sent (static/form_token.js),
a browser without scripts is handed the form again with a token, and a forged cross-site
post does nothing."""

import gzip
import re

import pytest

from server.db import get_db
from tests.conftest import PHONE

TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]*)"')


@pytest.fixture
def sample(tmp_path, registry_sample):
    """An app on the registry sample: (app, household code with a phone, bundle id)."""
    app = registry_sample.app(tmp_path / "instance")
    with app.app_context():
        code = (
            get_db()
            .execute("SELECT code FROM households WHERE phone_enc IS NOT NULL ORDER BY id")
            .fetchone()[0]
        )
    return app, code, app.world["<int:bundle_id>"]


def anonymous_get(app, path: str):
    """A reader's first GET, as a browser sends it (compressed): (response, its text)."""
    answer = app.test_client().get(path, headers={"Accept-Encoding": "gzip"})
    body = answer.get_data()
    if answer.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return answer, body.decode()


@pytest.mark.parametrize("page", ["plate", "bundle"])
def test_an_anonymous_get_sets_no_cookie_and_may_be_cached(sample, page):
    app, code, bundle_id = sample
    path = f"/h/{code}" if page == "plate" else f"/bundles/{bundle_id}"

    (first, html), (second, html2) = anonymous_get(app, path), anonymous_get(app, path)

    assert (first.status_code, second.status_code) == (200, 200)
    assert "Set-Cookie" not in first.headers
    cache_control = first.headers.get("Cache-Control", "")
    assert "private" not in cache_control and "no-store" not in cache_control
    assert TOKEN.findall(html) and set(TOKEN.findall(html)) == {""}  # fetched when used
    assert set(REQUEST_ID.findall(html)) <= {""}  # one buyer's order id is no other's
    assert '<script src="/static/form_token.js"' in html
    # the same page for the next reader, save the response's own script nonce
    nonce = re.compile(r"nonce-[\w-]+|nonce=\"[\w-]+\"")
    assert nonce.sub("", html2) == nonce.sub("", html)


def test_a_browser_with_a_session_gets_its_token_in_the_page_and_a_private_copy(sample):
    app, code, _ = sample
    client = app.test_client()
    client.get("/api/v1/auth/csrf")  # the session exists now

    page = client.get(f"/h/{code}")

    (token,) = set(TOKEN.findall(page.get_data(as_text=True)))
    assert token
    sent = client.post(f"/h/{code}/unlock", data={"csrf_token": token, "phone_tail": PHONE[-4:]})
    assert sent.status_code == 303
    unlocked = client.get(f"/h/{code}")
    assert unlocked.headers["Cache-Control"] == "private, no-store"  # never in a shared cache


def test_the_unlock_form_works_with_the_token_fetched_when_used(sample):
    app, code, _ = sample
    client = app.test_client()
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]

    sent = client.post(f"/h/{code}/unlock", data={"csrf_token": token, "phone_tail": PHONE[-4:]})

    assert sent.status_code == 303
    assert "几分钟后自动隐藏" in client.get(f"/h/{code}").get_data(as_text=True)  # unlocked


def test_the_token_endpoint_is_never_kept_by_a_shared_cache(sample):
    app, _, _ = sample
    answer = app.test_client().get("/api/v1/auth/csrf")

    assert "no-store" in answer.headers["Cache-Control"]


def test_without_scripts_the_unlock_form_comes_back_with_a_token_and_then_works(sample):
    app, code, _ = sample
    client = app.test_client()

    first = client.post(f"/h/{code}/unlock", data={"csrf_token": "", "phone_tail": PHONE[-4:]})

    assert first.status_code == 400
    html = first.get_data(as_text=True)
    assert "请再点一次" in html
    assert first.headers["Cache-Control"] == "private, no-store"
    (token,) = set(TOKEN.findall(html))
    again = client.post(f"/h/{code}/unlock", data={"csrf_token": token, "phone_tail": PHONE[-4:]})
    assert again.status_code == 303


def test_without_scripts_the_buy_form_comes_back_filled_in_and_then_works(sample):
    app, _, bundle_id = sample
    client = app.test_client()
    form = {"csrf_token": "", "request_id": "", "tonnes": "1", "beneficiary": "李小明"}

    first = client.post(f"/bundles/{bundle_id}/buy", data=form)

    assert first.status_code == 400
    html = first.get_data(as_text=True)
    assert "请再点一次" in html and 'value="李小明"' in html
    (token,) = set(TOKEN.findall(html))
    (request_id,) = set(REQUEST_ID.findall(html))
    assert token and request_id
    made = client.post(
        f"/bundles/{bundle_id}/buy", data=form | {"csrf_token": token, "request_id": request_id}
    )
    assert made.status_code == 303 and "/orders/" in made.headers["Location"]


def test_a_buy_without_a_request_id_still_reserves_once(sample):
    app, _, bundle_id = sample
    client = app.test_client()
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]

    made = client.post(
        f"/bundles/{bundle_id}/buy", data={"csrf_token": token, "request_id": "", "tonnes": "1"}
    )

    assert made.status_code == 303 and "/orders/" in made.headers["Location"]


@pytest.mark.parametrize("page", ["plate", "bundle"])
def test_a_forged_cross_site_post_does_nothing(sample, page):
    app, code, bundle_id = sample
    client = app.test_client()
    client.get("/api/v1/auth/csrf")  # the victim's browser has a session
    with app.app_context():
        orders_before = get_db().execute("SELECT count(*) FROM orders").fetchone()[0]
    if page == "plate":
        forged = client.post(f"/h/{code}/unlock", data={"phone_tail": PHONE[-4:]})
    else:
        forged = client.post(f"/bundles/{bundle_id}/buy", data={"tonnes": "1"})

    assert forged.status_code == 400
    with app.app_context():
        assert get_db().execute("SELECT count(*) FROM orders").fetchone()[0] == orders_before
    if page == "plate":
        assert "已转入" not in client.get(f"/h/{code}").get_data(as_text=True)
        # this browser's own copy (its session's token in the form), never a shared one
        assert client.get(f"/h/{code}").headers["Cache-Control"] == "private, no-cache"
