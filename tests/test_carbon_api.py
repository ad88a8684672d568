"""The carbon API and records: stored estimates anyone can recompute, the public calculator,
plausibility flags and their review, and credit calculations from measured growth."""

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, bearer

from server import devices, households, trees, users
from server.carbon.estimate import estimate_tree, estimated_height_m, to_grams
from server.carbon.method import canonical_json, load_method
from server.cli import main
from server.clock import iso, now
from server.db import first, get_db

FIR = "cunninghamia_lanceolata"
CAMPHOR = "cinnamomum_camphora"
BAMBOO = "phyllostachys_edulis"
CITRUS = "citrus_reticulata"
PHOTO = "cd" * 32
METHOD = load_method()
ESTIMATE = "/api/v1/carbon/estimate"
GRAMS_PER_TONNE = 1_000_000
# Village A's centre is 29.26 N, 115.1 E; one degree of latitude is about 111.2 km.
CENTRE = (29.26, 115.1)
METRES_PER_DEGREE_LAT = 6_371_000 * math.pi / 180

# A crediting period before today (nothing in it looks like clock skew) and before the seeded
# tree was first measured (2026), so only the trees a test plants count in it.
PERIOD = {"period_start": "2025-01-01", "period_end": "2025-12-31"}
BEFORE = "2024-06-01T08:00:00.000Z"  # baseline, before the period
DURING = "2025-06-01T08:00:00.000Z"  # re-measurement, inside the period


# --- helpers ---------------------------------------------------------------------------


@dataclass
class Recorded:
    id: str
    flags: list[dict[str, str]]


def measured(at: str, dbh_mm: int | list[int], height_cm: int | None = None, **extra) -> dict:
    """One measurement to record: DBH in mm (a list for a multi-stem tree), height in cm."""
    stems = dbh_mm if isinstance(dbh_mm, list) else [dbh_mm]
    return {"client_time": at, "stems_mm": stems, "height_cm": height_cm, **extra}


def plant(
    app,
    species: str,
    measurements: list[dict],
    *,
    household: str | None = None,
    planting_year: int | None = None,
    status: tuple[str, str] | None = None,
) -> tuple[str, list[Recorded]]:
    """Register a tree (household A unless told) and record its measurements through the
    services, each with a photo unless told otherwise; returns the tree id and measurements."""
    with app.app_context():
        db = get_db()
        owner = first(
            db, "SELECT * FROM households WHERE code = ?", [household or app.world.household_a]
        )
        tree_id = str(uuid.uuid4())
        trees.register_tree(
            db,
            owner,
            tree_id=tree_id,
            species_id=species,
            position="house",
            planting_year=planting_year,
        )
        recorded = []
        for measurement in measurements:
            measurement_id = str(uuid.uuid4())
            flags = trees.record_measurement(
                db, tree_id, measurement_id=measurement_id, **{"photo_sha256": PHOTO} | measurement
            )
            recorded.append(Recorded(measurement_id, flags))
        if status:
            trees.set_status(db, tree_id, *status)
    return tree_id, recorded


def new_household(app, village_code: str | None = None, name: str = "王五") -> str:
    with app.app_context():
        db = get_db()
        village = first(
            db, "SELECT * FROM villages WHERE code = ?", [village_code or app.world.village_a]
        )
        return households.create_household(db, village, head_name=name)["code"]


def other_county_bureau(app) -> str:
    """A bureau user of county 360424 (village C), and its bearer token."""
    with app.app_context():
        db = get_db()
        user = users.create_user(
            db,
            username="bureau.xiushui",
            display_name="修水县林业局",
            role="bureau",
            password=PASSWORD,
            county_code="360424",
        )
        return users.issue_token(db, user["id"], "test")


def other_village_measurer(app) -> str:
    """A measurer of village B with an enrolled phone, and the phone's bearer token."""
    world = app.world
    with app.app_context():
        db = get_db()
        measurer = users.create_user(
            db,
            username="measurer.b",
            display_name="西山村计量员",
            role="measurer",
            village_code=world.village_b,
        )
        code = devices.create_enrolment_code(db, measurer, world.user_ids["admin"])["code"]
        return devices.enrol(db, code, "phone b")["token"]


def table_counts(db) -> dict[str, int]:
    return {name: db[name].count for name in db.table_names()}


def stored_co2e(db, measurement_id: str) -> int:
    return db["measurement_estimates"].get(measurement_id)["co2e_g"]


def flags_of(db, measurement_id: str) -> list[tuple[str, str]]:
    return [
        (row["code"], row["reason"])
        for row in db.query(
            "SELECT code, reason FROM flags WHERE measurement_id = ? ORDER BY id", [measurement_id]
        )
    ]


def calculate(client, world, body=None, village=None, token=None):
    return client.post(
        f"/api/v1/villages/{village or world.village_a}/credit-calculations",
        json=body or PERIOD,
        headers=bearer(token or world.tokens["bureau"]),
    )


def review(client, world, flag_id, decision="accepted", token=None, note="checked on site"):
    return client.post(
        f"/api/v1/flags/{flag_id}/review",
        json={"decision": decision, "note": note},
        headers=bearer(token or world.tokens["bureau"]),
    )


