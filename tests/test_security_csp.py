"""The app's own pages run under its Content-Security-Policy in Debian's Chromium, with no
bypass: no script, style, image or worker of the app is refused (the other browser tests
bypass the policy only for their own instruments)."""

import re

from tests.browser import chromium, serving
from tests.conftest import PASSWORD, PHONE

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def visit(page, url: str, messages: list[str]) -> list[str]:
    response = page.goto(url)
    assert "script-src 'self' 'nonce-" in response.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")
    return page.evaluate("window.__csp") + [m for m in messages if "Content Security" in m]


def test_public_pages_the_app_and_the_plate_run_under_the_policy(app, world):
    with serving(app) as site, chromium() as browser:
        context = browser.new_context(strict=True, viewport={"width": 360, "height": 740})
        context.add_init_script(WATCH)  # injected by the browser, not subject to the page
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda m: messages.append(m.text))
        found = {}
        for path in ("/", "/login", "/bundles", "/app/", f"/h/{world.household_a}"):
            found[path] = visit(page, f"{site}{path}", messages)
        # the second factor, then the plate's "notify me" button and its nonce'd script
        page.fill("input[name=phone_tail]", PHONE[-4:])
        with page.expect_navigation():
            page.press("input[name=phone_tail]", "Enter")
        page.wait_for_load_state("networkidle")
        assert page.locator("input[name=phone_tail]").count() == 0  # unlocked
        found["plate unlocked"] = page.evaluate("window.__csp")
        if page.locator("#push-enable").count():
            assert page.locator("#push-status").count() == 1
        assert all(v == [] for v in found.values()), found
        context.close()


def test_the_bureau_dashboard_runs_under_the_policy(app, world):
    with serving(app) as site, chromium() as browser:
        context = browser.new_context(strict=True, viewport={"width": 1280, "height": 800})
        context.add_init_script(WATCH)
        page = context.new_page()
        page.goto(f"{site}/login")
        page.fill("input[name=username]", "bureau")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        links = [
            href
            for href in page.eval_on_selector_all(
                "a[href]", "els => els.map(e => e.getAttribute('href'))"
            )
            if re.match(r"^/(bureau|dashboard)", href or "")
        ]
        violations = page.evaluate("window.__csp")
        for href in links[:3]:
            page.goto(f"{site}{href}")
            page.wait_for_load_state("networkidle")
            violations += page.evaluate("window.__csp")
        assert violations == []
        context.close()
