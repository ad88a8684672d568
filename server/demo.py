"""The demo county: 武宁县 with 8 villages, ~400 households and ~5,000 measured trees.

Deterministic (fixed random seed) and idempotent. All personal data is obviously fake:
names like 王演三, phones 170-0000-xxxx, ID numbers born 1900–1950.
"""

import io
import json
import math
import os
import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlite_utils import Database

from server import devices, photos, rosters, trees, users, villages
from server.clock import iso
from server.db import first, transaction
from server.payouts.demo import add_payout_history
from server.registry.demo import add_registry_history
from server.registry.payments_demo import add_payment_history
from village_kits.personal_data import id_check_character, luhn_check_digit
from village_kits.roster import roster_xlsx

SEED = 360423
COUNTY = ("360423", "武宁县")
VILLAGES = (  # code, name, township, latitude, longitude
    ("360423101201", "长水村", "宋溪镇", 29.262, 115.101),
    ("360423101202", "西山村", "宋溪镇", 29.271, 115.082),
    ("360423102203", "东坑村", "泉口镇", 29.205, 115.152),
    ("360423102204", "太平村", "泉口镇", 29.214, 115.171),
    ("360423103205", "新庄村", "鲁溪镇", 29.318, 115.043),
    ("360423104206", "塘下村", "船滩镇", 29.156, 115.224),
    ("360423105207", "石岭村", "澧溪镇", 29.344, 115.262),
    ("360423106208", "樟树下村", "罗坪镇", 29.101, 114.985),
)
# species id, weight, starting DBH range (cm), yearly DBH growth range (cm)
SPECIES_MIX = (
    ("cunninghamia_lanceolata", 30, (6, 26), (0.4, 1.0)),
    ("cinnamomum_camphora", 15, (5, 40), (0.5, 1.2)),
    ("pinus_massoniana", 12, (8, 30), (0.3, 0.8)),
    ("populus_spp", 8, (10, 35), (0.8, 1.6)),
    ("liquidambar_formosana", 8, (6, 30), (0.4, 0.9)),
    ("osmanthus_fragrans", 8, (4, 18), (0.2, 0.5)),
    ("quercus_spp", 6, (8, 28), (0.3, 0.6)),
    ("ginkgo_biloba", 5, (5, 30), (0.3, 0.7)),
    ("citrus_reticulata", 4, (4, 14), (0.2, 0.5)),
    ("eucalyptus_spp", 2, (8, 24), (1.0, 2.0)),
    ("phyllostachys_edulis", 2, (8, 12), (0.0, 0.1)),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "一二三四五六七八九十"
FIRST_SURVEY = datetime(2024, 10, 8, 9, 0, tzinfo=UTC)
STAFF = (  # username, display name, role, needs county
    ("admin", "平台管理员", "admin", False),
    ("bureau", "武宁县农业农村局", "bureau", True),
    ("finance", "财务专员", "finance", False),
    ("verifier", "县林业工作站核查员", "verifier", True),
    ("enterprise", "某化工有限公司", "enterprise", False),
)


class DemoConflict(Exception):
    """The instance holds data that `sipang demo` did not make and will not overwrite."""


def _client_id(rng: random.Random, moment: datetime) -> str:
    """A UUIDv7 as a phone would make it: time-ordered, with random bits from `rng`."""
    value = (int(moment.timestamp() * 1000) << 80) | rng.getrandbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def _fake_person(rng: random.Random, county: str, n: int) -> dict[str, Any]:
    birth = f"{rng.randint(1900, 1950)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = f"{county}{birth}{n % 1000:03d}"
    bank = f"620000000{n:09d}"
    return {
        "head_name": rng.choice(SURNAMES) + "演" + rng.choice(GIVEN),
        "phone": f"1700000{n:04d}",
        "id_number": first17 + id_check_character(first17),
        "bank_account": bank + luhn_check_digit(bank),
        "consent_date": "2024-09-20",
    }


def _height_cm(dbh_cm: float, shape: float) -> int:
    """A tree's height for its DBH; `shape` (0.9–1.1) is the tree's own, kept for life."""
    return max(150, round((1.3 + 1.9 * dbh_cm**0.62) * 100 * shape))


def _photo(db: Database, rng: random.Random) -> str:
    """A small photo of its own, stored whole under its sha256 as an upload would be."""
    from PIL import Image

    image = Image.frombytes("RGB", (16, 12), rng.randbytes(16 * 12 * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return photos.store(db, out.getvalue(), iso(FIRST_SURVEY))


def _place(village: tuple, n: int, rng: random.Random) -> tuple[float, float]:
    """The n-th tree of a village on a 25 m grid from its centre (a metre or two off)."""
    row, col = divmod(n, 36)
    north = (row - 18) * 25 + rng.uniform(-2, 2)
    east = (col - 18) * 25 + rng.uniform(-2, 2)
    lat = village[3] + north / 111_195
    return lat, village[4] + east / (111_195 * math.cos(math.radians(lat)))


def _add_trees(
    db: Database,
    rng: random.Random,
    household: dict,
    village: tuple,
    measurer_id: int,
    device_id: str,
    placed: int = 0,
) -> int:
    species = [s[0] for s in SPECIES_MIX]
    weights = [s[1] for s in SPECIES_MIX]
    params = {s[0]: s for s in SPECIES_MIX}
    count = rng.randint(4, 21)
    for n in range(count):
        species_id = rng.choices(species, weights)[0]
        _, _, dbh_range, growth_range = params[species_id]
        first_time = FIRST_SURVEY + timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600))
        tree_id = _client_id(rng, first_time)
        trees.register_tree(
            db,
            household,
            tree_id=tree_id,
            species_id=species_id,
            position=rng.choices(["house", "village", "road", "water"], [5, 2, 2, 1])[0],
            user_id=measurer_id,
            device_id=device_id,
            registered_at=iso(first_time),
        )
        stems = 2 if species_id == "osmanthus_fragrans" and rng.random() < 0.3 else 1
        dbh = [rng.uniform(*dbh_range) / stems**0.5 for _ in range(stems)]
        lat, lon = _place(village, placed + n, rng)
        shape = rng.uniform(0.9, 1.1)
        accuracy = round(rng.uniform(3, 15), 1)
        for year in (0, 1):
            moment = first_time + timedelta(days=365 * year + rng.randint(-5, 5))
            moment = max(moment, first_time)  # never before its registration
            if year:
                dbh = [d + rng.uniform(*growth_range) for d in dbh]
            stems_mm = [round(d * 10) for d in dbh]
            trees.record_measurement(
                db,
                tree_id,
                measurement_id=_client_id(rng, moment),
                stems_mm=stems_mm,
                height_cm=_height_cm(max(stems_mm) / 10, shape),
                client_time=iso(moment),
                latitude=round(lat, 6),
                longitude=round(lon, 6),
                gps_accuracy_m=accuracy,
                photo_sha256=_photo(db, rng),
                user_id=measurer_id,
                device_id=device_id,
            )
    return count


def _credentials_path() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / "demo-credentials.json"


def load_credentials() -> dict[str, Any] | None:
    path = _credentials_path()
    return json.loads(path.read_text()) if path.exists() else None


def _save_credentials(data: dict[str, Any]) -> None:
    path = _credentials_path()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)