def expected_deduction(growth_g: int, uncertainty_pct: int) -> int:
    """The share of relative uncertainty above 10 % of a gain, rounded up (written out here)."""
    share = max(uncertainty_pct - METHOD.crediting["uncertainty_threshold_pct"], 0)
    return -(-max(growth_g, 0) * share // 100)


def assert_household_lines_balance(calculation: dict) -> None:
    for line in calculation["households"]:
        assert line["issued_g"] + line["carry_out_g"] == (
            line["carry_in_g"] + line["gross_g"] - line["deduction_g"]
        ), line
    assert sum(line["gross_g"] for line in calculation["households"]) == calculation["gross_g"]
    assert (
        sum(line["deduction_g"] for line in calculation["households"]) == calculation["deduction_g"]
    )
    assert sum(line["issued_g"] for line in calculation["households"]) == (
        calculation["tonnes"] * GRAMS_PER_TONNE
    )


def growth_of(line: dict) -> int:
    if line["stock_end_g"] is None:
        return -line["stock_start_g"]
    return line["stock_end_g"] - line["stock_start_g"]


# --- stored estimates: anyone can recompute them -----------------------------------------


def test_every_stored_measurement_has_an_estimate_that_recomputes_exactly(app, db):
    household = new_household(app)
    plant(app, FIR, [measured(BEFORE, 52, 480), measured(DURING, 61, 540)])
    plant(app, FIR, [measured(BEFORE, 21, 220)], household=household)  # the D < 5 cm branch
    plant(app, FIR, [measured(BEFORE, [60, 80], 900)])  # two stems
    plant(app, CAMPHOR, [measured(BEFORE, 150, 900), measured(DURING, 170, 1000)])
    plant(app, "osmanthus_fragrans", [measured(BEFORE, [40, 30, 20], 350)])
    plant(app, BAMBOO, [measured(BEFORE, 100)], household=household)
    plant(app, CITRUS, [measured(BEFORE, 90, 300)])

    measurements = list(
        db.query("SELECT m.*, t.species_id FROM measurements m JOIN trees t ON t.id = m.tree_id")
    )
    estimates = {row["measurement_id"]: row for row in db["measurement_estimates"].rows}
    assert len(measurements) == 2 + 9
    assert set(estimates) == {m["id"] for m in measurements}
    methods = {row["version"]: row for row in db["methods"].rows}
    assert methods[METHOD.version]["sha256"] == METHOD.sha256
    # The stored document is the parameter set, and hashes to its own sha256.
    document = methods[METHOD.version]["document"]
    assert json.loads(document) == METHOD.document
    assert hashlib.sha256(document.encode()).hexdigest() == METHOD.sha256
    for measurement in measurements:
        stored = estimates[measurement["id"]]
        assert stored["method_version"] == METHOD.version
        inputs = json.loads(stored["inputs"])
        species = METHOD.species[measurement["species_id"]]
        if species["route"] == "excluded":
            assert stored["route"] == "excluded"
            assert inputs == {"reason": species["excluded_reason"]}
            assert (stored["agb_g"], stored["bgb_g"], stored["carbon_g"], stored["co2e_g"]) == (
                0,
                0,
                0,
                0,
            )
            continue
        # The inputs are the measurement's own sizes.
        assert inputs["height_m"] == measurement["height_cm"] / 100
        if measurement["stems_mm"]:
            assert inputs["stems_cm"] == [d / 10 for d in json.loads(measurement["stems_mm"])]
            assert round(inputs["dbh_cm"] * 10) == measurement["dbh_mm"]
        else:
            assert "stems_cm" not in inputs
            assert inputs["dbh_cm"] == measurement["dbh_mm"] / 10
        # An auditor's recomputation from the stored inputs and the named parameter set.
        again = estimate_tree(
            measurement["species_id"],
            None if "stems_cm" in inputs else inputs["dbh_cm"],
            inputs["height_m"],
            stems_cm=inputs.get("stems_cm"),
            method=load_method(stored["method_version"]),
        )
        assert again.route == stored["route"]
        assert again.co2e_g == stored["co2e_g"]
        assert to_grams(again.agb_kg) == stored["agb_g"]
        assert to_grams(again.bgb_kg) == stored["bgb_g"]
        assert to_grams(again.carbon_kg) == stored["carbon_g"]
        assert again.uncertainty_pct == stored["uncertainty_pct"]


def test_the_seeded_measurements_recompute_from_their_stored_inputs(app, db, world):
    rows = list(
        db.query(
            """SELECT e.* FROM measurement_estimates e JOIN measurements m
               ON m.id = e.measurement_id WHERE m.tree_id = ? ORDER BY m.client_time""",
            [world.tree_a],
        )
    )
    assert [json.loads(row["inputs"]) for row in rows] == [
        {"dbh_cm": 10.3, "height_m": 12.6, "height_source": "measured"},
        {"dbh_cm": 11.0, "height_m": 13.0, "height_source": "measured"},
    ]
    for row in rows:
        inputs = json.loads(row["inputs"])
        assert row["co2e_g"] == estimate_tree(FIR, inputs["dbh_cm"], inputs["height_m"]).co2e_g


def test_a_fir_measured_without_height_takes_the_curve_and_records_it(app, db):
    _, (no_height,) = plant(app, FIR, [measured(BEFORE, 130, None)])
    stored = db["measurement_estimates"].get(no_height.id)
    inputs = json.loads(stored["inputs"])
    assert inputs["height_source"] == "estimated"
    assert inputs["height_m"] == estimated_height_m(METHOD, FIR, 13.0)
    assert stored["co2e_g"] == estimate_tree(FIR, 13.0, inputs["height_m"]).co2e_g


def test_a_measurement_the_method_cannot_estimate_is_flagged_and_never_credited(app, db, world):
    tree_id, (baseline, absurd) = plant(
        app, FIR, [measured(BEFORE, 120, 1100), measured(DURING, 3500, 1200)]
    )
    failed = [f for f in absurd.flags if f["code"] == "estimate_failed"]
    assert failed and "dbh" in failed[0]["reason"]
    assert db["measurement_estimates"].count_where("measurement_id = ?", [absurd.id]) == 0

    response = calculate(app.test_client(), world)

    assert response.status_code == 201
    (line,) = [t for t in response.json["calculation"]["trees"] if t["tree_id"] == tree_id]
    assert line["start_measurement_id"] == line["end_measurement_id"] == baseline.id


# --- the public calculator -------------------------------------------------------------


def test_estimate_reproduces_the_fir_golden_case(client, db):
    before = table_counts(db)

    response = client.post(ESTIMATE, json={"species": FIR, "dbh": 10.347, "height": 12.6})

    assert response.status_code == 200
    body = response.json
    assert body["species"] == FIR
    assert body["route"] == "species_model"
    assert body["co2e_g"] == 54815
    assert abs(body["agb_kg"] - 25.50) <= 0.0255
    assert abs(body["bgb_kg"] - 4.488) <= 0.004488
    assert abs(body["carbon_kg"] - 14.95) <= 0.01495
    assert body["projection"] is False
    assert body["annual_co2e_g"] is None
    assert body["method_version"] == METHOD.version
    assert body["method_sha256"] == METHOD.sha256
    assert body["inputs"] == {"dbh_cm": 10.347, "height_m": 12.6, "height_source": "measured"}
    assert body["flags"] == []
    assert table_counts(db) == before  # the calculator stores nothing


def test_estimate_from_age_alone_is_a_labelled_projection(client, db):
    before = table_counts(db)

    response = client.post(ESTIMATE, json={"species": FIR, "age": 20})

    assert response.status_code == 200
    body = response.json
    assert body["projection"] is True
    assert isinstance(body["annual_co2e_g"], int)
    assert body["annual_co2e_g"] > 0
    assert body["inputs"]["age"] == 20
    assert [flag["code"] for flag in body["flags"]] == ["projection"]
    assert "never issued" in body["flags"][0]["reason"]
    assert table_counts(db) == before


def test_the_seeds_camphor_calculator_answers_with_a_projection_not_15_tonnes(client):
    response = client.post(ESTIMATE, json={"species": CAMPHOR, "age": 3, "count": 1000})

    assert response.status_code == 200
    body = response.json
    assert body["projection"] is True
    assert body["count"] == 1000
    assert body["total_annual_co2e_g"] == body["annual_co2e_g"] * 1000
    assert body["total_annual_co2e_g"] < 15 * GRAMS_PER_TONNE


def test_estimate_of_a_multi_stem_tree_is_the_sum_of_its_stems(client):
    response = client.post(ESTIMATE, json={"species": FIR, "stems": [6, 8], "height": 9})

    assert response.status_code == 200
    body = response.json
    assert body["inputs"] == {
        "dbh_cm": 10.0,
        "height_m": 9,
        "stems_cm": [6, 8],
        "height_source": "measured",
    }
    stems = estimate_tree(FIR, 6, 9).carbon_kg + estimate_tree(FIR, 8, 9).carbon_kg
    assert body["co2e_g"] == to_grams(stems * 44 / 12)
    assert body["co2e_g"] < estimate_tree(FIR, 10.0, 9).co2e_g
    assert body["projection"] is False


BAD_ESTIMATES = [
    ({"species": "quercus_imaginaria", "dbh": 10, "height": 8}, "species", "/api/v1/species"),
    ({"species": FIR, "dbh": -1, "height": 8}, "dbh", "between 0.1 and 300.0 cm"),
    ({"species": FIR, "dbh": 1e6, "height": 8}, "dbh", "between 0.1 and 300.0 cm"),
    ({"species": FIR, "dbh": 10, "height": 500}, "height", "between 0.3 and 80.0 m"),
    ({"species": FIR, "age": 0}, "age", "between 1 and 300 years"),
    ({"species": FIR, "age": 400}, "age", "between 1 and 300 years"),
    ({"species": FIR, "dbh": 10, "height": 8, "age": 0}, "age", "between 1 and 300 years"),
    ({"species": FIR, "dbh": 10, "height": 8, "age": -5}, "age", "between 1 and 300 years"),
    ({"species": FIR, "dbh": 10, "height": 8, "count": 0}, "count", "between 1 and"),
    ({"species": FIR, "stems": [6, -8], "height": 8}, "stems_cm/1", "between 0.1 and 300.0"),
    ({"species": FIR}, "dbh", "required"),
    ({"species": BAMBOO, "dbh": 10}, "species", "bamboo methodology"),
    ({"species": CITRUS, "dbh": 10, "height": 3}, "species", "Fruit trees"),
    ({"species": FIR, "dbh": "10", "height": 8}, "dbh", "not of type 'number'"),
    ({"species": FIR, "dbh": True, "height": 8}, "dbh", "not of type 'number'"),
    ({"species": FIR, "age": 2.5}, "age", "not of type 'integer'"),
    ({"species": 7, "dbh": 10, "height": 8}, "species", "not of type 'string'"),
    ({"species": FIR, "stems": [], "height": 8}, "stems", "should be non-empty"),
    ({"dbh": 10, "height": 8}, "(body)", "'species' is a required property"),
    ({"species": FIR, "dbh": 10, "height": 8, "colour": "green"}, "(body)", "'colour'"),
]


@pytest.mark.parametrize(("body", "field", "problem"), BAD_ESTIMATES)
def test_bad_estimate_input_names_the_field_and_stores_nothing(client, db, body, field, problem):
    before = table_counts(db)

    response = client.post(ESTIMATE, json=body)

    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "validation_failed"
    assert any(d["field"] == field and problem in d["problem"] for d in error["details"]), error
    assert table_counts(db) == before


def test_estimate_names_every_problem_at_once(client):
    body = {"species": "quercus_imaginaria", "dbh": 10, "height": 8, "age": -5}

    response = client.post(ESTIMATE, json=body)

    assert response.status_code == 422
    assert [d["field"] for d in response.json["error"]["details"]] == ["age", "species"]


def test_estimate_with_both_dbh_and_stems_is_refused(client, db):
    before = table_counts(db)

    response = client.post(ESTIMATE, json={"species": FIR, "dbh": 10, "stems": [3, 4], "height": 8})

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert [d["field"] for d in response.json["error"]["details"]] == ["stems"]
    assert table_counts(db) == before


# --- the command line ------------------------------------------------------------------


def sipang(*args: str):
    return CliRunner().invoke(main, ["carbon", "estimate", *args])


def test_cli_estimate_prints_one_json_object():
    result = sipang("--species", FIR, "--dbh", "10.347", "--height", "12.6", "--json")

    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    body = json.loads(result.output)
    assert body["species"] == FIR
    assert body["method_version"] == METHOD.version
    assert abs(body["agb_kg"] - 25.50) <= 0.0255
    assert abs(body["bgb_kg"] - 4.488) <= 0.004488
    assert abs(body["carbon_kg"] - 14.95) <= 0.01495
    assert isinstance(body["co2e_g"], int)
    assert body["co2e_g"] == 54815
    assert body["projection"] is False
    assert body["flags"] == []


def test_cli_estimate_agrees_with_the_api(client):
    result = sipang("--species", FIR, "--stem", "6", "--stem", "8", "--height", "9", "--json")
    response = client.post(ESTIMATE, json={"species": FIR, "stems": [6, 8], "height": 9})

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == response.json


def test_cli_estimate_with_age_only_is_a_projection():
    result = sipang("--species", CAMPHOR, "--age", "3", "--count", "1000", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["projection"] is True
    assert isinstance(body["annual_co2e_g"], int)
    assert body["total_annual_co2e_g"] == 1000 * body["annual_co2e_g"]
    assert [flag["code"] for flag in body["flags"]] == ["projection"]


def test_cli_estimate_without_json_labels_a_projection():
    result = sipang("--species", FIR, "--age", "20")

    assert result.exit_code == 0, result.output
    assert "projection (never credited)" in result.output
    assert "CO2e per year" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--species", "quercus_imaginaria", "--dbh", "10", "--height", "8"), "species:"),
        (("--species", FIR, "--dbh", "-1", "--height", "8"), "dbh: must be between 0.1 and 300"),
        (("--species", FIR, "--dbh", "1e6", "--height", "8"), "dbh: must be between"),
        (("--species", FIR, "--dbh", "10", "--height", "500"), "height: must be between 0.3"),
        (("--species", FIR, "--age", "0"), "age: must be between 1 and 300"),
        (("--species", FIR, "--dbh", "10", "--height", "8", "--age", "-5"), "age: must be"),
        (("--species", BAMBOO, "--dbh", "10"), "species: 毛竹"),
        (("--species", FIR, "--dbh", "ten", "--height", "8"), "'ten' is not a valid float"),
    ],
)
def test_cli_estimate_bad_input_fails_naming_the_field(args, message):
    result = sipang(*args, "--json")

    assert result.exit_code != 0
    assert message in result.output
    assert "{" not in result.output  # no JSON on failure


