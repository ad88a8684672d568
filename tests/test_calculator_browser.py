"""The browser's estimate equals the server's: the calculator page in a real Chromium."""

import pytest

from server.carbon.method import load_method
from tests.browser import chromium, serving

METHOD = load_method()


def every_species_cases():
    """For every creditable species: both ends of its fitted range, its middle, a tree outside
    it, a tree without height (the height curve) and a forked tree (the sum of its stems)."""
    cases = []
    for sid, species in sorted(METHOD.species.items()):
        if species["route"] == "excluded":
            continue
        low, high = species["fitted_range"]["dbh_cm"]
        for dbh in (low, (low + high) / 2, high, high * 1.6):
            cases.append((sid, round(dbh, 3), 11.5))
        cases.append((sid, round((low + high) / 2, 3), None))
        cases.append((sid, [round(high * 0.6, 2), round(low + 1, 2), 3.3], 9.0))
    return cases


CASES = [  # species, DBH cm (or each stem's), height m (None: not measured)
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
    ("cunninghamia_lanceolata", 12.0, None),
    ("cunninghamia_lanceolata", [6, 8], 9.0),
    *every_species_cases(),
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
    assert len(CASES) > 100
    for (species, dbh, height), seen in zip(CASES, browser_results["measured"], strict=True):
        body = {"species": species, "height": height}
        body |= {"stems": dbh} if isinstance(dbh, list) else {"dbh": dbh}
        expected = server_estimate(client, {k: v for k, v in body.items() if v is not None})
        assert seen["co2e_g"] == expected["co2e_g"], (species, dbh, height)
        assert seen["route"] == expected["route"]
        assert seen["method_version"] == expected["method_version"]
        assert seen["agb_kg"] == pytest.approx(expected["agb_kg"], rel=1e-12)
        assert seen["bgb_kg"] == pytest.approx(expected["bgb_kg"], rel=1e-12)
        assert seen["uncertainty_pct"] == expected["uncertainty_pct"], (species, dbh, height)
        inputs = expected["inputs"]
        assert seen["inputs"].keys() == inputs.keys()
        assert seen["inputs"].get("height_source") == inputs.get("height_source")
        assert seen["inputs"].get("stems_cm") == inputs.get("stems_cm")
        for key in ("dbh_cm", "height_m"):
            if inputs[key] is None:
                assert seen["inputs"][key] is None
            else:
                assert seen["inputs"][key] == pytest.approx(inputs[key], rel=1e-12)
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


def test_fir_without_height_says_its_height_was_estimated_and_bamboo_is_excluded(page_url):
    page, url, client = page_url
    open_calculator(page, url)
    page.select_option("#species", "cunninghamia_lanceolata")
    page.fill("#dbh", "12")
    page.fill("#height", "")
    page.click("button[type=submit]")
    expected = server_estimate(client, {"species": "cunninghamia_lanceolata", "dbh": 12})
    assert page.text_content("#co2e") == f"{expected['co2e_g'] / 1000:.3f} 千克"
    assert "树高曲线估算" in page.text_content("#flags")
    assert f"±{expected['uncertainty_pct']} %" in page.text_content("#uncertainty")
    page.select_option("#species", "phyllostachys_edulis")
    page.click("button[type=submit]")
    assert "bamboo" in page.text_content("#error")


def test_the_calculator_shows_each_species_route_source_range_and_carbon_fraction(page_url):
    page, url, client = page_url
    open_calculator(page, url)
    listed = {s["id"]: s for s in client.get("/api/v1/species").json["species"]}
    for sid in ("populus_spp", "cunninghamia_lanceolata", "salix_spp", "paulownia_spp"):
        page.select_option("#species", sid)
        shown = listed[sid]
        low, high = shown["fitted_range"]["dbh_cm"]
        assert f"第 {shown['ladder_step']} 级" in page.text_content("#species-route")
        assert f"{low:g}–{high:g} 厘米" in page.text_content("#species-range")
        assert str(shown["carbon_fraction"]["above"]) in page.text_content("#species-fraction")
        assert page.text_content("#species-source").strip() in shown["source"] or shown[
            "source"
        ].startswith(page.text_content("#species-source").split("；")[0])


def test_a_forked_tree_is_the_sum_of_its_stems_in_the_form(page_url):
    page, url, client = page_url
    open_calculator(page, url)
    page.select_option("#species", "populus_spp")
    page.fill("#dbh", "12, 8")
    page.fill("#height", "")
    page.click("button[type=submit]")
    expected = server_estimate(client, {"species": "populus_spp", "stems": [12, 8]})
    assert page.text_content("#co2e") == f"{expected['co2e_g'] / 1000:.3f} 千克"
    assert "2 个分干" in page.text_content("#flags")


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
