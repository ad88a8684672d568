"""Methodology parameter sets: versioned JSON documents identified by their content hash.

A parameter set holds every species' route, coefficients, limits and the source of every
number. Estimates store the set's version and hash, so any figure can be recomputed.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

CURRENT_VERSION = "sipang-2026.1"
ROUTES = ("species_model", "volume_route", "generic", "excluded")


def canonical_json(document: Any) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Method:
    version: str
    sha256: str
    document: dict[str, Any]

    @property
    def species(self) -> dict[str, dict[str, Any]]:
        return {s["id"]: s for s in self.document["species"]}

    @property
    def crediting(self) -> dict[str, Any]:
        return self.document["crediting"]


@cache
def load_method(version: str = CURRENT_VERSION) -> Method:
    """The parameter set of a version, checked for shape and hashed."""
    text = resources.files(__package__).joinpath("methods", f"{version}.json").read_text("utf-8")
    document = json.loads(text)
    if document["version"] != version:
        raise ValueError(f"{version}.json declares version {document['version']!r}")
    for species in document["species"]:
        if species["route"] not in ROUTES:
            raise ValueError(f"{species['id']}: unknown route {species['route']!r}")
    return Method(version, hashlib.sha256(canonical_json(document)).hexdigest(), document)


def available_versions() -> list[str]:
    return sorted(
        entry.name.removesuffix(".json")
        for entry in resources.files(__package__).joinpath("methods").iterdir()
        if entry.name.endswith(".json")
    )