# --- species and parameter sets --------------------------------------------------------


def test_species_lists_routes_heights_and_exclusions(client):
    response = client.get("/api/v1/species")

    assert response.status_code == 200
    assert response.json["method_version"] == METHOD.version
    species = {s["id"]: s for s in response.json["species"]}
    assert set(species) == set(METHOD.species)
    fir = species[FIR]
    assert (fir["route"], fir["creditable"], fir["needs_height"]) == ("species_model", True, True)
    assert fir["scientific_name"] == "Cunninghamia lanceolata"
    assert fir["name_zh"] == "杉木"
    assert fir["excluded_reason"] is None
    for excluded in (BAMBOO, CITRUS):
        assert species[excluded]["route"] == "excluded"
        assert species[excluded]["creditable"] is False
        assert species[excluded]["needs_height"] is False
        assert species[excluded]["excluded_reason"]
    assert "bamboo" in species[BAMBOO]["excluded_reason"]
    assert "Fruit trees" in species[CITRUS]["excluded_reason"]
    assert species[CAMPHOR]["route"] == "species_equation"
    assert species[CAMPHOR]["creditable"] is True
    # Every creditable species shows its step on the ladder, its source, the range its
    # equation was fitted on and its carbon fraction.
    for sid, shown in species.items():
        row = METHOD.species[sid]
        if row["route"] == "excluded":
            assert shown["fitted_range"] is None and shown["carbon_fraction"] is None
            assert shown["ladder_step"] == 4
            continue
        assert shown["ladder_step"] in (1, 2, 3)
        assert shown["fitted_range"] == row["fitted_range"]
        assert shown["fitted_range"]["source"] in row["sources"]["fitted_range"]
        assert len(shown["source"]) > 20 and "Sipang assumption" not in shown["source"]
        assert shown["model_error"] == row["model_error"]
        assert shown["estimates_height"] is True
    assert species[FIR]["carbon_fraction"] == {"above": 0.5003, "below": 0.488}
    assert species["populus_spp"]["carbon_fraction"] == {"above": 0.47, "below": 0.47}
    assert "LY/T 2264-2014" in species[FIR]["source"]
    assert "698c20" in species["populus_spp"]["source"]
    assert "Global Wood Density Database" in species["salix_spp"]["source"]


