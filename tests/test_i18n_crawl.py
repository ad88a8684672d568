"""Every page each staff role can reach by clicking from its home, crawled through the real
app: no English words in the Chinese UI (outside codes, units and proper names) and no ISO
timestamps. Error pages are Chinese too; the JSON error shape is unchanged."""

from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from server.db import get_db
from server.payouts import settlement
from server.registry import orders
from tests import registry_world as rw
from tests.conftest import STAFF_ROLES
from tests.language import english_words, iso_times, readable_text
from tests.workspace_helpers import sign_in_form
from tests.workspace_world import WORKSPACE_BLUEPRINTS

NOT_PAGES = ("/api/", "/app/", "/static/", "/logout", "/socket.io", "/lang/")
DOWNLOADS = (".csv", ".xlsx", ".pdf", ".png", ".jpg", ".svg", ".json")
MAX_PAGES = 160
PWA_PAGES = ("/calculator",)


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def make_busy(app) -> dict:
    """Every kind of record the pages show: a sold and held bundle, a paid transfer batch,
    a sample being re-measured, an invoice request."""
    from server.registry import verification
    from server.workspace import invoices

    db, world = get_db(), app.world
    bundle, _, _ = rw.stocked_bundle(
        db, world.user_ids["verifier"], households_count=2, trees_per_household=12
    )
    paid = orders.confirm_payment(db, rw.order(db, bundle["id"], 1), "bank", "BK-1", "user:3")
    enterprise = db["users"].get(world.user_ids["enterprise"])
    held = rw.order(db, bundle["id"], 2, enterprise)
    held = orders.confirm_payment(db, held, "bank", "BK-2", "user:3")
    rw.order(db, bundle["id"], 1, enterprise)  # waiting for its transfer
    batch, _ = settlement.create_batch(db, "2099-01-01", 1, "user:3")
    row = db.execute("SELECT id FROM settlements WHERE batch_id = ?", [batch["id"]]).fetchone()
    settlement.record_transfer(db, row[0], "BK-T-0001", "user:3")
    calc = db["credit_calculations"].get(world.calculation_id)
    verification.assign(db, calc, world.user_ids["verifier"], world.user_ids["admin"])
    invoices.request_invoice(
        db, enterprise, held["public_id"], "某化工有限公司", "91360423MA35XXXX0Y"
    )
    assert paid["paid_at"]
    return {}


@pytest.fixture(scope="session")
def busy_world(snapshots, seeded):
    return snapshots.extend("i18n_crawl.busy", make_busy, on=seeded)


@pytest.fixture
def app(request, instance, seeded, busy_world):
    """Tests that take `busy` start from the busy world."""
    start = busy_world if "busy" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def busy(app) -> None:
    """The app holds every kind of record the pages show (`make_busy`)."""


def crawl(client, start: str) -> dict[str, str]:
    """Pages reached from `start` by following links: {path: html}."""
    seen: dict[str, str] = {}
    queue = deque([start])
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        response = client.get(path)
        if response.status_code in (301, 302, 303):
            queue.appendleft(urlsplit(response.headers["Location"]).path)
            seen[path] = ""
            continue
        assert response.status_code == 200, (path, response.status_code)
        if response.mimetype != "text/html":
            continue
        html = response.get_data(as_text=True)
        seen[path] = html
        links = Links()
        links.feed(html)
        for href in links.hrefs:
            url = urlsplit(urljoin(path, href))
            if url.netloc or url.scheme not in ("", "http"):
                continue
            target = url.path + (f"?{url.query}" if url.query else "")
            if target.startswith(NOT_PAGES) or url.path.endswith(DOWNLOADS):
                continue
            if target not in seen:
                queue.append(target)
    return {path: html for path, html in seen.items() if html}


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_every_page_a_role_reaches_is_chinese_with_beijing_times(client, busy, role):
    sign_in_form(client, role)
    pages = crawl(client, "/work")

    assert len(pages) >= (1 if role == "verifier" else 3)
    problems = {}
    for path, html in pages.items():
        text = readable_text(html)
        found = english_words(text) + iso_times(text)
        if found:
            problems[path] = found
    assert problems == {}


def test_the_crawl_reaches_every_workspace_screen(app, client, busy):
    reached: set[str] = set()
    for role in STAFF_ROLES:
        client.post("/logout", data={})  # a fresh client per role below
        fresh = app.test_client()
        sign_in_form(fresh, role)
        reached |= set(crawl(fresh, "/work"))
    screens = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in WORKSPACE_BLUEPRINTS
        and "GET" in rule.methods
        and "<" not in rule.rule
        and rule.rule != "/work"
    }
    assert screens - reached == set()


def test_the_reader_sees_what_a_person_sees():
    html = (
        '<p title="提示">村 <code>360423101201</code> <span translate="no">Zhang San</span>'
        '<script>var english = "words";</script> 2026-12-07T06:05:00Z</p>'
        '<input type="submit" value="Save"><img alt="photo">'
    )
    text = readable_text(html)
    assert "Zhang" not in text and "english" not in text and "360423101201" not in text
    assert english_words(text) == ["Save", "photo"]
    assert iso_times(text) == ["2026-12-07T06:05"]


