"""Every species of sipang-2026.2 against its cited source, recomputed here independently.

The equations below are typed from the sources (the allodb compilation's equations.csv rows
of Luo et al. 2018 and Xiang et al. 2016, named by equation id; the Global Wood Density
Database's China records; Zeng 2018's generic model), not read from the parameter set, so a
wrong coefficient in the set fails here.
"""

import math
import re
import statistics

import pytest

from server.carbon import estimate
from server.carbon.estimate import estimate_tree
from server.carbon.method import load_method

METHOD = load_method("sipang-2026.2")
SPECIES = METHOD.species


def xiang(components):
    """Σ CFᵢ·exp(aᵢ + bᵢ·ln D): a Xiang et al. 2016 component sum with each CF."""
    return lambda d: sum(cf * math.exp(a + b * math.log(d)) for a, b, cf in components)


# species id → (allodb equation id, AGB kg from D cm, DBH range, n)
EQUATIONS = {
    "cinnamomum_camphora": ("9d308b", lambda d: 0.0769 * d**2.4566, (8, 16), None),
    "pinus_massoniana": (
        "3a2cba",
        # e63fa5 stem, 6510d4 branches, f6c8df foliage
        xiang([(-1.754, 2.154, 1.014), (-5.060, 2.569, 1.106), (-5.595, 2.348, 1.345)]),
        (2.2, 58),
        10,
    ),
    "populus_spp": ("698c20", lambda d: 0.0791 * d**2.4249, (7.9, 30.6), 9),
    "eucalyptus_spp": ("9a6fdc", lambda d: 0.0944 * d**2.4976, (2, 14), 70),
    "liquidambar_formosana": (
        "c0bb58",
        # ab2106 stem, 2aa241 branches, 3a8f9b foliage
        xiang([(-1.522, 2.185, 1.019), (-6.345, 3.218, 1.135), (-10.080, 3.842, 1.343)]),
        (5.5, 47.2),
        10,
    ),
    "quercus_spp": ("7fca57", lambda d: 0.27009 * d**2.24291, (1, 74), 14),
    "metasequoia_glyptostroboides": (
        "aab11f",
        lambda d: math.exp(-2.1002 + 2.1561 * math.log(d)),
        (3.2, 24.8),
        18,
    ),
    "paulownia_spp": ("519a7a", lambda d: 0.1181 * d**2.1191, (15, 50), 24),
    "ulmus_spp": ("7e8719", lambda d: 0.01342 * d**2.75182, (1, 60), 16),
}

# species id → GWDD China records (g/cm³) of its basic wood density
WOOD_DENSITY = {
    "ginkgo_biloba": [0.458, 0.451],
    "osmanthus_fragrans": [0.832, 0.851],
    "triadica_sebifera": [0.483, 0.458],  # recorded as Sapium sebiferum
    "salix_spp": [0.451, 0.506, 0.424, 0.49],  # Salix matsudana
    "robinia_pseudoacacia": [0.682, 0.698, 0.652, 0.681],
}
# 10th percentile of the GWDD China records: 842 broadleaf, 166 conifer
OTHER_DENSITY = {"other_broadleaf": 0.3931, "other_conifer": 0.3075}

CHAVE_EQ7_RSE = 0.4170  # Chave et al. 2014 Eq. 7, BIOMASS data/param_7 posterior mean


def close(actual, expected, share=0.001):
    return abs(actual - expected) <= share * abs(expected)


def sizes_in(low, high):
    return [low, (low + high) / 2, high, low + 0.37 * (high - low)]


@pytest.mark.parametrize("species_id", sorted(EQUATIONS))
def test_each_species_equation_reproduces_its_source_within_a_tenth_of_a_percent(species_id):
    equation_id, agb_of, (low, high), n = EQUATIONS[species_id]
    species = SPECIES[species_id]
    assert species["route"] == "species_equation"
    assert species["ladder_step"] == 2
    assert equation_id in species["sources"]["equation.agb_terms"]
    for dbh in sizes_in(low, high):
        tree = estimate_tree(species_id, dbh)
        agb = agb_of(dbh)
        bgb = agb * species["equation"]["root_shoot"]
        assert close(tree.agb_kg, agb), (species_id, dbh, tree.agb_kg, agb)
        assert close(tree.bgb_kg, bgb)
        assert close(tree.carbon_kg, (agb + bgb) * 0.47)
        co2e_g = (agb + bgb) * 0.47 * 44 / 12 * 1000
        assert abs(tree.co2e_g - co2e_g) <= max(0.5, 0.001 * co2e_g)