def test_methods_list_the_current_parameter_set_and_its_hash(client):
    response = client.get("/api/v1/carbon/methods")

    assert response.status_code == 200
    assert response.json["current"] == METHOD.version
    assert {"version": METHOD.version, "sha256": METHOD.sha256} in response.json["methods"]


def test_a_method_version_returns_its_document_and_hash(client):
    response = client.get(f"/api/v1/carbon/methods/{METHOD.version}")

    assert response.status_code == 200
    assert response.json["version"] == METHOD.version
    assert response.json["sha256"] == METHOD.sha256
    assert response.json["document"] == METHOD.document
    # Anyone can check the hash: sha256 of the canonical JSON of the document.
    assert hashlib.sha256(canonical_json(response.json["document"])).hexdigest() == METHOD.sha256


@pytest.mark.parametrize("version", ["sipang-1999.1", "..%2Fmethod", "sipang-2026.1.json"])
def test_an_unknown_method_version_is_404(client, version):
    response = client.get(f"/api/v1/carbon/methods/{version}")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# --- plausibility flags ----------------------------------------------------------------


def test_shrinking_dbh_is_flagged_with_its_reason(app, db):
    _, (_, second) = plant(app, FIR, [measured(BEFORE, 200, 1500), measured(DURING, 150, 1500)])

    assert [flag["code"] for flag in second.flags] == ["dbh_shrinking"]
    assert flags_of(db, second.id) == [
        ("dbh_shrinking", "DBH fell from 20 to 15 cm (more than the 0.6 cm measurement tolerance)")
    ]


def test_fir_growing_15_cm_in_a_year_is_above_the_ceiling(app, db):
    _, (first_, second) = plant(
        app, FIR, [measured(BEFORE, 100, 1000), measured("2025-06-01T08:00:00.000Z", 250, 1500)]
    )

    assert first_.flags == []
    stored = flags_of(db, second.id)
    assert [code for code, _ in stored] == ["growth_above_ceiling", "growth_above_ceiling"]
    assert "DBH grew 15.0 cm in 1.00 years; 杉木 grows at most 2.0 cm a year" in stored[0][1]
    assert "above the 100 kg ceiling for one 杉木" in stored[1][1]


def test_a_3_year_camphor_adding_15_kg_co2_a_year_is_above_the_ceiling(app, db):
    _, (baseline, second) = plant(
        app,
        CAMPHOR,
        [measured(BEFORE, 20, 250), measured(DURING, 59, 400)],
        planting_year=2021,
    )

    gain_kg = (stored_co2e(db, second.id) - stored_co2e(db, baseline.id)) / 1000
    assert 14 <= gain_kg <= 16  # the seeds' "1000 camphors, 15 t a year"
    assert flags_of(db, second.id) == [
        ("growth_above_ceiling", "DBH grew 3.9 cm in 1.00 years; 樟树 grows at most 2.5 cm a year")
    ]


def test_gps_10_km_from_the_village_centre_is_flagged(app, db):
    north = CENTRE[0] + 10_000 / METRES_PER_DEGREE_LAT
    _, (far,) = plant(app, FIR, [measured(BEFORE, 100, 1000, latitude=north, longitude=CENTRE[1])])

    assert flags_of(db, far.id) == [
        ("gps_outside_village", "recorded 10.0 km from the centre of 长水村 (limit 3 km)")
    ]


def test_a_second_fir_of_the_household_within_5_m_is_a_possible_duplicate(app, db):
    first_tree, (near,) = plant(
        app, FIR, [measured(BEFORE, 100, 1000, latitude=CENTRE[0], longitude=CENTRE[1])]
    )
    two_metres = CENTRE[0] + 2 / METRES_PER_DEGREE_LAT
    _, (twin,) = plant(
        app, FIR, [measured(BEFORE, 101, 1000, latitude=two_metres, longitude=CENTRE[1])]
    )
    twenty_metres = CENTRE[0] + 20 / METRES_PER_DEGREE_LAT
    _, (apart,) = plant(
        app, FIR, [measured(BEFORE, 101, 1000, latitude=twenty_metres, longitude=CENTRE[1])]
    )
    _, (camphor,) = plant(
        app, CAMPHOR, [measured(BEFORE, 101, 700, latitude=two_metres, longitude=CENTRE[1])]
    )

    assert near.flags == []
    ((code, reason),) = flags_of(db, twin.id)
    assert code == "possible_duplicate"
    assert reason.startswith("another 杉木 of this household stands 2.0 m away")
    assert first_tree[:8] in reason
    assert flags_of(db, apart.id) == []
    assert flags_of(db, camphor.id) == []  # another species is another tree


def test_a_fir_of_another_household_within_5_m_is_not_a_duplicate(app, db):
    plant(app, FIR, [measured(BEFORE, 100, 1000, latitude=CENTRE[0], longitude=CENTRE[1])])
    neighbour = new_household(app)
    _, (theirs,) = plant(
        app,
        FIR,
        [measured(BEFORE, 100, 1000, latitude=CENTRE[0], longitude=CENTRE[1])],
        household=neighbour,
    )

    assert flags_of(db, theirs.id) == []


def test_a_client_clock_10_minutes_ahead_is_flagged(app, db):
    ahead = iso(now() + timedelta(minutes=10))
    _, (skewed,) = plant(app, FIR, [measured(ahead, 100, 1000)])

    ((code, reason),) = flags_of(db, skewed.id)
    assert code == "clock_skew"
    assert reason == "the phone's clock was +10 minutes off the server's"