@pytest.mark.parametrize(
    ("path", "words"),
    [("/no-such-page", "没有找到这个页面或记录。"), ("/admin", "请先登录。")],
)
def test_error_pages_are_chinese_and_the_json_shape_stays(client, path, words):
    page = client.get(path, headers={"Accept": "text/html"})
    assert words in page.get_data(as_text=True)
    assert english_words(readable_text(page.get_data(as_text=True))) == []
    api = client.get(path, headers={"Accept": "application/json"})
    assert set(api.json["error"]) >= {"status", "code", "message"}
    assert api.json["error"]["status"] == page.status_code


def test_an_invalid_plate_says_why_in_chinese_only(client, world):
    forged = world.household_a[:-2] + ("AA" if not world.household_a.endswith("AA") else "BB")
    page = client.get(f"/h/{forged}", headers={"Accept": "text/html"})
    assert page.status_code == 404
    text = readable_text(page.get_data(as_text=True))
    assert "编码有误，或门牌已损坏" in text
    assert english_words(text) == []


# --- the English side ------------------------------------------------------------------------


def test_every_template_text_has_an_english_label():
    """Each Chinese run of every server template (text and attribute values) is in the
    catalogue, so an English reader sees no Chinese label the templates wrote."""
    from pathlib import Path

    from server.english import HAN, JINJA, TEXT_RUN, catalogue

    exact, _ = catalogue()
    missing = {}
    for template in sorted(Path("server/templates").rglob("*.html")):
        for piece in JINJA.split(template.read_text(encoding="utf-8")):
            if piece.startswith(("{{", "{%", "{#")):
                continue
            for run in TEXT_RUN.findall(piece):
                text = " ".join(run.split())
                if HAN.search(text) and text not in exact:
                    missing.setdefault(str(template), []).append(text)
    assert missing == {}


def chinese_left(html: str) -> list[str]:
    """The parts a person reads that still hold Chinese the catalogue has English for (or a
    Chinese date); names people entered stay as they are."""
    from server.english import HAN, translate
    from tests.language import Reader

    reader = Reader()
    reader.feed(html)
    parts = {" ".join(part.split()) for part in reader.parts}
    return sorted(p for p in parts if HAN.search(p) and translate(p) != p)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_every_page_a_role_reaches_reads_in_english_when_chosen(client, busy, role):
    sign_in_form(client, role)
    chosen = client.get("/lang/en?next=/work")
    assert chosen.status_code == 303 and chosen.headers["Location"] == "/work"
    assert "sipang_lang=en" in chosen.headers["Set-Cookie"]
    assert "Max-Age=31536000" in chosen.headers["Set-Cookie"]  # a lasting choice
    pages = crawl(client, "/work")

    assert len(pages) >= (1 if role == "verifier" else 3)
    problems = {}
    for path, html in pages.items():
        if path in PWA_PAGES:
            continue  # the PWA's own pages translate themselves (pwa/i18n)
        assert '<html lang="en">' in html, path
        left = chinese_left(html) + iso_times(readable_text(html))
        if left:
            problems[path] = left
    assert problems == {}
    # Back to Chinese: the same pages read as before.
    client.get("/lang/zh?next=/work")
    home = client.get("/work", follow_redirects=True).get_data(as_text=True)
    assert '<html lang="zh-CN">' in home and english_words(readable_text(home)) == []


@pytest.mark.parametrize(
    "path", ["/", "/login", "/bundles", "/methodology", "/no-such-page", "plate", "certificate"]
)
def test_public_pages_read_in_english_when_chosen(client, db, world, busy, path):
    if path == "plate":
        path = f"/h/{world.household_a}"
    elif path == "certificate":
        cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
        path = f"/verify/{cert_id}"
    client.get(f"/lang/en?next={path}")
    page = client.get(path, headers={"Accept": "text/html"}).get_data(as_text=True)
    assert '<html lang="en">' in page
    assert chinese_left(page) == []
    assert "Cookie" in client.get(path, headers={"Accept": "text/html"}).headers["Vary"]


@pytest.mark.parametrize("target", ["//elsewhere.example/x", "https://elsewhere.example/", "/\\x"])
def test_the_language_toggle_only_returns_to_this_site(client, target):
    response = client.get("/lang/en", query_string={"next": target})
    assert (response.status_code, response.headers["Location"]) == (303, "/")


def test_every_page_offers_the_other_language(client):
    chinese = client.get("/login").get_data(as_text=True)
    assert 'href="/lang/en?next=/login%3F"' in chinese and 'translate="no">English</a>' in chinese
    client.get("/lang/en?next=/login")
    english = client.get("/login").get_data(as_text=True)
    assert 'href="/lang/zh?next=/login%3F"' in english and "Staff sign-in" in english


def test_english_inside_a_script_stays_a_valid_string():
    from server.english import english_source

    source = '<p>农户分成</p><script nonce="{{ nonce }}">var a = "农户分成";</script>'
    assert english_source(source) == (
        "<p>Farmers&#39; share</p>"
        '<script nonce="{{ ( nonce )|tr }}">var a = "Farmers\' share";</script>'
    )
