"""The reconciliation behind the bureau's button: the same comparison as `sipang
reconcile`, told in Chinese."""

from typing import Any

from sqlite_utils import Database

from server import units
from server.clock import now_iso
from server.reconcile import reconcile
from server.registry.chain_hooks import ledger_reader

TABLES = {
    "audit_heads": "审计日志",
    "certificates": "证书",
    "bundles": "碳汇包",
    "issuances": "签发",
    "tonnes": "碳汇序列号",
    "accruals": "农户应得",
    "settlements": "农户到账",
    "settlement_batches": "结算批次",
    "anchors": "存证",
    "orders": "订单",
    "verifications": "核查报告",
    "trees": "树木测量",
    "households": "农户",
}


def run(db: Database, code_key: str) -> dict[str, Any]:
    """Compare now; {ok, checked, differences: [...], waiting, message, at}."""
    at = units.when(now_iso())
    try:
        contract = ledger_reader()
    except Exception:  # noqa: BLE001 - no node, wrong address: said plainly below
        contract = None
    if contract is None:
        return {
            "ok": None,
            "at": at,
            "message": "现在连不上账本节点，无法核对。请稍后再试，或联系平台管理员。",
        }
    try:
        differences, checked = reconcile(db, contract, code_key)
    except Exception:  # noqa: BLE001 - the node went away mid-check
        return {"ok": None, "at": at, "message": "核对中途与账本节点断开，请稍后再试。"}
    listed = [
        {
            "what": TABLES.get(d.table, "记录"),
            "row": d.row,
            "waiting": d.waiting,
        }
        for d in differences
    ]
    waiting = sum(1 for d in differences if d.waiting)
    if not differences:
        message = f"一致：逐条核对了 {checked} 项，数据库与链上记录完全相符。"
    elif waiting == len(differences):
        message = f"核对了 {checked} 项；{waiting} 项还在等待上链确认，稍后再核对。"
    else:
        message = f"发现 {len(differences) - waiting} 处不一致，请联系平台管理员核查。"
    return {
        "ok": not differences or waiting == len(differences),
        "checked": checked,
        "differences": listed[:200],
        "waiting": waiting,
        "message": message,
        "at": at,
    }