@pytest.mark.parametrize("species_id", sorted(EQUATIONS))
def test_each_fitted_range_is_the_sources_own(species_id):
    equation_id, _, (low, high), n = EQUATIONS[species_id]
    fitted = SPECIES[species_id]["fitted_range"]
    assert fitted["dbh_cm"] == [low, high]
    assert fitted["n"] == n
    assert equation_id in fitted["source"]
    if n is None:
        assert "not reported" in fitted["source"]


@pytest.mark.parametrize("species_id", sorted(WOOD_DENSITY) + sorted(OTHER_DENSITY))
def test_generic_species_use_their_own_wood_density(species_id):
    species = SPECIES[species_id]
    records = WOOD_DENSITY.get(species_id)
    density = statistics.fmean(records) if records else OTHER_DENSITY[species_id]
    assert species["route"] == "generic"
    assert species["ladder_step"] == 3
    assert species["generic"]["wood_density"] == pytest.approx(density, abs=5e-6)
    source = species["sources"]["generic.wood_density"]
    assert "Global Wood Density Database" in source
    for record in records or []:
        assert f"{record:g}" in source
    a = 0.294 if species["group"] == "conifer" else 0.3
    for dbh in (5, 20, 45):
        agb = a * density * dbh ** (7 / 3)
        tree = estimate_tree(species_id, dbh)
        assert close(tree.agb_kg, agb)
        assert close(tree.carbon_kg, agb * (1 + species["generic"]["root_shoot"]) * 0.47)


def test_no_species_keeps_the_flat_0_40_wood_density():
    for species in SPECIES.values():
        if species["route"] == "generic":
            assert species["generic"]["wood_density"] != 0.4
            assert "deliberately low" not in species["sources"]["generic.wood_density"]


def test_model_errors_come_from_the_sources():
    pine, sweetgum = SPECIES["pinus_massoniana"], SPECIES["liquidambar_formosana"]
    assert pine["model_error"]["sigma_ln"] == round(math.sqrt(2 * math.log(1.034)), 4)
    assert sweetgum["model_error"]["sigma_ln"] == round(math.sqrt(2 * math.log(1.021)), 4)
    for sid in WOOD_DENSITY:
        assert SPECIES[sid]["model_error"]["sigma_ln"] == CHAVE_EQ7_RSE
    for sid, cv in (("other_broadleaf", 0.2533), ("other_conifer", 0.2042)):
        expected = math.sqrt(0.417039**2 + cv**2)
        assert SPECIES[sid]["model_error"]["sigma_ln"] == pytest.approx(expected, abs=1e-4)
    largest = max(s["model_error"]["sigma_ln"] for s in SPECIES.values() if "model_error" in s)
    assert SPECIES["other_broadleaf"]["model_error"]["sigma_ln"] == largest


def test_carbon_fractions_are_the_standards_or_ipccs():
    fir = SPECIES["cunninghamia_lanceolata"]
    assert (fir["carbon_fraction_above"], fir["carbon_fraction_below"]) == (0.5003, 0.488)
    for species in SPECIES.values():
        block = species.get("equation") or species.get("generic")
        if block:
            assert block["carbon_fraction"] == 0.47
    # 2026.1's unverified 0.5162 (pine) and 0.5238 (eucalyptus) are gone.
    for sid in ("pinus_massoniana", "eucalyptus_spp"):
        assert SPECIES[sid]["equation"]["carbon_fraction"] == 0.47


VILLAGE = {
    "乌桕": "triadica_sebifera",
    "水杉": "metasequoia_glyptostroboides",
    "泡桐": "paulownia_spp",
    "柳树": "salix_spp",
    "榆树": "ulmus_spp",
    "刺槐": "robinia_pseudoacacia",
    "其他阔叶": "other_broadleaf",
    "其他针叶": "other_conifer",
}


@pytest.mark.parametrize(("name_zh", "species_id"), sorted(VILLAGE.items()))
def test_the_species_a_village_has_are_listed_with_chinese_and_local_names(name_zh, species_id):
    species = SPECIES[species_id]
    assert species["name_zh"] == name_zh
    assert species["local_names"] and all(species["local_names"])
    assert species["route"] != "excluded"
    assert set(species["limits"]) >= {"dbh_cm", "height_m"}
    assert set(species["growth_ceiling"]) == {"dbh_cm_per_year", "co2e_kg_per_year"}


