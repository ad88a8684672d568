"""Chinese names for the states the screens show."""

VERIFICATION_STATES = {
    "assigned": "复测中",
    "passed": "通过",
    "partial": "部分通过",
    "failed": "未通过",
}
CALCULATION_STATES = {"draft": "待签发", "issued": "已签发", "void": "已作废"}
BUNDLE_STATES = {"draft": "草稿", "on_sale": "在售", "superseded": "已被新版本取代"}
ORDER_STATES = {
    "reserved": "待付款",
    "expired": "已过期",
    "held": "已付款、持有中",
    "retired": "已注销",
}
FLAG_DECISIONS = {None: "待复核", "accepted": "已接受", "rejected": "已驳回"}
INVOICE_STATES = {"requested": "待开具", "issued": "已开具"}
TREE_STATES = {"alive": "存活", "dead": "死亡", "felled": "已伐"}
POSITIONS = {"house": "宅旁", "village": "村旁", "road": "路旁", "water": "水旁"}
HOUSEHOLD_STATES = {"active": "在册", "inactive": "已迁出"}
PAYMENT_METHODS = {
    "bank": "银行转账",
    "wechat": "微信支付",
    "alipay": "支付宝",
    "testpay": "测试支付",
}


def all_labels() -> dict:
    return {
        "verification_states": VERIFICATION_STATES,
        "calculation_states": CALCULATION_STATES,
        "bundle_states": BUNDLE_STATES,
        "order_states": ORDER_STATES,
        "flag_decisions": FLAG_DECISIONS,
        "invoice_states": INVOICE_STATES,
        "tree_states": TREE_STATES,
        "positions": POSITIONS,
        "household_states": HOUSEHOLD_STATES,
        "payment_methods": PAYMENT_METHODS,
    }
