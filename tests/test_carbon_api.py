"""The carbon API and records: stored estimates anyone can recompute, the public calculator,
plausibility flags and their review, and credit calculations from measured growth."""

import hashlib
import json
import math
import uuid
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, bearer

from server import devices, households, trees, users
from server.carbon.estimate import estimate_tree, estimated_height_m, to_grams
from server.carbon.method import canonical_json, load_method
from server.cli import main
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

    # Its flag holds the whole calculation until a person has looked at the reading.
    assert response.status_code == 201
    calculation = response.json["calculation"]
    assert calculation["open_flags"] >= 1
    assert calculation["issuable"] is False


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
