"""The browser's estimate equals the server's: the calculator page in a real Chromium."""

import pytest

from tests.browser import chromium, serving

CASES = [  # species, DBH cm, height m
    ("cunninghamia_lanceolata", 10.347, 12.6),
    ("cunninghamia_lanceolata", 5.134, 4.787),
    ("cunninghamia_lanceolata", 2.093, 2.2),
    ("cunninghamia_lanceolata", 4.999, 3.1),
    ("cunninghamia_lanceolata", 5.0, 3.1),
    ("cunninghamia_lanceolata", 48.2, 24.0),
    ("cinnamomum_camphora", 35.5, 14.0),
    ("pinus_massoniana", 18.0, 11.0),
    ("populus_spp", 27.3, 19.5),
    ("eucalyptus_spp", 15.1, 17.0),
    ("liquidambar_formosana", 22.0, 15.0),
    ("ginkgo_biloba", 61.0, 18.0),
    ("quercus_spp", 12.4, 9.0),
    ("osmanthus_fragrans", 9.8, 4.5),
]
PROJECTIONS = [
    ("cinnamomum_camphora", 3, 1000),
    ("cunninghamia_lanceolata", 20, 1),
    ("osmanthus_fragrans", 12, 40),
    ("eucalyptus_spp", 1, 5),
]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from server import create_app

    app = create_app({"INSTANCE_PATH": str(tmp_path_factory.mktemp("calc") / "instance")})
    with serving(app) as url, chromium() as browser:
        page = browser.new_page()
        yield page, url, app.test_client()


def server_estimate(client, body):
    response = client.post("/api/v1/carbon/estimate", json=body)
    assert response.status_code == 200, response.json
    return response.json


def open_calculator(page, url):
    page.goto(f"{url}/calculator")
    page.wait_for_selector("body[data-ready=true]")


def test_browser_and_server_give_the_same_grams(page_url):
    page, url, client = page_url
    open_calculator(page, url)
    browser_results = page.evaluate(
        """async ([cases, projections]) => {
            const carbon = await import('/app/js/carbon.js');
            const m = window.sipangMethod;
            return {
              measured: cases.map(([s, d, h]) => carbon.estimateTree(m, s, d, h)),
              projected: projections.map(([s, a, n]) => carbon.projectTree(m, s, a, n)),
            };
        }""",
        [CASES, PROJECTIONS],
    )
    for (species, dbh, height), seen in zip(CASES, browser_results["measured"], strict=True):
        expected = server_estimate(client, {"species": species, "dbh": dbh, "height": height})
        assert seen["co2e_g"] == expected["co2e_g"], (species, dbh, height)
        assert seen["route"] == expected["route"]
        assert seen["method_version"] == expected["method_version"]
        assert seen["agb_kg"] == pytest.approx(expected["agb_kg"], rel=1e-12)
    for (species, age, count), seen in zip(PROJECTIONS, browser_results["projected"], strict=True):
        expected = server_estimate(client, {"species": species, "age": age, "count": count})
        assert seen["projection"] is True
        assert (seen["co2e_g"], seen["annual_co2e_g"], seen["total_annual_co2e_g"]) == (
            expected["co2e_g"],
            expected["annual_co2e_g"],
            expected["total_annual_co2e_g"],
        )


def test_the_form_shows_the_fir_golden_case(page_url):
    page, url, _ = page_url
    open_calculator(page, url)
    page.select_option("#species", "cunninghamia_lanceolata")
    page.fill("#dbh", "10.347")
    page.fill("#height", "12.6")
    page.click("button[type=submit]")
    assert page.text_content("#co2e") == "54.815 千克"
    assert "实测" in page.text_content("#kind")


def test_the_seeds_camphor_question_gets_a_labelled_projection(page_url):
    page, url, client = page_url
    open_calculator(page, url)
    page.fill("#species-search", "香樟")
    assert page.eval_on_selector("#species", "s => s.value") == "cinnamomum_camphora"
    page.check("input[name=mode][value=age]")
    page.fill("#age", "3")
    page.fill("#count", "1000")
    page.click("button[type=submit]")
    expected = server_estimate(client, {"species": "cinnamomum_camphora", "age": 3, "count": 1000})
    assert "预测" in page.text_content("#kind")
    total = page.text_content("#total")
    assert f"每年 {expected['total_annual_co2e_g'] / 1e6:.3f} 吨".rstrip("0") in total or (
        f"{expected['total_annual_co2e_g'] / 1e6:g}" in total
    )
    assert expected["total_annual_co2e_g"] < 15_000_000


def test_fir_without_height_and_excluded_bamboo_get_clear_messages(page_url):
    page, url, _ = page_url
    open_calculator(page, url)
    page.select_option("#species", "cunninghamia_lanceolata")
    page.fill("#dbh", "12")
    page.fill("#height", "")
    page.click("button[type=submit]")
    assert "需要树高" in page.text_content("#error")
    page.select_option("#species", "phyllostachys_edulis")
    page.click("button[type=submit]")
    assert "bamboo" in page.text_content("#error")


def test_the_calculator_works_offline_after_the_first_visit(page_url):
    page, url, _ = page_url
    open_calculator(page, url)  # caches the parameter set
    page.context.route("**/api/v1/carbon/**", lambda route: route.abort())
    try:
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#species", "cunninghamia_lanceolata")
        page.fill("#dbh", "10.347")
        page.fill("#height", "12.6")
        page.click("button[type=submit]")
        assert page.text_content("#co2e") == "54.815 千克"
    finally:
        page.context.unroute("**/api/v1/carbon/**")