def _create_county(db: Database) -> dict[str, Any]:
    rng = random.Random(SEED)
    credentials: dict[str, Any] = {"staff": {}, "measurers": {}}
    with transaction(db):
        villages.create_county(db, *COUNTY)
        for username, name, role, needs_county in STAFF:
            password = secrets.token_urlsafe(9)
            users.create_user(
                db,
                username=username,
                display_name=name,
                role=role,
                password=password,
                county_code=COUNTY[0] if needs_county else None,
                organisation=name if role == "enterprise" else None,
            )
            credentials["staff"][username] = {"role": role, "password": password}
        person = 0
        for village in VILLAGES:
            village_row = villages.create_village(db, *village)
            username = f"measurer.{village[0][-3:]}"
            measurer = users.create_user(
                db,
                username=username,
                display_name=f"{village[1]}计量员",
                role="measurer",
                village_code=village[0],
            )
            device_id = devices.register_device(
                db, measurer["id"], village_row["id"], "演示历史设备", iso(FIRST_SURVEY)
            )
            people = []
            for seq in range(1, rng.randint(44, 56) + 1):
                person += 1
                people.append(
                    {
                        "seq": seq,
                        **_fake_person(rng, COUNTY[0], person),
                        "door_number": f"{village[1]}{seq}号",
                    }
                )
            # imported from memory: no plaintext roster is left in the instance folder
            workbook = roster_xlsx(people)
            rosters.import_roster(db, workbook, f"{village[0]}.xlsx", village_row, None)
            placed = 0
            for household in db.query(
                "SELECT * FROM households WHERE village_id = ? ORDER BY seq", [village_row["id"]]
            ):
                placed += _add_trees(db, rng, household, village, measurer["id"], device_id, placed)
                if village == VILLAGES[0] and household["seq"] in RED_CODE:
                    _add_red_code_tree(db, rng, household, village, measurer["id"], device_id)
    return credentials


