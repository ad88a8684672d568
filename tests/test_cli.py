"""The `sipang` command line: help for every command, `users add` and `demo`."""

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import PASSWORD

from server import create_app
from server.cli import main
from server.db import connect
from server.registry.demo import demo_seed

STAFF_ROLES = ("admin", "bureau", "finance", "verifier", "enterprise")
DEMO_COUNTY = "360423"


def walk(command: click.Command, path: tuple[str, ...] = ()):
    """Every command under `command` with the arguments that reach it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(main))


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def counts(database: Path) -> dict[str, int]:
    db = connect(database)
    try:
        return {
            table: db[table].count
            for table in (
                "counties",
                "villages",
                "households",
                "trees",
                "measurements",
                "users",
                "devices",
                "enrolment_codes",
                "audit_log",
            )
        }
    finally:
        db.close()


def password_works(instance: Path, username: str, password: str) -> bool:
    client = create_app({"INSTANCE_PATH": str(instance)}).test_client()
    response = client.post("/api/v1/auth/tokens", json={"username": username, "password": password})
    return response.status_code == 201


def test_the_command_tree_includes_the_stable_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "serve", "demo", "users", "users add"} <= names


@pytest.mark.parametrize(
    "path,command", COMMANDS, ids=[" ".join(("sipang", *p)) for p, _ in COMMANDS]
)
def test_every_command_has_help(path, command):
    result = invoke(*path, "--help")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert len((command.help or "").split()) >= 4, f"{path} needs a help text"
    first_line = command.help.strip().splitlines()[0]
    assert first_line.split()[0] in result.output
    for param in command.params:
        if isinstance(param, click.Option):
            assert len((param.help or "").split()) >= 2, f"{path} {param.name} needs help"
            assert param.opts[-1] in result.output
    if isinstance(command, click.Group):
        for name in command.commands:
            assert name in result.output


def test_short_help_option():
    result = invoke("-h")

    assert result.exit_code == 0
    assert "Usage: " in result.output
    assert "serve" in result.output


# Commands that read no instance: the calculator runs on the parameter set alone.
INSTANCE_FREE = {("carbon", "estimate")}


def test_subcommands_take_an_instance_option():
    for path, command in COMMANDS:
        if not isinstance(command, click.Group) and tuple(path) not in INSTANCE_FREE:
            result = invoke(*path, "--help")
            assert "--instance" in result.output, path


def sipang(command: str, instance: Path, input: str | None = None):
    """Run `sipang COMMAND --instance INSTANCE` (COMMAND split on spaces)."""
    return CliRunner().invoke(main, [*command.split(), "--instance", str(instance)], input=input)


def test_users_add_creates_a_finance_user(tmp_path):
    instance = tmp_path / "instance"

    result = sipang(
        "users add finance.li --role finance --name 李会计 --password-stdin",
        instance,
        input=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    assert "Added finance finance.li" in result.output
    db = connect(instance / "sipang.db")
    rows = list(db["users"].rows_where("username = 'finance.li'"))
    db.close()
    assert [(r["role"], r["display_name"], r["active"]) for r in rows] == [("finance", "李会计", 1)]
    assert rows[0]["password_hash"].startswith("$argon2")
    assert password_works(instance, "finance.li", PASSWORD)
    assert not password_works(instance, "finance.li", "some other password")


def test_users_add_measurer_prints_an_enrolment_code(app, instance, world, db):
    result = sipang(f"users add measurer.b --role measurer --village {world.village_b}", instance)

    assert result.exit_code == 0, result.output
    found = re.search(r"enrolment code: (\S+)", result.output)
    assert found, result.output
    user = next(db["users"].rows_where("username = 'measurer.b'"))
    assert user["role"] == "measurer"
    assert user["password_hash"] is None
    assert db["villages"].get(user["village_id"])["code"] == world.village_b
    enrolled = app.test_client().post(
        "/api/v1/devices/enrol", json={"code": found.group(1), "label": "phone"}
    )
    assert enrolled.status_code == 201
    assert enrolled.json["village_code"] == world.village_b


def test_users_add_measurer_with_an_unknown_village_fails_clearly(app, instance, db):
    result = sipang("users add measurer.x --role measurer --village 360423999999", instance)

    assert result.exit_code == 1
    assert "Error: A measurer needs an existing village code." in result.output
    assert db["users"].count == 6
    assert db["enrolment_codes"].count == 1


def test_users_add_with_an_unknown_county_fails_clearly(app, instance, db):
    result = sipang(
        "users add bureau.x --role bureau --county 999999 --password-stdin",
        instance,
        input=PASSWORD + "\n",
    )

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Error: A bureau user needs an existing county code." in result.output
    assert "Traceback" not in result.output
    assert db["users"].count == 6


def test_users_add_with_a_short_password_fails_clearly(tmp_path):
    result = sipang("users add finance.x --role finance --password-stdin", tmp_path, "short\n")

    assert result.exit_code == 1
    assert "at least 10 characters" in result.output


def test_users_add_with_a_taken_username_fails_clearly(app, instance, db):
    result = sipang("users add admin --role admin --password-stdin", instance, PASSWORD + "\n")

    assert result.exit_code == 1
    assert "Error: The username 'admin' is taken." in result.output
    assert db["users"].count == 6


@pytest.mark.parametrize(
    "arguments,message",
    [
        ("ab --role finance", "The username needs 3 to 64 letters, digits, dots"),
        ("bad/name --role finance", "The username needs 3 to 64 letters, digits, dots"),
        ("finance.x --role finance --name " + "名" * 101, "The display name needs 1 to 100"),
    ],
)
def test_users_add_with_a_bad_name_fails_clearly(tmp_path, arguments, message):
    instance = tmp_path / "instance"

    result = sipang(f"users add {arguments} --password-stdin", instance, PASSWORD + "\n")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert message in result.output
    db = connect(instance / "sipang.db")
    assert db["users"].count == 0
    db.close()


def test_users_add_with_an_unknown_role_fails(tmp_path):
    result = sipang("users add x.y.z --role king", tmp_path)

    assert result.exit_code == 2
    assert "Invalid value for '--role'" in result.output


def test_demo_refuses_a_county_it_did_not_make(app, instance, db):
    """The test world already holds county 360423; the demo leaves it alone."""
    counts_before = counts(Path(app.config["DATABASE"]))

    result = sipang("demo", instance)

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Error: County 360423 exists but was not made by `sipang demo`." in result.output
    assert counts(Path(app.config["DATABASE"])) == counts_before
    assert not (instance / "demo-credentials.json").exists()


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory, demo_county):
    """`sipang demo` run twice into one instance (the first run is the session's demo county,
    tests/conftest.py): what each printed and the table counts after each."""
    instance = demo_county.copy_to(tmp_path_factory.mktemp("demo") / "instance")
    after_first = counts(instance / "sipang.db")
    second = invoke("demo", "--instance", str(instance))
    after_second = counts(instance / "sipang.db")
    return {
        "instance": instance,
        "outputs": (demo_county.data, second.output),
        "exit_codes": (0, second.exit_code),  # the session's build checks its own
        "counts": (after_first, after_second),
    }


def test_demo_succeeds(demo_runs):
    assert demo_runs["exit_codes"] == (0, 0), demo_runs["outputs"][1]


def test_demo_creates_the_county_and_its_villages(demo_runs):
    db = connect(demo_runs["instance"] / "sipang.db")
    counties = [(r["code"], r["name"]) for r in db["counties"].rows]
    villages = [r["code"] for r in db["villages"].rows]
    db.close()
    assert counties == [(DEMO_COUNTY, "武宁县")]
    assert len(villages) == 8
    assert all(code.startswith(DEMO_COUNTY) for code in villages)


def test_demo_sizes(demo_runs):
    made = demo_runs["counts"][0]
    assert 380 <= made["households"] <= 420
    assert 4_500 <= made["trees"] <= 5_500
    assert made["measurements"] == 2 * made["trees"]


def test_demo_trees_have_two_measurements_and_grow(demo_runs):
    db = connect(demo_runs["instance"] / "sipang.db")
    series: dict[str, list[int]] = {row["id"]: [] for row in db["trees"].rows}
    for row in db.query("SELECT tree_id, dbh_mm FROM measurements ORDER BY tree_id, client_time"):
        series[row["tree_id"]].append(row["dbh_mm"])
    flagged = {
        row["tree_id"] for row in db.query("SELECT tree_id FROM flags WHERE code = 'dbh_shrinking'")
    }
    db.close()
    assert {len(dbhs) for dbhs in series.values()} == {2}
    shrinking = {tree for tree, (first, second) in series.items() if second < first}
    assert shrinking == flagged  # the demo's one deliberate red-code record
    assert len(shrinking) == 1


def test_demo_makes_every_role(demo_runs):
    db = connect(demo_runs["instance"] / "sipang.db")
    roles = [r["role"] for r in db["users"].rows]
    county_of_staff = {
        r["role"]: r["county_id"] for r in db["users"].rows_where("role IN ('bureau', 'verifier')")
    }
    measurer_villages = {r["village_id"] for r in db["users"].rows_where("role = 'measurer'")}
    db.close()
    assert sorted(role for role in roles if role != "measurer") == sorted(STAFF_ROLES)
    assert roles.count("measurer") == 8
    assert len(measurer_villages) == 8
    assert all(county_of_staff.values())


def test_demo_is_idempotent(demo_runs):
    after_first, after_second = demo_runs["counts"]
    new_codes = after_second["enrolment_codes"] - after_first["enrolment_codes"]
    assert new_codes == 0  # the first run's codes are still live
    assert after_second == after_first


def test_demo_prints_the_same_passwords_twice(demo_runs):
    first, second = demo_runs["outputs"]
    passwords = re.findall(r"password: (\S+)", first)
    assert len(passwords) == 5
    assert re.findall(r"password: (\S+)", second) == passwords
    assert first == second


def test_demo_output_lists_every_role(demo_runs):
    output = demo_runs["outputs"][0]
    for role in STAFF_ROLES:
        assert re.search(rf"^\s+{role}\s+\S+\s+password: \S+$", output, re.MULTILINE), role
    assert len(re.findall(r"^\s+measurer\.\d{3}\s.*code: \S+", output, re.MULTILINE)) == 8


def test_demo_passwords_and_codes_work(demo_runs):
    instance = demo_runs["instance"]
    output = demo_runs["outputs"][0]
    staff = re.findall(r"^\s+(\w+)\s+(\w+)\s+password: (\S+)$", output, re.MULTILINE)
    assert {role for role, _, _ in staff} == set(STAFF_ROLES)
    for _, username, password in staff:
        assert password_works(instance, username, password), username
    credentials = json.loads((instance / "demo-credentials.json").read_text())
    assert set(credentials["staff"]) == {username for _, username, _ in staff}
    assert (instance / "demo-credentials.json").stat().st_mode & 0o077 == 0


def test_demo_draws_its_samples_from_fixed_seeds(demo_runs):
    """The samples decide the tonnes a check deducts and a verification issues, and so how
    much the demo can sell: a random draw made the payout history differ from run to run."""
    db = connect(demo_runs["instance"] / "sipang.db")
    try:
        periods = db.execute(
            """SELECT v.seed, c.village_id FROM verifications v
               JOIN credit_calculations c ON c.id = v.calculation_id"""
        ).fetchall()
        baselines = db.execute(
            "SELECT b.seed, v.code FROM baseline_checks b JOIN villages v ON v.id = b.village_id"
        ).fetchall()
    finally:
        db.close()
    assert len(periods) >= 3 and len(baselines) >= 3
    assert all(seed == demo_seed("period", {"village_id": v}) for seed, v in periods)
    assert all(seed == demo_seed("baseline", {"code": code}) for seed, code in baselines)


def test_demo_has_payout_history(demo_runs):
    db = connect(demo_runs["instance"] / "sipang.db")
    try:
        splits = db["sale_splits"].count
        paid = db.execute("SELECT count(*) FROM orders WHERE paid_at IS NOT NULL").fetchone()[0]
        (batch,) = db["settlement_batches"].rows
        statuses = [r["status"] for r in db.query("SELECT status FROM settlements ORDER BY id")]
        queued = dict(
            db.execute(
                "SELECT kind, count(*) FROM chain_outbox WHERE kind IN ('accrue', 'settle') "
                "GROUP BY kind"
            ).fetchall()
        )
        accruals = db["accruals"].count
    finally:
        db.close()
    assert splits == paid >= 4  # the registry's two sales and the payouts' own
    assert batch["households"] == len(statuses) >= 2
    assert statuses.count("failed") == 1 and statuses.count("paid") == len(statuses) - 1
    assert queued == {"accrue": accruals, "settle": len(statuses) - 1}
