"""A parameter set as Markdown tables a forestry engineer can check against each source
(docs/methodology.md embeds them verbatim; a test keeps them current)."""

from typing import Any

from server.carbon.method import Method


def _number(value: float) -> str:
    return f"{value:.10g}"


def _branch_label(branches: list[dict[str, float]], index: int) -> str:
    if index == 0:
        return f"D ≥ {branches[0]['dbh_min_cm']:g}"
    return f"D < {branches[index - 1]['dbh_min_cm']:g}"


def _term(term: dict[str, float]) -> str:
    factor = f"{_number(term['bias_factor'])}·" if term.get("bias_factor", 1) != 1 else ""
    if "ln_a" in term:
        text = f"{factor}exp({_number(term['ln_a'])} + {_number(term['b'])}·ln D)"
    else:
        text = f"{factor}{_number(term['a'])}·D^{_number(term['b'])}"
    return text + (f"·H^{_number(term['c'])}" if term.get("c") else "")


def coefficients(s: dict[str, Any]) -> tuple[str, str, str]:
    """(equation, carbon fraction, root:shoot) of one species, as text."""
    route = s["route"]
    if route == "species_model":
        equation = "<br>".join(
            f"{part.upper()} ({_branch_label(s[part], i)}): {_number(b['a'])}·D^"
            f"{_number(b['b'])}·H^{_number(b['c'])}"
            for part in ("agb", "bgb")
            for i, b in enumerate(s[part])
        )
        fraction = (
            f"{_number(s['carbon_fraction_above'])} above, "
            f"{_number(s['carbon_fraction_below'])} below"
        )
        return equation, fraction, "(own BGB model)"
    if route == "species_equation":
        e = s["equation"]
        equation = "AGB = " + " + ".join(_term(t) for t in e["agb_terms"])
        return equation, _number(e["carbon_fraction"]), _number(e["root_shoot"])
    if route == "generic":
        g = s["generic"]
        equation = (
            f"AGB = {_number(g['a'])}·ρ·D^{_number(g['b'])}, ρ = {_number(g['wood_density'])}"
        )
        return equation, _number(g["carbon_fraction"]), _number(g["root_shoot"])
    if route == "volume_route":
        v = s["volume"]
        equation = (
            f"V = {_number(v['c'])}·D^{_number(v['a'])}·H^{_number(v['b'])}, "
            f"ρ = {_number(v['wood_density'])}, BEF = {_number(v['bef'])}"
        )
        return equation, _number(v["carbon_fraction"]), _number(v["root_shoot"])
    return f"excluded: {s['excluded_reason']}", "—", "—"


def _fitted(s: dict[str, Any]) -> str:
    fitted = s.get("fitted_range")
    if not fitted:
        return "—"
    low, high = fitted["dbh_cm"]
    text = f"DBH {low:g}–{high:g} cm"
    if fitted.get("height_m"):
        text += f", H {fitted['height_m'][0]:g}–{fitted['height_m'][1]:g} m"
    return text + (f", n = {fitted['n']}" if fitted.get("n") else ", n not reported")


def _uncertainty(s: dict[str, Any]) -> str:
    if "model_error" in s:
        return f"σ = {_number(s['model_error']['sigma_ln'])} (ln)"
    return f"{s['uncertainty_pct']} %"


def parameter_tables(method: Method) -> str:
    lines = [f"Parameter set `{method.version}`, sha256 `{method.sha256}`.", ""]
    stepped = any("ladder_step" in s for s in method.document["species"])
    lines += [
        "| species | 中文名 | "
        + ("step | " if stepped else "")
        + "route | coefficients | carbon fraction | root:shoot |",
        "|---|---|" + ("---|" if stepped else "") + "---|---|---|---|",
    ]
    for s in method.document["species"]:
        equation, fraction, root_shoot = coefficients(s)
        step = f"{s['ladder_step']} | " if stepped else ""
        lines.append(
            f"| *{s['scientific_name']}* (`{s['id']}`) | {s['name_zh']} | {step}{s['route']} "
            f"| {equation} | {fraction} | {root_shoot} |"
        )
    lines += [
        "",
        "| species | "
        + ("fitted range | model error | " if stepped else "uncertainty | ")
        + "DBH range (cm) | max height (m) | height/DBH (m per cm) | growth ceiling "
        "| projection curve |",
        "|---|" + ("---|---|" if stepped else "---|") + "---|---|---|---|---|",
    ]
    for s in method.document["species"]:
        if s["route"] == "excluded":
            continue
        limits, ceiling, curve = s["limits"], s["growth_ceiling"], s["projection"]
        science = f"{_fitted(s)} | {_uncertainty(s)}" if stepped else _uncertainty(s)
        lines.append(
            f"| `{s['id']}` | {science} | {limits['dbh_cm'][0]:g}–"
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
