"""Commands that make and change a county's data: the demo, settlement, accounts, rosters,
village kits and the carbon calculator."""

import sys
from pathlib import Path

import click

from server.cli.root import main, with_app


@main.command("demo")
@with_app
def demo_command(app) -> None:
    """Create the demo county 武宁县 (idempotent) and print its demo users."""
    from server import demo
    from server.db import get_db

    try:
        credentials = demo.create_demo(get_db())
    except demo.DemoConflict as error:
        raise click.ClickException(str(error)) from error
    click.echo(demo.describe(credentials))


@main.command("settle")
@click.option(
    "--date",
    "settle_on",
    default=None,
    metavar="YYYY-MM-DD",
    help="The settlement day (Beijing). Default: today.",
)
@with_app
def settle_command(app, settle_on: str | None) -> None:
    """Make the T+1 settlement batch: every household owed at least the minimum transfer."""
    from datetime import date

    from server import units
    from server.db import get_db
    from server.payouts import settlement

    day = settle_on or units.today()
    try:
        date.fromisoformat(day)
    except ValueError as error:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from error
    if day > units.today():
        raise click.BadParameter(
            f"{day} is after today ({units.today()}, Beijing): its sales are still coming in",
            param_hint="--date",
        )
    try:
        batch, created = settlement.create_batch(
            get_db(), day, app.config["PAYOUT_MIN_TRANSFER_FEN"], "cli:settle"
        )
    except ValueError as error:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from error
    fen = batch["total_fen"]
    click.echo(
        f"{'Made' if created else 'Already made'} batch {batch['id']} for {batch['settle_on']}: "
        f"{batch['households']} households, ¥{units.yuan_plain(fen)} "
        f"(minimum transfer {batch['min_transfer_fen']} fen). "
        f"Record the transfers at /finance/settlements/{batch['id']}."
    )


@main.group()
def users() -> None:
    """Manage staff and measurer accounts."""


@users.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "bureau", "finance", "verifier", "measurer", "enterprise"]),
    help="What the account may do.",
)
@click.option("--name", "display_name", help="Name shown in the app (default: the username).")
@click.option("--county", "county_code", help="County code (bureau and verifier accounts).")
@click.option("--village", "village_code", help="Village code (measurer accounts).")
@click.option("--organisation", help="Company or court (enterprise accounts).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting.",
)
@with_app
def users_add(
    app, username, role, display_name, county_code, village_code, organisation, password_stdin
) -> None:
    """Add an account; measurers get a one-time phone enrolment code instead of a password."""
    from server import devices
    from server import users as user_service
    from server.db import get_db
    from server.errors import ApiError

    password = None
    if role != "measurer":
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    db = get_db()
    try:
        user = user_service.create_user(
            db,
            username=username,
            display_name=display_name or username,
            role=role,
            password=password,
            county_code=county_code,
            village_code=village_code,
            organisation=organisation,
        )
    except ApiError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"Added {role} {username} (id {user['id']}).")
    if role == "measurer":
        code = devices.create_enrolment_code(db, user, created_by=user["id"])
        click.echo(f"Phone enrolment code: {code['code']} (valid until {code['expires_at']})")


@main.group()
def carbon() -> None:
    """The carbon methodology: per-tree estimates and projections."""


