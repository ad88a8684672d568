"""What the door-plate page `/h/<code>` shows beyond the totals: the household's trees with
their photos and a small map drawn from their own coordinates (no tile service), and one
plain timeline of its money — earned from which sale for anyone who scans the plate; each
transfer (when, to which bank card tail, its ledger proof) only after the second factor."""

import math
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server.dashboards import money

MAP_W, MAP_H, MAP_PAD = 320, 180, 18
BEIJING = timedelta(hours=8)


def beijing_date(value: str | None) -> str:
    """`2026-03-02` or an ISO time → "2026年3月2日" (Beijing time)."""
    if not value:
        return ""
    if len(value) == 10:
        day = datetime.fromisoformat(value)
    else:
        day = datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None) + BEIJING
    return f"{day.year}年{day.month}月{day.day}日"


def yuan(fen: int) -> str:
    """Integer fen as yuan with two decimals, e.g. 12345 → "123.45"."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def tree_map(trees: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Points (numbered as the tree list) in a north-up box, with a scale bar; None when no
    tree has a location."""
    placed = [
        (n, t)
        for n, t in enumerate(trees, start=1)
        if t.get("latitude") is not None and t.get("longitude") is not None
    ]
    if not placed:
        return None
    lat0 = sum(t["latitude"] for _, t in placed) / len(placed)
    metres_per_deg = 111_195.0
    xy = [
        (
            t["longitude"] * math.cos(math.radians(lat0)) * metres_per_deg,
            -t["latitude"] * metres_per_deg,
        )
        for _, t in placed
    ]
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    span = max(30.0, max(xs) - min(xs), (max(ys) - min(ys)) * MAP_W / MAP_H)
    scale = (MAP_W - 2 * MAP_PAD) / span
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    points = [
        {
            "n": n,
            "x": round(MAP_W / 2 + (x - cx) * scale, 1),
            "y": round(MAP_H / 2 + (y - cy) * scale, 1),
            "alive": t["status"] == "alive",
        }
        for (n, t), (x, y) in zip(placed, xy, strict=True)
    ]
    bar = next((m for m in (5, 10, 20, 50, 100, 200, 500, 1000) if m * scale >= 40), 2000)
    return {
        "width": MAP_W,
        "height": MAP_H,
        "points": points,
        "bar_px": round(bar * scale, 1),
        "bar_label": f"{bar} 米" if bar < 1000 else f"{bar // 1000} 公里",
        "unplaced": len(trees) - len(placed),
    }


def timeline(db: Database, household: dict[str, Any], unlocked: bool) -> list[dict[str, Any]]:
    """The household's money, newest first: each sale's share earned (for anyone) and, once
    unlocked, each transfer with the bank card tail, reference tail and ledger proof."""
    from server.dashboards.farmer import tail

    ledger = money.household_ledger(db, household["id"])
    events = [
        {
            "kind": "earned",
            "sort": a["accrued_on"],
            "date": beijing_date(a["accrued_on"]),
            "amount": yuan(a["amount_fen"]),
            "sale": a["bundle_name"],
            "tonnes": a["order_tonnes"],
            "tx_hash": a["tx_hash"] if unlocked else None,
        }
        for a in ledger["accruals"][:100]
    ]
    if unlocked:
        bank_tail = (household.get("bank_account_masked") or "")[-4:] or None
        events += [
            {
                "kind": "paid",
                "sort": (s["recorded_at"] or s["settle_on"] or "")[:10],
                "date": beijing_date(s["recorded_at"] or s["settle_on"]),
                "amount": yuan(s["amount_fen"]),
                "status": s["status"],
                "bank_tail": bank_tail,
                "reference_tail": tail(s["transfer_reference"]),
                "tx_hash": s["tx_hash"],
                "chain_state": s["chain_state"],
            }
            for s in ledger["settlements"][:100]
        ]
    events.sort(key=lambda e: (e["sort"], e["kind"] == "paid"), reverse=True)
    return events