# Records a reviewer should look at: (species, [(DBH cm, height m, photo?)] in 2024 and 2025).
RED_CODE = {
    3: ("cinnamomum_camphora", [(3.5, 3.0, True), (7.0, 4.2, True)]),  # the seeds' camphor
    5: ("cunninghamia_lanceolata", [(20.0, 14.0, True), (18.4, 14.1, False)]),  # shrank, no photo
}


def _add_red_code_tree(
    db: Database,
    rng: random.Random,
    household: dict,
    village: tuple,
    measurer_id: int,
    device_id: str,
) -> None:
    species_id, sizes = RED_CODE[household["seq"]]
    first_time = FIRST_SURVEY + timedelta(days=3)
    tree_id = _client_id(rng, first_time)
    trees.register_tree(
        db,
        household,
        tree_id=tree_id,
        species_id=species_id,
        position="house",
        user_id=measurer_id,
        device_id=device_id,
        registered_at=iso(first_time),
    )
    for year, (dbh, height, photo) in enumerate(sizes):
        moment = first_time + timedelta(days=365 * year)
        trees.record_measurement(
            db,
            tree_id,
            measurement_id=_client_id(rng, moment),
            stems_mm=[round(dbh * 10)],
            height_cm=round(height * 100),
            client_time=iso(moment),
            latitude=village[3] + 0.001 * household["seq"],
            longitude=village[4],
            gps_accuracy_m=5.0,
            photo_sha256=_photo(db, rng) if photo else None,
            user_id=measurer_id,
            device_id=device_id,
        )


def _refresh_enrolment_codes(db: Database, credentials: dict[str, Any]) -> None:
    """Give each demo measurer a live one-time code until a phone has used it."""
    admin = first(db, "SELECT id FROM users WHERE username = 'admin'")
    for measurer in db.query("SELECT * FROM users WHERE role = 'measurer' ORDER BY username"):
        village = db["villages"].get(measurer["village_id"])
        known = credentials["measurers"].get(measurer["username"])
        if known and devices.code_is_live(db, known["code"]):
            continue
        code = devices.create_enrolment_code(db, measurer, admin["id"])
        credentials["measurers"][measurer["username"]] = {
            "village": f"{village['code']} {village['name']}",
            **code,
        }


def create_demo(db: Database) -> dict[str, Any]:
    """Create the demo county unless it exists; returns the demo sign-in details."""
    credentials = load_credentials()
    if first(db, "SELECT 1 FROM counties WHERE code = ?", [COUNTY[0]]) is None:
        credentials = _create_county(db)
    elif credentials is None:
        raise DemoConflict("County 360423 exists but was not made by `sipang demo`.")
    _refresh_enrolment_codes(db, credentials)
    _save_credentials(credentials)
    add_registry_history(db)
    add_payment_history(db)
    add_payout_history(db)
    return credentials


def describe(credentials: dict[str, Any]) -> str:
    """The demo sign-in details as a table for the terminal."""
    lines = ["Demo users (password sign-in at /login):"]
    for username, info in credentials["staff"].items():
        lines.append(f"  {info['role']:<11} {username:<12} password: {info['password']}")
    lines.append("Measurers enrol a phone with a one-time code (POST /api/v1/devices/enrol):")
    for username, info in credentials["measurers"].items():
        lines.append(
            f"  {username:<16} {info['village']}  code: {info['code']}"
            f"  (until {info['expires_at'][:16]})"
        )
    return "\n".join(lines)
