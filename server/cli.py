"""The `sipang` command line."""

import functools
import sys
from pathlib import Path

import click

from server import create_app

INSTANCE_HELP = "Instance folder (database, secrets, keys). Default ./instance or $SIPANG_INSTANCE."


def with_app(command):
    """Give a command an `--instance` option and run it inside that instance's app."""

    @click.option(
        "--instance",
        "instance",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SIPANG_INSTANCE",
        default="instance",
        show_default=True,
        help=INSTANCE_HELP,
    )
    @functools.wraps(command)
    def run(instance: Path, **kwargs):
        app = create_app({"INSTANCE_PATH": str(instance)})
        with app.app_context():
            return command(app, **kwargs)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sipang")
def main() -> None:
    """Sipang (四旁): village trees into carbon credits, with the farmers paid T+1."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@with_app
def serve(app, host: str, port: int) -> None:
    """Serve the web app, JSON API and live updates (Socket.IO)."""
    from server import demo
    from server.extensions import socketio

    credentials = demo.load_credentials()
    if credentials:
        click.echo(demo.describe(credentials))
    ledger = start_chain(app) if app.config["CHAIN_WORKER"] else None
    pusher = start_push(app) if app.config["PUSH_WORKER"] else None
    click.echo(f"Sipang is serving http://{host}:{port}/  (instance: {app.instance_path})")
    stop_on_sigterm()
    try:
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True)
    except KeyboardInterrupt:
        click.echo("Stopping: the workers finish their round and the ledger node saves its state.")
    finally:
        if pusher is not None:
            pusher.stop()
        if ledger is not None:
            ledger.stop()


def stop_on_sigterm() -> None:
    """systemd and `kill` send SIGTERM: stop as Ctrl-C does, so the workers and the local
    ledger node shut down cleanly (the node writes its state)."""
    import signal

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def start_push(app):
    """Start the Web Push worker thread for `serve`."""
    from server.push import start_worker

    return start_worker(app)


def start_chain(app):
    """Start the chain worker (and the local anvil) for `serve`; None if it cannot start."""
    from server.chain.deploy import LedgerMissing
    from server.chain.service import ChainService

    service = ChainService(app.config)
    try:
        service.start()
    except LedgerMissing as error:  # never serve beside a second, empty ledger
        service.stop()
        raise click.ClickException(f"Refusing to start: {error}") from error
    except Exception as error:  # noqa: BLE001 - serve without a chain rather than not at all
        click.echo(f"The ledger did not start ({type(error).__name__}: {error}).", err=True)
        service.stop()
        return None
    app.config["CHAIN_RPC"] = service.chain.details.get("url")
    click.echo(
        f"Ledger {service.deployment['address']} on chain {service.chain.chain_id} "
        f"({service.chain.engine} {app.config['CHAIN_RPC']})"
    )
    return service


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

    from server.db import get_db
    from server.payouts import settlement

    day = settle_on or settlement.today_beijing()
    try:
        date.fromisoformat(day)
    except ValueError as error:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from error
    if day > settlement.today_beijing():
        raise click.BadParameter(
            f"{day} is after today ({settlement.today_beijing()}, Beijing): its sales are "
            "still coming in",
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
        f"{batch['households']} households, ¥{fen // 100}.{fen % 100:02d} "
        f"(minimum transfer {batch['min_transfer_fen']} fen). "
        f"Record the transfers at /finance/settlements/{batch['id']}."
    )


@main.command("reconcile")
@with_app
def reconcile_command(app) -> None:
    """Compare the database with the ledger; print each difference and exit 1 on any."""
    import signal

    from server.backup import running_node
    from server.chain.anvil import AnvilNode
    from server.chain.connection import connect
    from server.chain.deploy import attach, current_deployment
    from server.chain.service import anvil_state_path
    from server.db import get_db
    from server.reconcile import reconcile

    node = None
    try:
        served = None if app.config.get("CHAIN_RPC") else running_node(Path(app.instance_path))
        if app.config.get("CHAIN_RPC"):
            chain = connect(app.config)
        elif served:  # the node `sipang serve` runs for this instance (chain/node.json)
            chain = connect(app.config, "rpc", served)
        else:
            node = AnvilNode(anvil_state_path(app.config["INSTANCE_PATH"]))
            chain = connect(app.config, "anvil", node.start())
        db = get_db()
        if app.config.get("CHAIN_CONTRACT"):
            attach(chain, db, app.config["CHAIN_CONTRACT"])
        elif current_deployment(chain, db) is None:
            raise click.ClickException(f"No ledger deployment recorded for chain {chain.chain_id}.")
        differences, checked = reconcile(
            db,
            chain.ledger,
            app.config["CODE_KEY"],
            pii_key=app.config["PII_KEY"],
            audit_key=app.config["AUDIT_KEY"],
        )
    finally:
        if node is not None:  # only read: stop it without writing its state file
            node.stop(signal.SIGKILL)
    for difference in differences:
        click.echo(difference.line())
    waiting = sum(1 for d in differences if d.waiting)
    click.echo(
        f"Compared {checked} ledger items with chain {chain.chain_id} "
        f"({chain.ledger.address}): {len(differences)} differences"
        + (f", {waiting} of them not yet confirmed by the chain worker." if waiting else ".")
    )
    if differences:
        sys.exit(1)


@main.command("backup")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@with_app
def backup_command(app, out: Path) -> None:
    """Copy everything into OUT (a new folder): database (online backup), photos, every key,
    the ledger node's state and deployment, a manifest with hashes. Safe while serving."""
    from server import backup

    try:
        manifest = backup.make_backup(Path(app.instance_path), Path(app.config["DATABASE"]), out)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from error
    size = sum(f["bytes"] for f in manifest["files"].values())
    click.echo(
        f"Backed up {app.instance_path} into {out}: {len(manifest['files'])} files "
        f"({size // 1024} KB), keys {', '.join(manifest['keys']) or 'none'}, "
        f"ledger state {manifest['chain_state']}."
    )


