"""Shared fixtures: a real app on a real SQLite file, seeded with one small world."""

import copy
import functools
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings
from sqlite_utils import Database

from server import devices, households, trees, users, villages
from server.carbon import records as carbon_records
from server.db import connect, get_db
from tests.helpers_snapshot import Snapshot, Snapshots

# Fixtures every browser test may take: `playwright`, `browser` (the PWA's Chromium) and `site`
# (tests/helpers_pwa.py); `paid_household`, a farmer's door plate with money (tests/plate_world.py).
pytest_plugins = ("tests.helpers_pwa", "tests.plate_world")

# No test passes or fails on wall-clock time: Hypothesis's per-example deadline (200 ms by
# default) would fail a property test on a busy machine or a parallel run.
settings.register_profile("sipang", deadline=None)
settings.load_profile("sipang")

# Passwords hashed with Argon2id at a test's cost (one pass, 8 MiB: ~5 ms instead of ~0.25 s of
# CPU a hash or sign-in); the same code and format. Servers the tests start inherit it.
# tests/test_auth.py checks the production cost separately.
os.environ.setdefault("SIPANG_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("SIPANG_PASSWORD_HASH_MEMORY_KIB", "8192")

PASSWORD = "correct horse battery"
STAFF_ROLES = ("admin", "bureau", "finance", "verifier", "enterprise")
ROLES = (*STAFF_ROLES, "measurer")
PHONE = "13912345678"
BANK = "6222020200112345679"  # passes Luhn
ID_NUMBER = "11010519491231002X"


@dataclass
class World:
    """The seeded data: own county 360423 (villages A, B), another county 360424 (village C)."""

    village_a: str = "360423101201"
    village_b: str = "360423101202"
    village_c: str = "360424100201"
    household_a: str = ""
    household_c: str = ""
    tree_a: str = "0190f0a0-0000-7000-8000-00000000000a"
    flag_id: int = 0
    calculation_id: int = 0
    measurer_id: int = 0
    device_id: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    # What a bigger world built on this one adds (a bundle, an order…), by name: see
    # tests/helpers_snapshot.py.
    built: dict = field(default_factory=dict)


def seed(db: Database) -> World:
    world = World()
    villages.create_county(db, "360423", "武宁县")
    villages.create_county(db, "360424", "修水县")
    village_a = villages.create_village(db, world.village_a, "长水村", "宋溪镇", 29.26, 115.1)
    villages.create_village(db, world.village_b, "西山村", "宋溪镇")
    village_c = villages.create_village(db, world.village_c, "外县村")
    for role in STAFF_ROLES:
        user = users.create_user(
            db,
            username=role,
            display_name=f"{role} 用户",
            role=role,
            password=PASSWORD,
            county_code="360423" if role in ("bureau", "verifier") else None,
        )
        world.user_ids[role] = user["id"]
        world.tokens[role] = users.issue_token(db, user["id"], "test")
    measurer = users.create_user(
        db,
        username="measurer",
        display_name="计量员",
        role="measurer",
        village_code=world.village_a,
    )
    world.measurer_id = world.user_ids["measurer"] = measurer["id"]
    code = devices.create_enrolment_code(db, measurer, world.user_ids["admin"])["code"]
    enrolled = devices.enrol(db, code, "test phone")
    world.device_id, world.tokens["measurer"] = enrolled["device_id"], enrolled["token"]
    household = households.create_household(
        db,
        village_a,
        head_name="张三丰",
        phone=PHONE,
        id_number=ID_NUMBER,
        bank_account=BANK,
        consent_date="2026-03-01",
    )
    world.household_a = household["code"]
    world.household_c = households.create_household(db, village_c, head_name="李四")["code"]
    trees.register_tree(
        db, household, tree_id=world.tree_a, species_id="cunninghamia_lanceolata", position="house"
    )
    trees.record_measurement(
        db,
        world.tree_a,
        measurement_id="0190f0a0-0000-7000-8000-0000000000b1",
        stems_mm=[103],
        height_cm=1260,
        client_time="2026-03-01T08:00:00.000Z",
        user_id=measurer["id"],
        device_id=world.device_id,
    )
    trees.record_measurement(
        db,
        world.tree_a,
        measurement_id="0190f0a0-0000-7000-8000-0000000000b2",
        stems_mm=[110],
        height_cm=1300,
        client_time="2026-09-01T08:00:00.000Z",
        photo_sha256="ab" * 32,
        user_id=measurer["id"],
        device_id=world.device_id,
    )
    # The seeded readings are history, received long after they were taken: a reviewer has
    # accepted their late dates; the missing photo stays open.
    for late in db.query("SELECT id FROM flags WHERE code IN ('late_reading', 'gps_missing')"):
        carbon_records.review_flag(db, late["id"], "accepted", "历史记录", world.user_ids["admin"])
    world.flag_id = db.execute("SELECT id FROM flags WHERE code = 'photo_missing'").fetchone()[0]
    world.calculation_id = carbon_records.calculate_credit(
        db, village_a, "2026-06-01", "2026-12-31", user_id=world.user_ids["bureau"]
    )
    return world


def _keep_url_builders() -> None:
    """Most tests build an app, and some 40 % of that is werkzeug compiling, for each of about
    200 URL rules, a builder function from a syntax tree. The function depends only on the
    rule's parsed form (no globals; the rule comes in as an argument), so the tests compile
    each form once per session: the same URLs (checked in tests/test_access.py)."""
    from werkzeug.routing.rules import Rule

    if getattr(Rule._compile_builder, "kept", False):
        return
    compile_builder = Rule._compile_builder
    kept: dict = {}

    def builder(self, append_unknown: bool = True):
        converters = tuple(
            (name, type(c), sorted((k, repr(v)) for k, v in vars(c).items() if k != "map"))
            for name, c in sorted(self._converters.items())
        )
        defaults = sorted((k, repr(v)) for k, v in (self.defaults or {}).items())
        key = (self.rule, tuple(self._trace), repr(defaults), repr(converters), append_unknown)
        if key not in kept:
            kept[key] = compile_builder(self, append_unknown)
        return kept[key]

    builder.kept, builder.original = True, compile_builder
    Rule._compile_builder = builder


def _keep_parsed_rules() -> None:
    """The other half of building an app's URL map is werkzeug parsing each rule's text into
    regular-expression parts. The parts depend only on the text and the map's converter
    classes, so the tests parse each text once per session and give every later rule the same
    parts, trace, arguments and its own copies of the converters (bound to its own map)."""
    from werkzeug.routing.rules import Rule

    if getattr(Rule._parse_rule, "kept", False):
        return
    parse_rule = Rule._parse_rule
    kept: dict = {}

    def parse(self, rule: str):
        key = (rule, tuple(self.map.converters.items()))
        if key not in kept:
            trace_from, before = len(self._trace), dict(self._converters)
            parts = list(parse_rule(self, rule))
            added = {n: c for n, c in self._converters.items() if before.get(n) is not c}
            kept[key] = (parts, self._trace[trace_from:], added)
            return parts
        parts, trace, converters = kept[key]
        self._trace.extend(trace)
        for name, converter in converters.items():
            own = copy.copy(converter)
            own.map = self.map
            self._converters[name] = own
            self.arguments.add(name)
        return list(parts)

    parse.kept, parse.original = True, parse_rule
    Rule._parse_rule = parse


def pytest_configure(config):
    _keep_url_builders()
    _keep_parsed_rules()


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory) -> Snapshots:
    """Worlds built once per session; each test copies the one it needs (helpers_snapshot)."""
    return Snapshots(tmp_path_factory.mktemp("snapshots"))


