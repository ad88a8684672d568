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


def _number(value: float) -> str:
    return f"{value:.10g}"


def _branch_label(branches: list[dict[str, float]], index: int) -> str:
    if index == 0:
        return f"D ≥ {branches[0]['dbh_min_cm']:g}"
    return f"D < {branches[index - 1]['dbh_min_cm']:g}"


def parameter_tables(method: Method) -> str:
    """The parameter set as Markdown tables (docs/methodology.md embeds this verbatim)."""
    lines = [f"Parameter set `{method.version}`, sha256 `{method.sha256}`.", ""]
    lines += [
        "| species | 中文名 | route | coefficients | carbon fraction | root:shoot |",
        "|---|---|---|---|---|---|",
    ]
    for s in method.document["species"]:
        if s["route"] == "species_model":
            coefficients = "<br>".join(
                f"{part.upper()} ({_branch_label(s[part], i)}): {_number(b['a'])}·D^"
                f"{_number(b['b'])}·H^{_number(b['c'])}"
                for part in ("agb", "bgb")
                for i, b in enumerate(s[part])
            )
            fraction = (
                f"{_number(s['carbon_fraction_above'])} above, "
                f"{_number(s['carbon_fraction_below'])} below"
            )
            root_shoot = "(own BGB model)"
        elif s["route"] == "generic":
            g = s["generic"]
            coefficients = (
                f"AGB = {_number(g['a'])}·ρ·D^{_number(g['b'])}, ρ = {_number(g['wood_density'])}"
            )
            fraction, root_shoot = _number(g["carbon_fraction"]), _number(g["root_shoot"])
        elif s["route"] == "volume_route":
            v = s["volume"]
            coefficients = (
                f"V = {_number(v['c'])}·D^{_number(v['a'])}·H^{_number(v['b'])}, "
                f"ρ = {_number(v['wood_density'])}, BEF = {_number(v['bef'])}"
            )
            fraction, root_shoot = _number(v["carbon_fraction"]), _number(v["root_shoot"])
        else:
            coefficients, fraction, root_shoot = f"excluded: {s['excluded_reason']}", "—", "—"
        lines.append(
            f"| *{s['scientific_name']}* (`{s['id']}`) | {s['name_zh']} | {s['route']} "
            f"| {coefficients} | {fraction} | {root_shoot} |"
        )
    lines += [
        "",
        "| species | uncertainty | DBH range (cm) | max height (m) | height/DBH (m per cm) "
        "| growth ceiling | projection curve |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in method.document["species"]:
        if s["route"] == "excluded":
            continue
        limits, ceiling, curve = s["limits"], s["growth_ceiling"], s["projection"]
        lines.append(
            f"| `{s['id']}` | {s['uncertainty_pct']} % | {limits['dbh_cm'][0]:g}–"
            f"{limits['dbh_cm'][1]:g} | {limits['height_m'][1]:g} | "
            f"{limits['height_per_dbh_m_per_cm'][0]:g}–{limits['height_per_dbh_m_per_cm'][1]:g} | "
            f"{ceiling['dbh_cm_per_year']:g} cm/yr, {ceiling['co2e_kg_per_year']:g} kg CO2e/yr | "
            f"D = {_number(curve['dbh_max_cm'])}·(1 − e^(−{_number(curve['dbh_rate'])}·t))"
            f"^{_number(curve['dbh_shape'])}; H = 1.3 + {_number(curve['height_max_m'] - 1.3)}"
            f"·(1 − e^(−{_number(curve['height_rate'])}·D)) |"
        )
    lines += ["", "Sources, number by number:", ""]
    for s in method.document["species"]:
        lines.append(
            f"- `{s['id']}`: "
            + "; ".join(f"**{key}** — {source}" for key, source in sorted(s["sources"].items()))
        )
        if s.get("note"):
            lines.append(f"  - Note: {s['note']}")
    return "\n".join(lines) + "\n"
