"""Posting the workspace's forms; signing in is tests/helpers_auth.py's (re-exported here for
the workspace tests that import it from this module). In a real Chromium (the `browser`
fixture, tests/helpers_pwa.py): a staff member signed in on a phone, each page checked to fit
360 px and pass axe."""

from tests.browser import PHONE, serious_violations
from tests.conftest import PASSWORD
from tests.helpers_auth import form_token, sign_in_form

__all__ = ["fits_and_passes_axe", "form_token", "nav", "post_form", "sign_in_form", "signed_in"]


def post_form(client, page: str, action: str, data: dict, follow: bool = True):
    """Post a form of `page` (with its CSRF token) to `action`."""
    token = form_token(client.get(page).get_data(as_text=True))
    return client.post(action, data=data | {"csrf_token": token}, follow_redirects=follow)


def signed_in(browser, url: str, role: str):
    """A phone-sized page signed in as `role` through the form; it is on its home."""
    # bypass_csp: only so the test can add axe-core to the page; the app's own policy holds
    context = browser.new_context(viewport=PHONE, locale="zh-CN", has_touch=True, bypass_csp=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{url}/login")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def fits_and_passes_axe(page) -> None:
    """No horizontal scroll at 360 px, no serious or critical axe finding."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (page.url, width)
    assert serious_violations(page) == [], page.url


def nav(page, label: str) -> None:
    page.click(f"nav.work >> text={label}")
    page.wait_for_load_state()
    fits_and_passes_axe(page)
