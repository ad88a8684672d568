"""`sipang serve`: the web app under gunicorn, with the chain and Web Push workers beside it.

`make run` and a county's server answer with the same production server (gunicorn with
deploy/gunicorn.conf.py): `serve` starts it as a child process for the app and runs the ledger
node, the chain worker and the push worker itself, as the systemd units do apart.
"""

import os
import subprocess
import sys
from pathlib import Path

import click

from server.cli.root import main, with_app

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
STOP_SECONDS = 40  # gunicorn's graceful_timeout (30 s) and its own shutdown


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@with_app
def serve(app, host: str, port: int) -> None:
    """Serve the web app, JSON API and live updates (Socket.IO) with gunicorn."""
    from server import demo

    credentials = demo.load_credentials()
    if credentials:
        click.echo(demo.describe(credentials))
    ledger = start_chain(app) if app.config["CHAIN_WORKER"] else None
    pusher = start_push(app) if app.config["PUSH_WORKER"] else None
    web = None
    stop_on_sigterm()
    try:
        web = start_web(app, host, port)
        click.echo(f"Sipang is serving http://{host}:{port}/  (instance: {app.instance_path})")
        code = web.wait()
        raise click.ClickException(f"The web server (gunicorn) stopped with exit code {code}.")
    except KeyboardInterrupt:
        click.echo("Stopping: the workers finish their round and the ledger node saves its state.")
    finally:
        if web is not None:
            stop_web(web)
        if pusher is not None:
            pusher.stop()
        if ledger is not None:
            ledger.stop()


def start_web(app, host: str, port: int) -> subprocess.Popen:
    """gunicorn with deploy/gunicorn.conf.py on HOST:PORT for this instance, as a child that
    dies with `serve` (a crash of `serve` takes the web server with it, as one process did)."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    env = {**os.environ, "SIPANG_INSTANCE": app.instance_path, "SIPANG_BIND": bind}
    if app.config.get("CHAIN_RPC"):  # the node `serve` started: pages and health read it
        env["SIPANG_CHAIN_RPC"] = app.config["CHAIN_RPC"]
    env["SIPANG_SERVE_PID"] = str(os.getpid())  # gunicorn then dies with `serve`
    return subprocess.Popen(  # noqa: S603 - our own interpreter and gunicorn
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
        cwd=GUNICORN_CONF.parents[1],
        env=env,
    )


def stop_web(web: subprocess.Popen) -> None:
    """Stop gunicorn as systemd does (SIGTERM: requests under way finish), then wait."""
    if web.poll() is None:
        web.terminate()
    try:
        web.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        web.kill()
        web.wait()


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
