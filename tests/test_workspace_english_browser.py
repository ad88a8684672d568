"""The English toggle in Chromium on a 360 px phone: a staff member clicks English in the
header, every screen of the navigation reads in English, fits the screen and passes axe, and
the choice lasts until 中文 is clicked."""

import pytest

from tests.browser import serving
from tests.workspace_helpers import fits_and_passes_axe, signed_in

NAVIGATION = {
    "admin": ["Villages", "Households", "Phones", "To review", "Carbon calculations"],
    "finance": ["Confirm payments", "Settlement batches"],
    "bureau": ["Monthly trends", "Village progress", "Map", "Ledger check"],
    "enterprise": ["Orders and holdings", "Invoices"],
}


@pytest.mark.parametrize("role", sorted(NAVIGATION))
def test_a_role_switches_to_english_and_back_by_clicking(app, browser, role):
    with serving(app) as url:
        page = signed_in(browser, url, role)
        page.click("header >> text=English")
        page.wait_for_load_state()
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "To do" in page.inner_text("main") or role == "bureau"
        fits_and_passes_axe(page)
        for label in NAVIGATION[role]:
            page.click(f"nav.work >> text={label}")
            page.wait_for_load_state()
            assert page.evaluate("document.documentElement.lang") == "en", label
            fits_and_passes_axe(page)
        page.reload()  # the choice lasts
        assert page.evaluate("document.documentElement.lang") == "en"
        page.click("header >> text=中文")
        page.wait_for_load_state()
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        page.context.close()
