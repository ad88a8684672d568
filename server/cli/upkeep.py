"""Commands that keep a county's server whole: reconcile with the ledger, back up and restore,
and the chain and Web Push workers run as their own services."""

import sys
from pathlib import Path

import click

from server.cli.root import main, with_app


@main.command("reconcile")
@with_app
def reconcile_command(app) -> None:
    """Compare the database with the ledger; print each difference and exit 1 on any."""
    import signal

    from server.backup import running_node
    from server.chain.anvil import AnvilNode
    from server.chain.deploy import attach, current_deployment
    from server.chain.node import connect
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
