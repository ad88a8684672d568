"""Each role's home: its to-do list first, then where to go next."""

from flask import Blueprint, g, redirect

from server.access import SIGNED_IN, allow
from server.clock import now_iso
from server.db import get_db
from server.workspace import nav
from server.workspace.common import page

bp = Blueprint("workspace", __name__)


def _count(sql: str, params: list | None = None) -> int:
    return get_db().execute(sql, params or []).fetchone()[0] or 0


def _todo(count: int, text: str, href: str, done: str) -> dict:
    """One to-do line: `count` things waiting, or the all-done sentence."""
    return {
        "count": count,
        "text": text if count else done,
        "href": href if nav.routed(href) else None,
    }


@bp.get("/work")
@allow(SIGNED_IN)
def work():
    """The signed-in person's home, by role."""
    return redirect(nav.home_for(g.user), code=303)


@bp.get("/admin")
@allow("admin")
def admin_home():
    """The platform admin's to-do list: flags, samples, issuance, bundles."""
    todo = [
        _todo(
            _count("SELECT count(*) FROM flags WHERE decision IS NULL"),
            "条存疑记录待复核",
            "/admin/flags",
            "没有待复核的记录",
        ),
        _todo(
            _count(
                """SELECT count(*) FROM credit_calculations c WHERE c.status = 'draft'
                   AND NOT EXISTS (SELECT 1 FROM verifications v WHERE v.calculation_id = c.id)"""
            ),
            "个核算期待抽样指派核查员",
            "/admin/verification",
            "没有待指派的核查",
        ),
        _todo(
            _count("SELECT count(*) FROM verifications WHERE status = 'assigned'"),
            "个核查正在复测",
            "/admin/verification",
            "没有进行中的核查",
        ),
        _todo(
            _count(
                """SELECT count(DISTINCT h.village_id) FROM trees t
                   JOIN households h ON h.id = t.household_id WHERE NOT EXISTS
                   (SELECT 1 FROM baseline_checks b WHERE b.village_id = h.village_id
                    AND b.status IN ('assigned', 'passed'))"""
            ),
            "个村的登记基线还没有复核",
            "/admin/baseline",
            "每个有树的村都有基线复核",
        ),
        _todo(
            _count(
                """SELECT count(*) FROM verifications v JOIN credit_calculations c
                   ON c.id = v.calculation_id
                   WHERE v.status IN ('passed', 'partial') AND c.status = 'draft'"""
            ),
            "个核查通过的核算期待签发",
            "/admin/issuance",
            "没有待签发的核算期",
        ),
        _todo(
            _count("SELECT count(*) FROM bundles WHERE status = 'draft'"),
            "个碳汇包草稿待发布",
            "/admin/bundles",
            "没有待发布的碳汇包",
        ),
    ]
    return page("home.html", title="平台管理员工作台", todo=todo, links=[])


@bp.get("/finance")
@allow("finance")
def finance_home():
    """Finance's to-do list: bank payments to confirm, transfers to pay, invoices."""
    todo = [
        _todo(
            _count(
                """SELECT count(*) FROM orders WHERE status = 'reserved' AND expires_at > ?
                   AND pay_method IN ('bank', 'digital_rmb')""",
                [_now()],
            ),
            "笔银行或数字人民币转账待确认收款",
            "/finance/payments",
            "没有待确认的收款",
        ),
        _todo(
            _count("SELECT count(*) FROM settlements WHERE status = 'pending'"),
            "笔农户分成转账待支付",
            "/finance/settlements",
            "没有待支付的农户转账",
        ),
        _todo(
            _count("SELECT count(*) FROM invoice_requests WHERE status = 'requested'"),
            "张发票待开具",
            "/finance/invoices",
            "没有待开具的发票",
        ),
    ]
    links = [("/finance/settlements", "分成结算批次（次日到账）")]
    links += _present(
        [
            ("/finance/refunds", "退款"),
            ("/finance/statements", "支付机构对账单核对"),
        ]
    )
    return page("home.html", title="财务工作台", todo=todo, links=links)


@bp.get("/verifier")
@allow("verifier")
def verifier_home():
    """The verifier's samples to re-measure, with progress."""
    rows = list(
        get_db().query(
            """SELECT v.id, v.sample_size, v.status, v.assigned_at, vi.name AS village_name,
                      c.period_start, c.period_end,
                      (SELECT count(DISTINCT r.tree_id) FROM remeasurements r
                       WHERE r.verification_id = v.id) AS done
               FROM verifications v JOIN villages vi ON vi.id = v.village_id
               JOIN credit_calculations c ON c.id = v.calculation_id
               WHERE v.verifier_id = ? ORDER BY v.status = 'assigned' DESC, v.id DESC""",
            [g.user["id"]],
        )
    )
    waiting = [row for row in rows if row["status"] == "assigned"]
    checks = _count(
        "SELECT count(*) FROM baseline_checks WHERE verifier_id = ? AND status = 'assigned'",
        [g.user["id"]],
    )
    todo = [
        _todo(
            len(waiting),
            "个样本待复测",
            "/app/#/verify",
            "没有待复测的样本",
        ),
        _todo(checks, "个村的基线复核待复测", "/app/#/verify", "没有待复测的基线复核"),
    ]
    return page("verifier_home.html", title="核查员工作台", todo=todo, samples=rows, links=[])


@bp.get("/enterprise")
@allow("enterprise")
def enterprise_home():
    """The enterprise buyer's tonnes held, orders awaiting payment and invoices."""
    user_id = g.user["id"]
    held = _count(
        """SELECT count(*) FROM tonnes t JOIN orders o ON o.id = t.order_id
           WHERE o.buyer_user_id = ? AND t.status = 'held'""",
        [user_id],
    )
    todo = [
        _todo(held, "吨碳汇已持有、待注销", "/enterprise/orders", "没有待注销的持有吨数"),
        _todo(
            _count(
                """SELECT count(*) FROM orders WHERE buyer_user_id = ? AND status = 'reserved'
                   AND expires_at > ?""",
                [user_id, _now()],
            ),
            "笔订单等待付款",
            "/enterprise/orders",
            "没有待付款的订单",
        ),
        _todo(
            _count(
                "SELECT count(*) FROM invoice_requests WHERE user_id = ? AND status = 'requested'",
                [user_id],
            ),
            "张发票申请处理中",
            "/enterprise/invoices",
            "没有处理中的发票申请",
        ),
    ]
    links = [("/bundles", "选购村庄碳汇包"), ("/account/certificates", "我的证书")]
    return page("home.html", title="企业买家工作台", todo=todo, links=links)


def _now() -> str:
    return now_iso()


def _present(links: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Only the links whose pages exist (other screens may arrive later)."""
    return [(href, label) for href, label in links if nav.routed(href)]