@pytest.fixture(scope="session")
def seeded(snapshots) -> Snapshot:
    """The small seeded world, as (instance folder, World); each test gets its own copy."""
    return snapshots.build("seeded", lambda app: seed(get_db()))


@pytest.fixture(scope="session")
def registry_sample(snapshots, seeded) -> Snapshot:
    """The seeded world with every state a registry route needs (tests/registry_world.py)."""
    from tests.registry_world import build_sample

    return snapshots.build("registry", build_sample, on=seeded)


@pytest.fixture(scope="session")
def demo_county(snapshots) -> Snapshot:
    """The county `sipang demo` makes (about 40 s of CPU), made once per session; its data is
    what the command printed."""
    from click.testing import CliRunner

    from server.cli import main

    def build(app) -> str:
        result = CliRunner().invoke(main, ["demo", "--instance", app.config["INSTANCE_PATH"]])
        assert result.exit_code == 0, result.output
        return result.output

    return snapshots.build("demo", build)


@pytest.fixture
def demo_instance(demo_county, tmp_path: Path) -> Path:
    """A private copy of the demo county's instance folder."""
    return demo_county.copy_to(tmp_path / "demo")


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    """The test's instance folder: empty, unless the test also uses `app`."""
    return tmp_path / "instance"


@pytest.fixture
def app(instance: Path, seeded):
    """The app on a private copy of the seeded instance folder."""
    return seeded.app(instance)