@carbon.command("estimate")
@click.option("--species", required=True, help="Species id, e.g. cunninghamia_lanceolata.")
@click.option("--dbh", type=float, help="Diameter at 1.3 m, cm (repeat --stem for multi-stem).")
@click.option(
    "--stem",
    "stems",
    type=float,
    multiple=True,
    help="DBH of one stem of a multi-stem tree, cm; give once per stem.",
)
@click.option("--height", type=float, help="Tree height, m (the species model needs it).")
@click.option("--age", type=int, help="Age in years; without DBH, gives a labelled projection.")
@click.option("--count", type=int, default=1, show_default=True, help="Number of such trees.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def carbon_estimate(species, dbh, stems, height, age, count, as_json) -> None:
    """Estimate a tree's carbon stock (or project it from age) with the current methodology."""
    import json

    from server.carbon.api import estimate_from
    from server.carbon.estimate import EstimateError

    try:
        result = estimate_from(
            {
                "species": species,
                "dbh": dbh,
                "stems": list(stems) or None,
                "height": height,
                "age": age,
                "count": count,
            }
        )
    except EstimateError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    kind = "projection (never credited)" if result["projection"] else "measured tree"
    click.echo(
        f"{result['species']}  {kind}  route: {result['route']}  method {result['method_version']}"
    )
    for label, key in (
        ("above-ground biomass", "agb_kg"),
        ("below-ground biomass", "bgb_kg"),
        ("carbon", "carbon_kg"),
    ):
        click.echo(f"  {label:<22} {result[key]:>12.3f} kg")
    click.echo(f"  {'CO2e stock':<22} {result['co2e_g'] / 1000:>12.3f} kg")
    click.echo(f"  {'uncertainty (90 %)':<22} {'±' + str(result['uncertainty_pct']):>12} %")
    if result["inputs"].get("height_source") == "estimated":
        height = result["inputs"]["height_m"]
        click.echo(f"  {'height (curve)':<22} {height:>12.1f} m  (not measured: estimated)")
    if result["projection"]:
        click.echo(f"  {'CO2e per year':<22} {result['annual_co2e_g'] / 1000:>12.3f} kg")
    if result["count"] > 1:
        click.echo(
            f"  × {result['count']} trees: {result['total_co2e_g'] / 1e6:.3f} t CO2e"
            + (
                f", {result['total_annual_co2e_g'] / 1e6:.3f} t a year"
                if result["projection"]
                else ""
            )
        )
    for flag in result["flags"]:
        click.echo(f"  ! {flag['code']}: {flag['reason']}")


@main.group()
def roster() -> None:
    """Household rosters from the village committee's register."""


@roster.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--village",
    "village_code",
    required=True,
    help="Village code for rows without a 村代码 column.",
)
@with_app
def roster_import(app, file: Path, village_code: str) -> None:
    """Import a roster (.csv in UTF-8 or GBK, or .xlsx): all rows or none; re-imports update."""
    from server import rosters, villages
    from server.db import get_db

    village = villages.get_village(village_code)
    if village is None:
        raise click.ClickException(f"No village {village_code}.")
    try:
        report = rosters.import_roster(get_db(), file.read_bytes(), file.name, village, None)
    except rosters.RosterRejected as rejected:
        click.echo(f"Nothing was imported: {len(rejected.problems)} problem(s) to fix.", err=True)
        for problem in rejected.problems:
            row = f"row {problem['row']}" if problem["row"] else "file"
            click.echo(f"  {row:<9} {problem['field']:<13} {problem['problem']}", err=True)
        raise SystemExit(1) from rejected
    click.echo(
        f"Imported {report['rows']} rows: {report['created']} new households, "
        f"{report['updated']} updated, {report['unchanged']} unchanged."
    )


@main.group()
def kit() -> None:
    """Printable village kits: door plates, tree tags, enrolment code, instructions."""


@kit.command("build")
@click.option("--village", "village_code", required=True, help="Village code.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PDF.",
)
@click.option(
    "--tags",
    default=40,
    show_default=True,
    type=int,
    help="How many new numbered tree tags to print (a sheet holds 40).",
)
@with_app
def kit_build(app, village_code: str, out: Path, tags: int) -> None:
    """Build a village's A4 kit (PDF) with a fresh one-time enrolment code for its measurer."""
    from server import kits, villages
    from server.db import get_db
    from server.errors import ApiError

    village = villages.get_village(village_code)
    if village is None:
        raise click.ClickException(f"No village {village_code}.")
    admin = (
        get_db()
        .execute("SELECT id FROM users WHERE role = 'admin' AND active = 1 ORDER BY id LIMIT 1")
        .fetchone()
    )
    if admin is None:
        raise click.ClickException("Add an admin first: sipang users add NAME --role admin")
    try:
        pdf = kits.make_kit(get_db(), village, tags=tags, user_id=admin[0])
    except ApiError as error:
        raise click.ClickException(error.message) from error
    out.write_bytes(pdf)
    click.echo(f"Wrote {out} ({len(pdf) // 1024} KB).")