def test_a_missing_photo_is_flagged(app, db):
    _, (bare,) = plant(app, FIR, [measured(BEFORE, 100, 1000, photo_sha256=None)])

    assert bare.flags == [{"code": "photo_missing", "reason": "no photo of the tree was taken"}]
    assert flags_of(db, bare.id) == [("photo_missing", "no photo of the tree was taken")]


def test_honest_measurements_raise_no_flags(app, db):
    _, recorded = plant(
        app,
        FIR,
        [
            measured(BEFORE, 120, 1100, latitude=CENTRE[0] + 0.001, longitude=CENTRE[1]),
            measured(DURING, 135, 1200, latitude=CENTRE[0] + 0.001, longitude=CENTRE[1]),
        ],
    )

    assert [r.flags for r in recorded] == [[], []]
    assert all(flags_of(db, r.id) == [] for r in recorded)


def test_village_flags_lists_open_flags_with_reasons(app, client, world, db):
    _, (_, shrunk) = plant(app, FIR, [measured(BEFORE, 200, 1500), measured(DURING, 150, 1500)])

    response = client.get(
        f"/api/v1/villages/{world.village_a}/flags", headers=bearer(world.tokens["bureau"])
    )

    assert response.status_code == 200
    listed = response.json["flags"]
    assert [(f["id"], f["code"]) for f in listed] == [
        (world.flag_id, "photo_missing"),
        (world.flag_id + 1, "dbh_shrinking"),
    ]
    assert listed[1]["measurement_id"] == shrunk.id
    assert listed[1]["reason"].startswith("DBH fell from 20 to 15 cm")
    assert all(f["decision"] is None and f["reviewed_at"] is None for f in listed)
    assert [row["id"] for row in db["flags"].rows_where("decision IS NULL")] == [
        f["id"] for f in listed
    ]


def test_village_flags_filter_by_status(app, client, world):
    plant(app, FIR, [measured(BEFORE, 200, 1500), measured(DURING, 150, 1500)])
    headers = bearer(world.tokens["verifier"])
    assert review(client, world, world.flag_id).status_code == 200

    def codes(status):
        response = client.get(
            f"/api/v1/villages/{world.village_a}/flags?status={status}", headers=headers
        )
        assert response.status_code == 200
        return [(f["code"], f["decision"]) for f in response.json["flags"]]

    assert codes("open") == [("dbh_shrinking", None)]
    assert codes("reviewed") == [("photo_missing", "accepted")]
    assert codes("all") == [("photo_missing", "accepted"), ("dbh_shrinking", None)]


@pytest.mark.parametrize("status", ["closed", "OPEN", "", "open'--"])
def test_village_flags_with_a_bad_status_is_422(client, world, status):
    response = client.get(
        f"/api/v1/villages/{world.village_a}/flags",
        query_string={"status": status},
        headers=bearer(world.tokens["bureau"]),
    )

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert "open, reviewed, all" in response.json["error"]["message"]


def test_the_village_measurer_sees_its_flags(client, world):
    response = client.get(
        f"/api/v1/villages/{world.village_a}/flags", headers=bearer(world.tokens["measurer"])
    )

    assert response.status_code == 200
    assert [f["id"] for f in response.json["flags"]] == [world.flag_id]


def test_a_measurer_of_another_village_may_not_see_its_flags(app, client, world):
    token = other_village_measurer(app)

    response = client.get(f"/api/v1/villages/{world.village_a}/flags", headers=bearer(token))

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"


@pytest.mark.parametrize(("role", "status"), [("finance", 403), ("enterprise", 403), (None, 401)])
def test_village_flags_refuse_other_roles(client, world, role, status):
    headers = bearer(world.tokens[role]) if role else {}

    response = client.get(f"/api/v1/villages/{world.village_a}/flags", headers=headers)

    assert response.status_code == status


def test_flags_of_an_unknown_village_is_404(client, world):
    response = client.get(
        "/api/v1/villages/360423101299/flags", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 404


# --- reviewing flags -------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["accepted", "rejected"])
def test_bureau_reviews_a_flag(client, world, db, decision):
    audit_before = db["audit_log"].count

    response = review(client, world, world.flag_id, decision, note="Re-measured on site.")

    assert response.status_code == 200
    flag = response.json["flag"]
    assert flag["id"] == world.flag_id
    assert flag["code"] == "photo_missing"
    assert flag["decision"] == decision
    assert flag["review_note"] == "Re-measured on site."
    assert flag["reviewed_at"]
    row = db["flags"].get(world.flag_id)
    assert row["decision"] == decision
    assert row["reviewed_by"] == world.user_ids["bureau"]
    assert row["reviewed_at"] == flag["reviewed_at"]
    assert row["review_note"] == "Re-measured on site."
    (entry,) = db.query("SELECT * FROM audit_log WHERE seq > ?", [audit_before])
    assert entry["action"] == f"flag.{decision}"
    assert entry["subject"] == f"flag:{world.flag_id}"
    assert entry["actor"] == f"user:{world.user_ids['bureau']}"
    assert json.loads(entry["detail"]) == {
        "code": "photo_missing",
        "measurement": row["measurement_id"],
    }


def test_a_review_without_a_note_is_stored(client, world, db):
    response = client.post(
        f"/api/v1/flags/{world.flag_id}/review",
        json={"decision": "accepted"},
        headers=bearer(world.tokens["verifier"]),
    )

    assert response.status_code == 200
    assert response.json["flag"]["review_note"] is None
    assert db["flags"].get(world.flag_id)["reviewed_by"] == world.user_ids["verifier"]


def test_reviewing_a_flag_twice_is_409_and_keeps_the_first_decision(client, world, db):
    assert review(client, world, world.flag_id, "accepted").status_code == 200
    first_row = db["flags"].get(world.flag_id)
    before = table_counts(db)

    response = review(client, world, world.flag_id, "rejected", token=world.tokens["admin"])

    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert "accepted" in response.json["error"]["message"]
    assert db["flags"].get(world.flag_id) == first_row
    assert table_counts(db) == before


@pytest.mark.parametrize("flag_id", [999_999, 0, 2**63, 2**64])
def test_reviewing_an_unknown_flag_is_404(client, world, db, flag_id):
    before = table_counts(db)

    response = review(client, world, flag_id)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert table_counts(db) == before


def test_bureau_of_another_county_may_not_review(app, client, world, db):
    token = other_county_bureau(app)
    before = table_counts(db)

    response = review(client, world, world.flag_id, token=token)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"
    assert db["flags"].get(world.flag_id)["decision"] is None
    assert table_counts(db) == before


@pytest.mark.parametrize("role", ["enterprise", "finance", "measurer"])
def test_other_roles_may_not_review(client, world, db, role):
    response = review(client, world, world.flag_id, token=world.tokens[role])

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert db["flags"].get(world.flag_id)["decision"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe"},
        {"note": "no decision"},
        {"decision": "accepted", "note": "x" * 501},
        {"decision": "accepted", "reviewer": 1},
        {"decision": ["accepted"]},
    ],
)
def test_a_bad_review_is_422_and_changes_nothing(client, world, db, body):
    before = table_counts(db)

    response = client.post(
        f"/api/v1/flags/{world.flag_id}/review", json=body, headers=bearer(world.tokens["bureau"])
    )

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert db["flags"].get(world.flag_id)["decision"] is None
    assert table_counts(db) == before


