"""Real-browser fixtures (a plugin of tests/conftest.py: any test may take `playwright`,
`browser`, `site`), and the PWA as the browser tests drive it: a phone (360 px, Chinese), a
phone enrolled, the tree form filled, a screen waited for, the outbox polled."""

import os
import shutil
import time
from datetime import datetime

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from server import devices
from server.db import get_db
from tests.browser import CHROMIUM_ARGS, InstrumentedBrowser, serious_violations, serving

# A 2G link is slow: the tests wait for states (never for a clock), up to this long for each.
WAIT_MS = int(os.environ.get("SIPANG_TEST_WAIT_MS", 420_000))
FIELD = {"latitude": 29.2611, "longitude": 115.0934, "accuracy": 8}  # a good GPS fix in 长水村


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as session:
        yield session


@pytest.fixture(scope="module")
def browser(playwright):
    """Debian's Chromium (installed by `make test`, never downloaded), one per test module."""
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: run `make setup`"
    launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield InstrumentedBrowser(launched)  # the tests' predicates run beside the app's CSP
    launched.close()


@pytest.fixture
def site(app):
    with serving(app) as url:
        yield url


def check_accessible(page, screen: str) -> None:
    assert serious_violations(page) == [], screen


def ready(page, screen: str) -> None:
    """Wait for `screen`; when it never comes, fail with what the phone shows instead."""
    try:
        page.wait_for_selector(f"body[data-ready=true][data-screen={screen}]", timeout=WAIT_MS)
    except PlaywrightTimeout:
        shown = page.evaluate(
            "document.body.dataset.screen + ': ' + document.querySelector('main').innerText"
        )
        pytest.fail(f"waited for the {screen} screen; the phone shows {shown!r}")


def wait_until(page, condition: str) -> None:
    """Poll the outbox's status `s` until `condition` (JavaScript) holds."""
    deadline = time.monotonic() + WAIT_MS / 1000
    check = f"""async () => {{
        const s = await (await import('/app/js/outbox.js')).status();
        return {condition};
    }}"""
    while not page.evaluate(check):
        assert time.monotonic() < deadline, (
            f"the outbox never reached {condition}: {page.inner_text('#queue')}"
        )
        page.wait_for_timeout(500)


def enrolment_code(app, world) -> str:
    with app.app_context():
        db = get_db()
        measurer = db["users"].get(world.measurer_id)
        return devices.create_enrolment_code(db, measurer, world.user_ids["admin"])["code"]


def enrol(page, site, app, world) -> None:
    """Open the app on `page` and enrol it with a new code for the seeded measurer; return once
    the phone has what it keeps after a first visit: the app installed for offline use (every
    screen precached by the service worker) and the village's households pulled. On a loaded
    machine either can outlast enrolment, and a test that goes offline at once would find
    neither (the tree form's screen opened without its module or its household)."""
    page.goto(f"{site}/app/")
    ready(page, "enrol")
    page.fill("#code", enrolment_code(app, world))
    page.click("#enrol")
    ready(page, "village")
    deadline = time.monotonic() + WAIT_MS / 1000
    installed = """async (code) => {
        await navigator.serviceWorker.ready;
        const state = await import('/app/js/state.js');
        return (await state.households()).some((row) => row.code === code);
    }"""
    while not page.evaluate(installed, world.household_a):
        assert time.monotonic() < deadline, "the phone never pulled its village's households"
        page.wait_for_timeout(200)


def enrolled(context, site, app, world, *, clock: datetime | None = None):
    """A page of `context` with the app open on the village screen of an enrolled phone."""
    page = context.new_page()
    if clock:
        page.clock.set_system_time(clock)  # Date only; timers run as usual
    enrol(page, site, app, world)
    return page


def phone(browser, **options):
    # bypass_csp: for the tests' own polling predicates (tests/browser.py InstrumentedBrowser)
    return browser.new_context(
        viewport={"width": 360, "height": 740}, locale="zh-CN", bypass_csp=True, **options
    )


def open_tree_form(page, household: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/tree/new/{household}")
    ready(page, "tree-new")


def fill_tree(page, *, dbh="18.4", height="12.5") -> None:
    page.select_option("#species", "cunninghamia_lanceolata")
    page.check("input[name=position][value=road]")
    page.fill("#dbh", dbh)
    page.fill("#height", height)


def outbox_count(page) -> int:
    """Operations this phone has recorded, sent or not."""
    return page.evaluate(
        "async () => { const s = await (await import('/app/js/outbox.js')).status();"
        " return s.pending + s.done + s.rejected; }"
    )
