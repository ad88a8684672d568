"""Benchmark: chain writes per second and confirmation times through the outbox, on local anvil.

Starts real anvil nodes (automine, as `make run` uses, and 1-second blocks, like a BFT
consortium chain's block period), queues payout accruals in the chain outbox and lets the
worker send them one per transaction and in batches. Prints a table with the seeds'
platform beside it, then one JSON line.

    .venv/bin/python bench/chain.py [--quick]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402

from server.chain import outbox  # noqa: E402
from server.chain.anvil import AnvilNode  # noqa: E402
from server.chain.deploy import attach  # noqa: E402
from server.chain.ledger_items import household_hash  # noqa: E402
from server.chain.node import connect_url  # noqa: E402
from server.chain.worker import Worker  # noqa: E402
from server.db import connect, migrate, transaction  # noqa: E402

SEEDS_CONFIRMED = 0.849
SEEDS_TARGET_S = 3.0


def run(node: AnvilNode, key, folder: Path, name: str, rows: int, batch_size: int) -> dict:
    """Queue `rows` accruals and send them all; writes/s and submit-to-receipt percentiles."""
    db = connect(folder / f"{name}.db")
    migrate(db)
    chain = connect_url(node.url, key, "anvil", timeout=30)
    address = getattr(node, "ledger_address", None)
    node.ledger_address = attach(chain, db, address)["address"]
    with transaction(db):
        for n in range(rows):
            household = household_hash(b"bench", f"360423101201-{n % 500:04d}-K7")
            outbox.accrue(db, f"{name}:accrual:{n}", household, 100 + n % 900)
    worker = Worker(chain, db, batch_size=batch_size, receipt_timeout=60)
    started = time.perf_counter()
    worker.run_until_idle(rounds=10_000)
    elapsed = time.perf_counter() - started
    status = outbox.status(db)
    txs = db["chain_txs"].count
    db.close()
    return {
        "rows": rows,
        "batch": batch_size,
        "transactions": txs,
        "seconds": elapsed,
        "writes_per_s": status["confirmed"] / elapsed,
        "p50_ms": status["confirmation_ms"]["p50"],
        "p95_ms": status["confirmation_ms"]["p95"],
        "confirmed_ratio": status["confirmed_ratio"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run under 30 s")
    args = parser.parse_args()
    single, batched, blocky = (40, 640, 256) if args.quick else (300, 6400, 2560)
    key = Account.create()
    results = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with AnvilNode(folder / "automine.json") as node:
            results["automine, one row per tx"] = run(node, key, folder, "single", single, 1)
            results["automine, batches of 64"] = run(node, key, folder, "batch", batched, 64)
        with AnvilNode(folder / "blocks.json", block_time=1) as node:
            results["1 s blocks, batches of 64"] = run(node, key, folder, "blocks", blocky, 64)
    print(
        f"{'local anvil':<28} {'rows':>6} {'txs':>5} {'writes/s':>9} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'confirmed':>10}"
    )
    for label, r in results.items():
        print(
            f"{label:<28} {r['rows']:>6} {r['transactions']:>5} {r['writes_per_s']:>9,.0f} "
            f"{r['p50_ms']:>7} {r['p95_ms']:>7} {r['confirmed_ratio']:>10.1%}"
        )
    print(
        f"{'seeds platform':<28} {'':>6} {'':>5} {'':>9} {'':>7} "
        f"{f'~{SEEDS_TARGET_S * 1000:.0f}':>7} {SEEDS_CONFIRMED:>10.1%}"
    )
    print("(confirmation time: from the row's first submission to its receipt; seeds: target ~3 s)")
    batch = results["automine, batches of 64"]
    blocks = results["1 s blocks, batches of 64"]
    single_run = results["automine, one row per tx"]
    print(
        json.dumps(
            {
                "chain_writes_per_s": round(batch["writes_per_s"]),
                "confirm_p50_ms": batch["p50_ms"],
                "confirm_p95_ms": batch["p95_ms"],
                "confirmed_ratio": min(r["confirmed_ratio"] for r in results.values()),
                "single_writes_per_s": round(single_run["writes_per_s"]),
                "single_confirm_p95_ms": single_run["p95_ms"],
                "blocks_1s_writes_per_s": round(blocks["writes_per_s"]),
                "blocks_1s_confirm_p95_ms": blocks["p95_ms"],
                "seeds_confirmed_ratio": SEEDS_CONFIRMED,
                "seeds_confirm_target_ms": SEEDS_TARGET_S * 1000,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