# --- credit calculations ---------------------------------------------------------------


def test_the_seeded_calculation_is_blocked_by_its_open_flag(client, world, db):
    response = client.get(
        f"/api/v1/credit-calculations/{world.calculation_id}",
        headers=bearer(world.tokens["verifier"]),
    )

    assert response.status_code == 200
    calculation = response.json["calculation"]
    assert calculation["open_flags"] == 1
    assert calculation["issuable"] is False
    (line,) = calculation["trees"]
    assert line["tree_id"] == world.tree_a
    assert line["stock_start_g"] == stored_co2e(db, line["start_measurement_id"])
    assert line["stock_end_g"] == stored_co2e(db, line["end_measurement_id"])
    assert calculation["gross_g"] == line["stock_end_g"] - line["stock_start_g"]
    assert calculation["method_sha256"] == METHOD.sha256
    assert_household_lines_balance(calculation)


def test_reviewing_the_open_flags_makes_a_new_calculation_issuable(client, world, db):
    assert review(client, world, world.flag_id, "accepted").status_code == 200

    response = calculate(client, world, {"period_start": "2026-06-01", "period_end": "2026-12-31"})

    assert response.status_code == 201
    calculation = response.json["calculation"]
    assert calculation["open_flags"] == 0
    assert calculation["issuable"] is True
    seeded = db["credit_calculations"].get(world.calculation_id)
    assert calculation["gross_g"] == seeded["gross_g"]  # accepting changes no number
    assert seeded["open_flags"] == 1  # the earlier calculation stands as it was
    assert db["credit_calculations"].get(calculation["id"])["open_flags"] == 0


def test_credit_from_measured_growth_matches_the_stored_estimates(app, client, world, db):
    second = new_household(app, name="赵六")
    fir, _ = plant(app, FIR, [measured(BEFORE, 120, 1100), measured(DURING, 135, 1200)])
    camphor, _ = plant(app, CAMPHOR, [measured(BEFORE, 150, 900), measured(DURING, 170, 1000)])
    late, _ = plant(
        app,
        FIR,
        [measured(BEFORE, 80, 800), measured("2025-09-01T08:00:00.000Z", 92, 880)],
        household=second,
    )
    multi, _ = plant(
        app,
        FIR,
        [measured(BEFORE, [60, 80], 900), measured(DURING, [66, 88], 960)],
        household=second,
    )
    # Measured after the period: stock at its end is the last measurement before it.
    after, (after_start, after_end, _) = plant(
        app,
        FIR,
        [
            measured(BEFORE, 150, 1300),
            measured(DURING, 162, 1350),
            measured("2026-02-01T08:00:00.000Z", 168, 1380),
        ],
    )

    response = calculate(client, world)

    assert response.status_code == 201
    calculation = response.json["calculation"]
    lines = {line["tree_id"]: line for line in calculation["trees"]}
    assert set(lines) == {fir, camphor, late, multi, after}  # not tree_a: first measured 2026
    assert lines[after]["start_measurement_id"] == after_start.id
    assert lines[after]["end_measurement_id"] == after_end.id
    for line in lines.values():
        start = db["measurements"].get(line["start_measurement_id"])
        end = db["measurements"].get(line["end_measurement_id"])
        assert start["tree_id"] == end["tree_id"] == line["tree_id"]
        assert start["client_time"] < "2025-01-01" <= end["client_time"] < "2026-01-01"
        assert line["stock_start_g"] == stored_co2e(db, start["id"])
        assert line["stock_end_g"] == stored_co2e(db, end["id"])
        assert line["stock_end_g"] > line["stock_start_g"]
    growths = {tree_id: growth_of(line) for tree_id, line in lines.items()}
    assert calculation["gross_g"] == sum(growths.values())
    assert lines[camphor]["uncertainty_pct"] == 30
    assert lines[fir]["uncertainty_pct"] == 10
    assert calculation["deduction_g"] == sum(
        expected_deduction(growths[t], lines[t]["uncertainty_pct"]) for t in lines
    )
    assert calculation["deduction_g"] == expected_deduction(growths[camphor], 30) > 0
    assert calculation["net_g"] == calculation["gross_g"] - calculation["deduction_g"]
    assert calculation["tonnes"] == calculation["net_g"] // GRAMS_PER_TONNE == 0
    households_ = {line["household"]: line for line in calculation["households"]}
    assert set(households_) == {world.household_a, second}
    assert households_[second]["gross_g"] == growths[late] + growths[multi]
    assert households_[second]["deduction_g"] == 0
    assert households_[world.household_a]["gross_g"] == (
        growths[fir] + growths[camphor] + growths[after]
    )
    assert_household_lines_balance(calculation)
    assert calculation["open_flags"] == 0
    assert calculation["issuable"] is True
    # The stored rows are what the API showed.
    stored = db["credit_calculations"].get(calculation["id"])
    assert (stored["gross_g"], stored["deduction_g"], stored["tonnes"]) == (
        calculation["gross_g"],
        calculation["deduction_g"],
        calculation["tonnes"],
    )
    assert stored["method_version"] == METHOD.version
    assert stored["created_by"] == world.user_ids["bureau"]
    assert {
        row["tree_id"]: row["stock_end_g"]
        for row in db["credit_tree_lines"].rows_where("calculation_id = ?", [calculation["id"]])
    } == {t: line["stock_end_g"] for t, line in lines.items()}
    fetched = client.get(
        f"/api/v1/credit-calculations/{calculation['id']}", headers=bearer(world.tokens["admin"])
    )
    assert fetched.status_code == 200
    assert fetched.json["calculation"] == calculation


