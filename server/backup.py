"""`sipang backup OUT` and `sipang restore OUT --instance DIR`: a consistent copy of an
instance folder, and back.

A backup holds the database copied with SQLite's online backup API (consistent while the
server writes; the WAL's last transactions included), every other file of the instance
folder (photos under `blobs/`, every key: `secret_key`, `pii.key`, `code.key`, `audit.key`,
`chain.key`, `vapid_private.pem`, payment provider keys), the local ledger node's state
(dumped from the running node when `sipang serve` recorded one, so the chain is as new as
the database), and `manifest.json`: each file's sha256 and size, which keys were there and
the ledger deployments the database records (not `locks/`: lock files of uploads under way).
The manifest is written last: a folder without one is not a backup.

A restore checks every file against the manifest, refuses when a key is missing (and says
which) or the target folder is not empty, and writes the folder 0700 with files 0600.
"""

import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
DATABASE = "sipang.db"
FORMAT = 1
ANVIL_STATE = "chain/anvil-state.json"
NODE_RECORD = "chain/node.json"
# Keys made on first run (`server.GENERATED_SECRETS`); each is needed to read what the
# database holds, so a server with data refuses to start without them.
DATA_KEYS = {
    "SECRET_KEY": "secret_key",
    "PII_KEY": "pii.key",
    "CODE_KEY": "code.key",
    "AUDIT_KEY": "audit.key",
}
KEY_SUFFIXES = (".key", ".pem")
KEY_NAMES = ("secret_key",)
SKIPPED = {DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", NODE_RECORD, MANIFEST}


class BackupError(RuntimeError):
    """A backup or restore that cannot be made safely; the message says why."""


def is_key(relative: str) -> bool:
    name = Path(relative).name
    return name in KEY_NAMES or name.endswith(KEY_SUFFIXES)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty_folder(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _private_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def running_node(instance: Path) -> str | None:
    """The URL of the local ledger node `sipang serve` recorded, if it still answers."""
    try:
        url = json.loads((instance / NODE_RECORD).read_text())["url"]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    try:
        _rpc(url, "eth_chainId")
    except OSError:
        return None
    return url


def record_node(instance: Path, url: str) -> None:
    """Note the local node's URL in the instance folder (for reconcile and backup)."""
    path = instance / NODE_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))


def forget_node(instance: Path) -> None:
    (instance / NODE_RECORD).unlink(missing_ok=True)


def _rpc(url: str, method: str, params: list | None = None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(  # noqa: S310 - the node the operator configured
        url, body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer = json.loads(response.read())
    if "error" in answer:
        raise OSError(answer["error"].get("message", "node error"))
    return answer["result"]


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent snapshot while other connections write."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst, pages=1024)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()


def _deployments(database: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT chain_id, contract, address, block_number, deployer FROM chain_deployments "
            "ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    return [dict(row) for row in rows]


def make_backup(instance: Path, database: Path, out: Path) -> dict[str, Any]:
    """Copy the instance into `out` (a new or empty folder); returns the manifest."""
    instance, out = Path(instance).resolve(), Path(out).resolve()
    if not (database.exists()):
        raise BackupError(f"no database at {database}")
    if not _empty_folder(out):
        raise BackupError(f"{out} is not empty: back up into a new folder")
    if out == instance or instance in out.parents:
        raise BackupError("the backup must be outside the instance folder")
    _private_folder(out)
    _copy_database(database, out / DATABASE)
    chain_state = "none"
    url = running_node(instance)
    if url is not None:  # after the database: the chain is at least as new as its outbox
        state = gzip.decompress(bytes.fromhex(_rpc(url, "anvil_dumpState").removeprefix("0x")))
        (out / ANVIL_STATE).parent.mkdir(parents=True, exist_ok=True)
        (out / ANVIL_STATE).write_bytes(state)
        chain_state = "dumped from the running node"
    elif (instance / ANVIL_STATE).exists():
        chain_state = "copied from the state file"
    for path in sorted(instance.rglob("*")):
        relative = path.relative_to(instance).as_posix()
        if not path.is_file() or relative in SKIPPED or relative.startswith("locks/"):
            continue
        if relative == ANVIL_STATE and chain_state.startswith("dumped"):
            continue
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    files = {
        path.relative_to(out).as_posix(): {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }
    for path in out.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    manifest = {
        "format": FORMAT,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "instance": str(instance),
        "database": DATABASE,
        "files": files,
        "keys": sorted(name for name in files if is_key(name)),
        "chain_state": chain_state,
        "deployments": _deployments(out / DATABASE),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
    os.chmod(out / MANIFEST, 0o600)
    return manifest


def check_backup(out: Path) -> dict[str, Any]:
    """The manifest of a complete, unaltered backup; BackupError naming what is wrong."""
    out = Path(out)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{out} has no {MANIFEST}: not a finished backup") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    missing_keys = [name for name in manifest["keys"] if not (out / name).is_file()]
    if missing_keys:
        raise BackupError(
            "the backup lacks " + ", ".join(missing_keys) + ": without every key the data "
            "cannot be read, the audit log checked or the ledger signed; nothing was restored"
        )
    for name, expected in manifest["files"].items():
        path = out / name
        if not path.is_file():
            raise BackupError(f"the backup lacks {name}; nothing was restored")
        if sha256_file(path) != expected["sha256"]:
            raise BackupError(f"{name} changed since the backup was made; nothing was restored")
    return manifest


def restore(out: Path, instance: Path) -> dict[str, Any]:
    """Restore a checked backup into `instance` (a new or empty folder); returns the manifest."""
    manifest = check_backup(out)
    instance = Path(instance)
    if not _empty_folder(instance):
        raise BackupError(f"{instance} is not empty: restore into a new folder")
    _private_folder(instance)
    for name in manifest["files"]:
        target = instance / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o700)
        shutil.copyfile(Path(out) / name, target)
        os.chmod(target, 0o600)
    return manifest


def has_data(database: Path) -> bool:
    """Whether a database file holds anything worth its keys (any audit log entry)."""
    if not database.exists() or database.stat().st_size == 0:
        return False
    db = sqlite3.connect(database, timeout=30)
    try:
        return db.execute("SELECT 1 FROM audit_log LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


def check_instance_keys(instance: Path, database: Path, config: dict[str, Any]) -> None:
    """Refuse to start a server whose database holds data but whose keys are missing: a
    new key would be generated and make the data unreadable. Says which key."""
    missing = [
        filename
        for name, filename in DATA_KEYS.items()
        if not config.get(name) and not (instance / filename).exists()
    ]
    if missing and has_data(database):
        raise BackupError(
            f"{database} holds data but {', '.join(missing)} is missing from {instance}: "
            "restore the instance with `sipang restore` (or put the key back); a new key "
            "would make the data unreadable"
        )


def secure_instance(instance: Path, database: Path) -> None:
    """The instance folder 0700 and the database files 0600 (they hold personal data)."""
    if instance.is_dir():
        os.chmod(instance, 0o700)
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{database}{suffix}")
        if path.exists():
            os.chmod(path, 0o600)