def test_every_species_of_the_set_can_be_registered(db):
    registered = {row["id"] for row in db.query("SELECT id FROM species")}
    assert set(SPECIES) <= registered


def test_a_species_on_no_list_goes_to_other_with_the_largest_uncertainty():
    others = [estimate_tree(s, 20.0).uncertainty_pct for s in ("other_broadleaf", "other_conifer")]
    named = [estimate_tree(s, 20.0, 12.0).uncertainty_pct for s in SPECIES if s in EQUATIONS]
    assert min(others) > max(named)


CITATION = re.compile(r"LY/T|Luo|Xiang|Zanne|Zeng|IPCC|Sci\. Rep\.|Chave|DESIGN\.md|林业科学研究")


@pytest.mark.parametrize("species_id", sorted(SPECIES))
def test_no_coefficient_without_a_citation(species_id):
    species = SPECIES[species_id]
    for key, source in species["sources"].items():
        if key in ("limits", "growth_ceiling", "projection"):
            assert "screening" in source or "never credited" in source
            continue
        assert CITATION.search(source), (species_id, key, source)


def test_excluded_species_say_why_and_are_step_4():
    for sid in ("phyllostachys_edulis", "citrus_reticulata"):
        assert SPECIES[sid]["route"] == "excluded"
        assert SPECIES[sid]["ladder_step"] == 4
        assert SPECIES[sid]["excluded_reason"]


@pytest.mark.parametrize("species_id", sorted(EQUATIONS))
def test_a_tree_outside_its_fitted_range_is_flagged_extrapolated_and_less_certain(species_id):
    """Documented behaviour: the stock is the equation extrapolated (so a tree's stock never
    jumps at the edge), flagged `outside_fitted_range` with a larger uncertainty; crediting
    caps growth at the range's edge (server/carbon/records.py)."""
    _, agb_of, (low, high), _ = EQUATIONS[species_id]
    inside = estimate_tree(species_id, high)
    outside = estimate_tree(species_id, high * 1.5)
    assert [f["code"] for f in inside.flags] == []
    assert "outside_fitted_range" in [f["code"] for f in outside.flags]
    assert close(outside.agb_kg, agb_of(high * 1.5))
    assert outside.uncertainty_pct > inside.uncertainty_pct
    if low > 1:
        below = estimate_tree(species_id, low / 2)
        assert "outside_fitted_range" in [f["code"] for f in below.flags]
        forked = estimate_tree(species_id, stems_cm=[high, low / 2])  # one small stem
        assert "outside_fitted_range" in [f["code"] for f in forked.flags]


def test_the_old_parameter_set_is_unchanged_for_old_calculations():
    old = load_method("sipang-2026.1")
    assert old.sha256 == "64613e0a17f3af6ddcf9d0a3d04dd896d023e8e5b90ec045bb0a1e2bce235a58"
    tree = estimate_tree("populus_spp", 27.3, 19.5, method=old)
    assert tree.agb_kg == pytest.approx(0.3 * 0.4 * 27.3 ** (7 / 3), rel=1e-12)
    assert tree.uncertainty_pct == 30
    assert estimate.needs_height(old.species["cunninghamia_lanceolata"])


@pytest.mark.parametrize("species_id", sorted(SPECIES))
def test_every_species_keeps_the_fields_crediting_reads(species_id):
    """The contract with crediting (server/carbon/records.py, plausibility.py)."""
    species = SPECIES[species_id]
    assert {"id", "name_zh", "local_names", "group", "route", "ladder_step"} <= set(species)
    if species["route"] == "excluded":
        return
    assert {"limits", "growth_ceiling", "fitted_range", "model_error", "height_model"} <= set(
        species
    )
    fitted = species["fitted_range"]
    assert set(fitted) == {"dbh_cm", "height_m", "n", "source"}
    low, high = fitted["dbh_cm"]
    assert 0 < low < high
    assert fitted["height_m"] is None or fitted["height_m"][0] < fitted["height_m"][1]
    assert fitted["n"] is None or (isinstance(fitted["n"], int) and fitted["n"] > 0)
    assert len(fitted["source"]) > 20


def test_the_crediting_constants_stay():
    assert METHOD.crediting["default_buffer_pct"] == 20
    assert METHOD.crediting["uncertainty_threshold_pct"] == 10
    assert load_method().version == "sipang-2026.2"  # the current set is the newest