def test_a_village_of_many_trees_earns_whole_tonnes_and_a_buffer(app, client, world, db):
    codes = [new_household(app, name=f"户主{i}") for i in range(3)]
    for h, code in enumerate(codes):
        for i in range(10):
            dbh = 280 + 7 * i + h
            plant(
                app,
                FIR,
                [
                    measured(BEFORE, dbh, 2000 + 10 * i),
                    measured(DURING, dbh + 16, 2050 + 10 * i),
                ],
                household=code,
            )
        plant(
            app,
            CAMPHOR,
            [measured(BEFORE, 300 + h, 1400), measured(DURING, 320 + h, 1450)],
            household=code,
        )

    response = calculate(client, world)

    assert response.status_code == 201
    calculation = response.json["calculation"]
    assert len(calculation["trees"]) == 33
    assert calculation["open_flags"] == 0
    growths = [growth_of(line) for line in calculation["trees"]]
    assert calculation["gross_g"] == sum(growths)
    assert calculation["deduction_g"] == sum(
        expected_deduction(growth_of(line), line["uncertainty_pct"])
        for line in calculation["trees"]
    )
    assert calculation["tonnes"] == calculation["net_g"] // GRAMS_PER_TONNE >= 2
    assert calculation["buffer_pct"] == 20
    assert calculation["buffer_tonnes"] == -(-calculation["tonnes"] * 20 // 100)
    assert calculation["sellable_tonnes"] == calculation["tonnes"] - calculation["buffer_tonnes"]
    assert {line["household"] for line in calculation["households"]} == set(codes)
    for line in calculation["households"]:
        assert 0 <= line["issued_g"] <= line["carry_in_g"] + line["gross_g"] - line["deduction_g"]
    assert_household_lines_balance(calculation)

    no_buffer = calculate(client, world, PERIOD | {"buffer_pct": 0})

    assert no_buffer.status_code == 201
    assert no_buffer.json["calculation"]["buffer_tonnes"] == 0
    assert no_buffer.json["calculation"]["tonnes"] == calculation["tonnes"]


def test_a_period_ending_far_ahead_is_calculated(client, world):
    response = calculate(client, world, {"period_start": "2025-01-01", "period_end": "9999-12-30"})

    assert response.status_code == 201
    assert response.json["calculation"]["period_end"] == "9999-12-30"


def test_households_carry_what_an_issued_calculation_did_not_issue(app, client, world, db):
    codes = [new_household(app, name=f"户主{i}") for i in range(2)]
    grown = {}
    for h, code in enumerate(codes):
        for i in range(8):
            dbh = 290 + 9 * i + h
            tree_id, _ = plant(
                app,
                FIR,
                [measured(BEFORE, dbh, 2000), measured(DURING, dbh + 17, 2060)],
                household=code,
            )
            grown[tree_id] = (code, dbh + 17)
    first_calculation = calculate(client, world).json["calculation"]
    assert first_calculation["tonnes"] >= 1
    # Issuance belongs to another module: mark the calculation issued as it would.
    db.execute(
        "UPDATE credit_calculations SET status = 'issued' WHERE id = ?", [first_calculation["id"]]
    )
    db.conn.commit()
    carried = {line["household"]: line["carry_out_g"] for line in first_calculation["households"]}
    assert sum(carried.values()) < GRAMS_PER_TONNE
    # The next year: one household's trees grow again, the other's are not re-measured.
    for tree_id, (code, dbh) in grown.items():
        if code == codes[0]:
            with app.app_context():
                trees.record_measurement(
                    get_db(),
                    tree_id,
                    measurement_id=str(uuid.uuid4()),
                    stems_mm=[dbh + 17],
                    height_cm=2120,
                    client_time="2026-06-01T08:00:00.000Z",
                    photo_sha256=PHOTO,
                )

    response = calculate(client, world, {"period_start": "2026-01-01", "period_end": "2026-12-31"})

    assert response.status_code == 201
    calculation = response.json["calculation"]
    lines = {line["household"]: line for line in calculation["households"]}
    for code in codes:
        assert lines[code]["carry_in_g"] == carried[code]
    assert lines[codes[1]]["gross_g"] == 0
    available = sum(
        line["carry_in_g"] + line["gross_g"] - line["deduction_g"] for line in lines.values()
    )
    assert calculation["tonnes"] == max(available, 0) // GRAMS_PER_TONNE >= 1
    assert_household_lines_balance(calculation)


def test_open_flags_on_measurements_used_block_issuance(app, client, world, db):
    plant(app, FIR, [measured(BEFORE, 120, 1100), measured(DURING, 135, 1200)])
    _, (_, unphotographed) = plant(
        app, FIR, [measured(BEFORE, 100, 1000), measured(DURING, 112, 1080, photo_sha256=None)]
    )
    _, (shrunk_start, shrunk) = plant(
        app, FIR, [measured(BEFORE, 200, 1500), measured(DURING, 150, 1500)]
    )
    # An open flag on a tree that is not used (registered in the period) blocks nothing.
    plant(app, FIR, [measured(DURING, 100, 1000, photo_sha256=None)])

    blocked = calculate(client, world)

    assert blocked.status_code == 201
    assert blocked.json["calculation"]["open_flags"] == 2
    assert blocked.json["calculation"]["issuable"] is False
    assert db["credit_calculations"].get(blocked.json["calculation"]["id"])["open_flags"] == 2
    used = [
        row["id"]
        for row in db.query(
            "SELECT id FROM flags WHERE measurement_id IN (?, ?)", [unphotographed.id, shrunk.id]
        )
    ]
    for flag_id in used:
        assert review(client, world, flag_id, "accepted").status_code == 200

    cleared = calculate(client, world)

    assert cleared.status_code == 201
    assert cleared.json["calculation"]["open_flags"] == 0
    assert cleared.json["calculation"]["issuable"] is True
    assert cleared.json["calculation"]["gross_g"] == blocked.json["calculation"]["gross_g"]
    shrink_line = next(
        line
        for line in cleared.json["calculation"]["trees"]
        if line["start_measurement_id"] == shrunk_start.id
    )
    assert shrink_line["end_measurement_id"] == shrunk.id  # accepted: used as measured
    assert growth_of(shrink_line) < 0


def test_a_rejected_end_measurement_falls_back_to_the_previous_usable_one(app, client, world, db):
    tree_id, (start, middle, last) = plant(
        app,
        FIR,
        [
            measured(BEFORE, 120, 1100),
            measured("2025-03-01T08:00:00.000Z", 126, 1150),
            measured("2025-09-01T08:00:00.000Z", 132, 1200, photo_sha256=None),
        ],
    )
    flagged = calculate(client, world).json["calculation"]
    (line,) = [t for t in flagged["trees"] if t["tree_id"] == tree_id]
    assert line["end_measurement_id"] == last.id
    (flag,) = db["flags"].rows_where("measurement_id = ?", [last.id])
    assert review(client, world, flag["id"], "rejected").status_code == 200

    response = calculate(client, world)

    assert response.status_code == 201
    calculation = response.json["calculation"]
    (line,) = [t for t in calculation["trees"] if t["tree_id"] == tree_id]
    assert line["start_measurement_id"] == start.id
    assert line["end_measurement_id"] == middle.id
    assert line["stock_end_g"] == stored_co2e(db, middle.id)
    assert calculation["gross_g"] == stored_co2e(db, middle.id) - stored_co2e(db, start.id)
    assert calculation["issuable"] is True


def test_a_rejected_baseline_falls_back_or_leaves_the_tree_out(app, client, world, db):
    older, (oldest, rejected_start, end) = plant(
        app,
        FIR,
        [
            measured("2023-06-01T08:00:00.000Z", 110, 1050),
            measured(BEFORE, 116, 1100, photo_sha256=None),
            measured(DURING, 125, 1150),
        ],
    )
    alone, (only_start, _) = plant(
        app, FIR, [measured(BEFORE, 100, 1000, photo_sha256=None), measured(DURING, 110, 1060)]
    )
    for measurement in (rejected_start, only_start):
        for flag in db["flags"].rows_where("measurement_id = ?", [measurement.id]):
            assert review(client, world, flag["id"], "rejected").status_code == 200

    response = calculate(client, world)

    assert response.status_code == 201
    calculation = response.json["calculation"]
    lines = {line["tree_id"]: line for line in calculation["trees"]}
    assert set(lines) == {older}
    assert lines[older]["start_measurement_id"] == oldest.id
    assert lines[older]["end_measurement_id"] == end.id
    assert calculation["gross_g"] == stored_co2e(db, end.id) - stored_co2e(db, oldest.id)
    assert calculation["open_flags"] == 0


def test_a_tree_that_died_in_the_period_counts_minus_its_starting_stock(app, client, world, db):
    grower, _ = plant(app, FIR, [measured(BEFORE, 120, 1100), measured(DURING, 135, 1200)])
    dead, (dead_start, _) = plant(
        app,
        FIR,
        [measured(BEFORE, 200, 1500), measured("2025-02-01T08:00:00.000Z", 202, 1500)],
        status=("dead", "2025-04-01"),
    )
    felled, (felled_start,) = plant(
        app, CAMPHOR, [measured(BEFORE, 150, 900)], status=("felled", "2025-12-31")
    )
    # Gone before the period: already counted in an earlier one.
    gone, _ = plant(app, FIR, [measured(BEFORE, 150, 1200)], status=("dead", "2024-10-01"))
    # Dies after the period: it still grew in it.
    later, (_, later_end) = plant(
        app,
        FIR,
        [measured(BEFORE, 100, 1000), measured(DURING, 110, 1060)],
        status=("felled", "2026-03-01"),
    )

    response = calculate(client, world)

    assert response.status_code == 201
    calculation = response.json["calculation"]
    lines = {line["tree_id"]: line for line in calculation["trees"]}
    assert set(lines) == {grower, dead, felled, later}
    assert gone not in lines
    assert lines[dead]["start_measurement_id"] == dead_start.id
    assert lines[dead]["end_measurement_id"] is None
    assert lines[dead]["stock_end_g"] is None
    assert growth_of(lines[dead]) == -stored_co2e(db, dead_start.id)
    assert lines[felled]["start_measurement_id"] == felled_start.id
    assert growth_of(lines[felled]) == -stored_co2e(db, felled_start.id)
    assert lines[later]["end_measurement_id"] == later_end.id
    assert calculation["gross_g"] == sum(growth_of(line) for line in lines.values())
    assert calculation["gross_g"] < 0
    assert calculation["deduction_g"] == expected_deduction(growth_of(lines[grower]), 10) + (
        expected_deduction(growth_of(lines[later]), 10)
    )
    assert calculation["tonnes"] == 0
    assert_household_lines_balance(calculation)


def test_new_trees_grow_from_their_first_measurement_and_excluded_species_not_at_all(
    app, client, world, db
):
    grower, _ = plant(app, FIR, [measured(BEFORE, 120, 1100), measured(DURING, 135, 1200)])
    plant(app, FIR, [measured("2025-02-01T08:00:00.000Z", 100, 1000)])  # new: its baseline only
    newcomer, (registered, remeasured) = plant(
        app, FIR, [measured(DURING, 100, 1000), measured("2025-11-01T08:00:00.000Z", 106, 1030)]
    )
    plant(app, BAMBOO, [measured(BEFORE, 100), measured(DURING, 110)])
    plant(app, CITRUS, [measured(BEFORE, 90, 300), measured(DURING, 110, 330)])
    plant(app, FIR, [measured("2026-02-01T08:00:00.000Z", 100, 1000)])  # after the period

    response = calculate(client, world)

    assert response.status_code == 201
    calculation = response.json["calculation"]
    lines = {line["tree_id"]: line for line in calculation["trees"]}
    assert set(lines) == {grower, newcomer}
    assert lines[newcomer]["start_measurement_id"] == registered.id
    assert lines[newcomer]["end_measurement_id"] == remeasured.id
    assert growth_of(lines[newcomer]) == stored_co2e(db, remeasured.id) - stored_co2e(
        db, registered.id
    )
    assert calculation["gross_g"] == sum(growth_of(line) for line in lines.values())
    assert_household_lines_balance(calculation)


def test_an_empty_period_gives_an_empty_calculation(client, world):
    response = calculate(client, world, {"period_start": "2020-01-01", "period_end": "2020-12-31"})

    assert response.status_code == 201
    calculation = response.json["calculation"]
    assert (calculation["gross_g"], calculation["tonnes"], calculation["trees"]) == (0, 0, [])
    assert calculation["issuable"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"period_start": "2025-12-31", "period_end": "2025-01-01"}, "period_end"),
        ({"period_start": "2025-06-01", "period_end": "2025-06-01"}, "period_end"),
        ({"period_start": "2025-02-30", "period_end": "2025-12-31"}, "period_start"),
        ({"period_start": "2025-01-01", "period_end": "31/12/2025"}, "period_end"),
        ({"period_start": "2025-01-01"}, "(body)"),
        ({**PERIOD, "buffer_pct": 101}, "buffer_pct"),
        ({**PERIOD, "buffer_pct": -1}, "buffer_pct"),
        ({**PERIOD, "tonnes": 5}, "(body)"),
        ({"period_start": "2025-01-01", "period_end": "9999-12-31"}, "period_end"),
    ],
)
def test_a_bad_period_is_422_and_stores_nothing(client, world, db, body, field):
    before = table_counts(db)

    response = calculate(client, world, body)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert field in [d["field"] for d in response.json["error"]["details"]]
    assert table_counts(db) == before


def test_a_village_outside_the_county_is_403(client, world, db):
    before = table_counts(db)

    response = calculate(client, world, village=world.village_c)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"
    assert table_counts(db) == before


def test_bureau_of_another_county_may_not_read_a_calculation(app, client, world):
    token = other_county_bureau(app)

    response = client.get(
        f"/api/v1/credit-calculations/{world.calculation_id}", headers=bearer(token)
    )

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"


@pytest.mark.parametrize("role", ["enterprise", "finance", "measurer"])
def test_other_roles_may_not_calculate_credit(client, world, db, role):
    before = table_counts(db)

    response = calculate(client, world, token=world.tokens[role])

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert table_counts(db) == before


def test_credit_for_an_unknown_village_is_404(client, world, db):
    before = table_counts(db)

    response = calculate(client, world, village="360423101299", token=world.tokens["admin"])

    assert response.status_code == 404
    assert table_counts(db) == before


@pytest.mark.parametrize("calculation_id", [999_999, 0, 2**63])
def test_an_unknown_calculation_is_404(client, world, calculation_id):
    response = client.get(
        f"/api/v1/credit-calculations/{calculation_id}", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 404
