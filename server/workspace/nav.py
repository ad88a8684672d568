"""Each role's navigation bar: (path, Chinese label), the home first."""

from flask import current_app, request

HOMES = {
    "admin": "/admin",
    "bureau": "/bureau",
    "finance": "/finance",
    "verifier": "/verifier",
    "enterprise": "/enterprise",
}


def home_for(user: dict | None) -> str:
    """Where a signed-in person lands: their role's home."""
    return HOMES.get((user or {}).get("role", ""), "/")


LINKS: dict[str, list[tuple[str, str]]] = {
    "admin": [
        ("/admin", "待办"),
        ("/admin/villages", "村庄"),
        ("/admin/households", "农户"),
        ("/admin/phones", "手机"),
        ("/admin/flags", "待复核"),
        ("/admin/calculations", "碳汇核算"),
        ("/admin/verification", "核查"),
        ("/admin/issuance", "签发"),
        ("/admin/bundles", "碳汇包"),
        ("/admin/methods", "方法学"),
    ],
    "bureau": [
        ("/bureau", "看板"),
        ("/bureau/trends", "月度趋势"),
        ("/bureau/progress", "各村进度"),
        ("/bureau/map", "地图"),
        ("/bureau/ledger", "账本核对"),
    ],
    "finance": [
        ("/finance", "待办"),
        ("/finance/payments", "确认收款"),
        ("/finance/settlements", "分成结算批次"),
        ("/finance/invoices", "发票申请"),
        ("/bureau", "看板"),
    ],
    "verifier": [
        ("/verifier", "待办"),
        ("/app/#/verify", "核查手机端"),
    ],
    "enterprise": [
        ("/enterprise", "待办"),
        ("/enterprise/orders", "订单与持有"),
        ("/enterprise/invoices", "发票"),
        ("/account/certificates", "证书"),
        ("/bundles", "购买碳汇"),
    ],
}


def links_for(user: dict | None) -> list[dict]:
    """The signed-in role's links, the current one marked."""
    if not user:
        return []
    path = request.path.rstrip("/") or "/"
    links = [(p, label) for p, label in LINKS.get(user["role"], []) if routed(p)]
    best = max(
        (p for p, _ in links if path == p or path.startswith(p.rstrip("/") + "/")),
        key=len,
        default=None,
    )
    return [{"href": p, "label": label, "current": p == best} for p, label in links]


def routed(href: str) -> bool:
    """Whether the app serves this page (screens of other issues may arrive later)."""
    path = href.split("#")[0].split("?")[0] or "/"
    return current_app.url_map.bind("localhost").test(path, method="GET")
