"""The ledger's Vyper sources and their committed compiled artifacts (ABI and bytecode).

`python -m server.contracts.build` recompiles every source with the `vyper` package and
rewrites the artifacts; a test fails when they drift from the source.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LEDGER = "SipangLedger"


def source_path(name: str = LEDGER) -> Path:
    return HERE / f"{name}.vy"


def artifact_path(name: str = LEDGER) -> Path:
    return HERE / f"{name}.json"


@cache
def load_artifact(name: str = LEDGER) -> dict[str, Any]:
    """The committed artifact: `contract`, `compiler`, `source_sha256`, `abi`, `bytecode`."""
    return json.loads(artifact_path(name).read_text(encoding="utf-8"))
