"""The instance folder: generated secrets and keys that never live in the code."""

import os
import secrets
from pathlib import Path


def read_or_create_secret(folder: Path, name: str, nbytes: int = 32) -> str:
    """Return the hex secret stored in `folder/name`, creating it (mode 0600) on first use."""
    path = folder / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