@main.command("restore")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--instance",
    "instance",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The new (or empty) instance folder to restore into.",
)
def restore_command(out: Path, instance: Path) -> None:
    """Restore a backup made by `sipang backup` into a new instance folder, after checking
    every file's hash; refuses when a key is missing and says which."""
    from server import backup

    try:
        manifest = backup.restore(out, instance)
    except backup.BackupError as error:
        raise click.ClickException(f"Refusing to restore: {error}") from error
    ledgers = ", ".join(f"{d['address']} (chain {d['chain_id']})" for d in manifest["deployments"])
    click.echo(
        f"Restored {len(manifest['files'])} files into {instance} (backup of "
        f"{manifest['made_at']}); ledger {ledgers or 'none recorded'}. "
        f"Start it with: sipang serve --instance {instance}"
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

    from server.carbon.estimate import EstimateError
    from server.carbon.routes import estimate_from

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


@main.group()
def chain() -> None:
    """The ledger: chain outbox status and the worker that sends it."""


@chain.command("status")
@with_app
def chain_status(app) -> None:
    """Print the chain outbox's counts, last block and confirmation times as JSON."""
    import json

    from server.chain import status
    from server.db import get_db

    click.echo(json.dumps(status(get_db()), ensure_ascii=False, indent=2))


@chain.command("work")
@click.option("--once", is_flag=True, help="Send what is waiting, then exit.")
@with_app
def chain_work(app, once: bool) -> None:
    """Send the chain outbox: to CHAIN_RPC, else a local anvil kept in the instance folder."""
    from server.chain.service import ChainService

    service = ChainService(app.config)
    try:
        worker = service.make_worker()
        click.echo(
            f"ledger {service.deployment['address']} on chain {service.chain.chain_id} "
            f"({service.chain.engine}); signing as {service.chain.address}"
        )
        if once:
            from server.anchors import anchor_audit_head

            anchor_audit_head(worker.db, app.config["AUDIT_ANCHOR_SECONDS"])  # as the loop does
            counts = worker.run_until_idle()
            click.echo(" ".join(f"{state}={n}" for state, n in sorted(counts.items())) or "idle")
            return
        service.start()
        click.echo("sending the chain outbox; Ctrl-C stops")
        service.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


@main.group()
def push() -> None:
    """Web Push notifications: the queue and the worker that sends it."""


@push.command("status")
@with_app
def push_status(app) -> None:
    """Print subscriptions by owner, push messages by state and the latest failures as JSON."""
    import json

    from server.db import get_db
    from server.push.queue import status

    click.echo(json.dumps(status(get_db()), ensure_ascii=False, indent=2))


@push.command("work")
@click.option("--once", is_flag=True, help="Send what is due, then exit (for cron and tests).")
@with_app
def push_work(app, once: bool) -> None:
    """Send the Web Push queue: due messages, retries with backoff, gone subscriptions removed."""
    import time

    from server.db import get_db
    from server.push import make_sender

    sender = make_sender(app.config, get_db())
    if once:
        counts = sender.run_once()
        click.echo(" ".join(f"{name}={n}" for name, n in counts.items()))
        return
    click.echo("sending the push queue; Ctrl-C stops")
    try:
        while True:
            sender.run_once()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