@pytest.fixture
def world(app) -> World:
    return app.world


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app) -> Database:
    database = connect(app.config["DATABASE"])
    yield database
    database.close()


@pytest.fixture
def nodes() -> list:
    """The anvil nodes (server.chain.anvil.AnvilNode) a test starts; killed at its end."""
    started: list = []
    yield started
    for node in started:
        node.stop(signal.SIGKILL)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- markers: `make test-fast` leaves out browser, chain and slow tests ----------------------

# A test is `browser`, `chain` or `slow` when it, a fixture it uses, or a helper of the tests
# that either calls reaches one of these names (so a new test gets its marker without asking),
# and `slow` too when it uses a fixture that builds the demo county (`demo_…`).
MARKED_BY_NAME = {
    "browser": {"chromium", "open_phone"},
    "chain": {
        "AnvilNode",
        "ANVIL",
        "ChainService",
        "compile_contract",  # the Vyper compiler
        "connect_pyevm",
        "EthereumTester",
    },
    # server processes (sipang serve, gunicorn, nginx, a weak-network proxy), Hypothesis
    # state machines
    "slow": {"Popen", "ServerProcess", "run_state_machine_as_test"},
}
SLOW_FIXTURES = "demo_"


TESTS = Path(__file__).parent


@functools.cache
def _code_names(code) -> frozenset[str]:
    """The global names a code object and the functions nested in it refer to."""
    names, codes = set(), [code]
    while codes:
        current = codes.pop()
        names.update(current.co_names)
        codes += [c for c in current.co_consts if hasattr(c, "co_names")]
    return frozenset(names)


@functools.cache
def _is_tests_module(name: str) -> bool:
    module = sys.modules.get(name)
    return Path(getattr(module, "__file__", None) or "/").parent == TESTS


def _names_reached(functions) -> set[str]:
    """Every global name the functions, and the tests' own helpers they use, refer to."""
    seen, reached, todo = set(), set(), list(functions)
    while todo:
        function = todo.pop()
        code = getattr(function, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        names = _code_names(code)
        reached |= names
        for name in names:
            found = function.__globals__.get(name)
            module_name = getattr(found, "__module__", None)
            if not isinstance(module_name, str) or not _is_tests_module(module_name):
                continue
            if isinstance(found, type):  # a test helper class: its methods
                todo += [v for v in vars(found).values() if hasattr(v, "__code__")]
            else:
                todo.append(found)
    return reached


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    reached_by: dict[tuple, set[str]] = {}  # the cases of a parametrized test share theirs
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = fixtures.name2fixturedefs.values() if fixtures else ()
        functions = [getattr(item, "function", None)]
        functions += [definition.func for defs in definitions for definition in defs]
        key = tuple(f for f in functions if f is not None)
        if key not in reached_by:
            reached_by[key] = _names_reached(key)
        reached = reached_by[key]
        for marker, names in MARKED_BY_NAME.items():
            if reached & names:
                item.add_marker(marker)
        if any(name.startswith(SLOW_FIXTURES) for name in getattr(item, "fixturenames", ())):
            item.add_marker("slow")
