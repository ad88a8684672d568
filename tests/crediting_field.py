"""A measurer's phone and a county office for the crediting tests: trees registered,
measured, photographed and marked dead through the real sync and blob APIs; periods
calculated, reviewed, verified and issued through the real services."""

import hashlib
import io
import random
import uuid
from datetime import timedelta
from typing import Any

from conftest import bearer
from PIL import Image

from server.carbon import records
from server.carbon.estimate import estimate_tree
from server.carbon.method import Method, load_method
from server.clock import iso, now
from server.db import first
from server.registry import baseline, bundles, issuance, verification
from tests.registry_world import pass_baseline

FIR = "cunninghamia_lanceolata"
CAMPHOR = "cinnamomum_camphora"
# Village A's centre (tests/conftest.py); one degree of latitude is about 111.2 km.
CENTRE = (29.26, 115.1)
METRES_PER_DEGREE = 111_195.0


def days_ago(days: float) -> str:
    return iso(now() - timedelta(days=days))


def photo_bytes(seed: str, quality: int = 90) -> bytes:
    """A photo of its own (smooth random shapes, so a re-encoded copy looks the same)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (96, 72), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x, y = rng.randrange(80), rng.randrange(60)
        colour = tuple(rng.randrange(256) for _ in range(3))
        image.paste(colour, (x, y, x + rng.randrange(8, 40), y + rng.randrange(8, 30)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


class Phone:
    """The enrolled measurer phone of village A, speaking the sync protocol."""

    def __init__(self, client, world, db):
        self.client, self.world, self.db = client, world, db
        self.seq = db["devices"].get(world.device_id)["last_seq"]
        self.spots = 0

    def push(self, *ops: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.post(
            "/api/v1/sync/push",
            json={"device_id": self.world.device_id, "sent_at": iso(now()), "ops": list(ops)},
            headers=bearer(self.world.tokens["measurer"]),
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["results"]

    def op(self, kind: str, record_id: str, payload: dict, at: str) -> dict[str, Any]:
        self.seq += 1
        return {
            "op_id": str(uuid.uuid4()),
            "device_seq": self.seq,
            "record_id": record_id,
            "kind": kind,
            "payload": payload,
            "client_time": at,
            "base_version": None,
        }

    def spot(self) -> dict[str, float]:
        """A place of its own near the centre, 40 m from the last."""
        self.spots += 1
        return {
            "latitude": CENTRE[0] + self.spots * 40 / METRES_PER_DEGREE,
            "longitude": CENTRE[1],
            "gps_accuracy_m": 4.0,
        }

    def upload(self, data: bytes) -> str:
        """Send a photo through the blob API in one chunk; its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        response = self.client.put(
            f"/api/v1/blobs/{sha}",
            data=data,
            headers={
                **bearer(self.world.tokens["measurer"]),
                "Upload-Offset": "0",
                "Upload-Length": str(len(data)),
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.get_json()["complete"] is True, response.get_json()
        return sha

    def register(
        self, at: str, species: str = FIR, household: str | None = None, **extra: Any
    ) -> tuple[str, dict]:
        tree = str(uuid.uuid4())
        payload = {
            "household_code": household or self.world.household_a,
            "species_id": species,
            "position": "road",
        }
        (result,) = self.push(self.op("tree.register", tree, payload | extra, at))
        return tree, result

    def measure(
        self,
        tree: str,
        at: str,
        dbh_mm: int | list[int],
        height_cm: int | None,
        *,
        place: dict | None = None,
        photo: bytes | None | bool = True,
    ) -> tuple[str, dict]:
        """Measure a tree (a photo of its own, uploaded first, unless told)."""
        measurement = str(uuid.uuid4())
        payload = {
            "measurement_id": measurement,
            "stems_mm": dbh_mm if isinstance(dbh_mm, list) else [dbh_mm],
            "height_cm": height_cm,
        }
        payload |= self.spot() if place is None else place
        if photo is True:
            photo = photo_bytes(measurement)
        if photo:
            payload["photo_sha256"] = self.upload(photo)
        (result,) = self.push(self.op("tree.measure", tree, payload, at))
        return measurement, result

    def mark(self, tree: str, status: str, at: str) -> dict:
        (result,) = self.push(self.op("tree.status", tree, {"status": status}, at))
        return result

    def planted(self, readings: list[tuple[str, int, int | None]], **register: Any) -> dict:
        """Register a tree at its first reading's time and take every reading at one place;
        returns {"tree", "readings": [measurement ids]}."""
        tree, result = self.register(readings[0][0], **register)
        assert result["status"] == "applied", result
        place = self.spot()
        ids = []
        for at, dbh_mm, height_cm in readings:
            measurement, result = self.measure(tree, at, dbh_mm, height_cm, place=place)
            assert result["status"] == "applied", result
            ids.append(measurement)
        return {"tree": tree, "readings": ids}


class Office:
    """The county's staff: reviewers, the verifier, the registrar."""

    def __init__(self, db, world):
        self.db, self.world = db, world
        self.village = first(db, "SELECT * FROM villages WHERE code = ?", [world.village_a])

    def open_flags(self, tree: str | None = None) -> list[dict]:
        sql = "SELECT * FROM flags WHERE decision IS NULL AND village_id = ?"
        params: list[Any] = [self.village["id"]]
        if tree:
            sql, params = sql + " AND tree_id = ?", [*params, tree]
        return list(self.db.query(sql + " ORDER BY id", params))

    def review_all(self, decision: str = "accepted", tree: str | None = None) -> None:
        for flag in self.open_flags(tree):
            records.review_flag(self.db, flag["id"], decision, "核实", self.world.user_ids["admin"])

    def calculate(self, start: str, end: str, method: Method | None = None) -> dict:
        calc_id = records.calculate_credit(self.db, self.village, start, end, method=method)
        return records.calculation_view(self.db, calc_id)

    def verify_as_claimed(self, calc_id: int) -> dict:
        """The verifier finds every sampled tree at its claimed end size (and, when no
        check covers their registration readings yet, at their registered size first)."""
        calc = self.db["credit_calculations"].get(calc_id)
        if baseline.unchecked_trees(self.db, calc["village_id"]):
            pass_baseline(self.db, calc["village_id"], self.world.user_ids["verifier"])
        found = verification.assign(self.db, calc, self.world.user_ids["verifier"], None)
        for row in self.db.query(
            """SELECT vs.tree_id, m.dbh_mm, m.height_cm, t.species_id
               FROM verification_samples vs JOIN measurements m
                 ON m.id = vs.claimed_measurement_id JOIN trees t ON t.id = vs.tree_id
               WHERE vs.verification_id = ?""",
            [found["id"]],
        ):
            verification.remeasure(
                self.db,
                found,
                {
                    "client_id": str(uuid.uuid4()),
                    "tree_id": row["tree_id"],
                    "dbh_cm": row["dbh_mm"] / 10,
                    "height_m": row["height_cm"] / 100,
                    "species_id": row["species_id"],
                    "measured_at": iso(now()),
                },
                self.world.user_ids["verifier"],
            )
        return verification.decide(self.db, found, None, "核查员")

    def bundle(self) -> dict:
        year = now().year
        return bundles.create_bundle(
            self.db,
            "360423",
            {
                "name": "武宁县四旁树碳汇包",
                "vintage_from": year - 3,
                "vintage_to": year + 1,
                "methods": [load_method().version],
                "min_households": 1,
                "max_household_share_pct": 100,
            },
            self.world.user_ids["admin"],
        )

    def issue(self, calc_id: int, bundle: dict | None = None) -> dict:
        """Review, verify as claimed and issue a calculation."""
        found = self.verify_as_claimed(calc_id)
        return issuance.issue(self.db, found, bundle or self.bundle(), None)


def stock_g(species: str, dbh_cm: float, height_m: float | None, method=None) -> int:
    return estimate_tree(species, dbh_cm, height_m, method=method).co2e_g
