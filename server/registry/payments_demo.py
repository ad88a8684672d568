"""The demo county's payments, as a county with WeChat Pay and Alipay configured would have
them: orders paid through each provider (applied exactly as a verified notification is),
one bank transfer waiting for 确认收款, and each provider's daily statement imported and
reconciled with nothing unmatched. Idempotent; `sipang demo` calls `add_payment_history`."""

import secrets
from datetime import UTC, datetime

from sqlite_utils import Database

from server.clock import now_iso
from server.db import first, insert, transaction
from server.registry import bundles, orders, payments, statements
from server.registry.providers import Paid
from server.units import BEIJING, yuan_plain

WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)


def _paid_through(db: Database, bundle_id: int, provider: str, channel: str, n: int) -> dict:
    order, _ = orders.reserve(
        db,
        {
            "request_id": f"demo-{provider}-{n:04d}",
            "bundle_id": bundle_id,
            "tonnes": 1,
            "phone": "13800000000",
            "reason": "抵消一年的通勤排放",
        },
        None,
    )
    number = f"SPDEMO{provider[:1].upper()}{n:04d}{secrets.token_hex(4).upper()}"
    with transaction(db):
        insert(
            db,
            "payment_attempts",
            {
                "order_id": order["id"],
                "provider": provider,
                "channel": channel,
                "out_trade_no": number,
                "amount_fen": order["amount_fen"],
                "created_at": now_iso(),
            },
        )
    prefix = "4200" if provider == "wechat" else "2026"
    trade_id = prefix + secrets.token_hex(12)
    payments.settle(db, provider, Paid(f"demo:{trade_id}", number, trade_id, order["amount_fen"]))
    return {"number": number, "transaction": trade_id, "fen": order["amount_fen"]}


def add_payment_history(db: Database) -> None:
    """Paid WeChat and Alipay orders, a transfer to confirm, and reconciled statements."""
    if first(db, "SELECT 1 FROM orders WHERE request_id = 'demo-wechat-0001'"):
        return
    on_sale = [b for b in bundles.list_public(db) if b.get("on_sale")]
    if not on_sale:
        return
    bundle_id = on_sale[0]["id"]
    try:
        wechat = [_paid_through(db, bundle_id, "wechat", "native", n) for n in (1, 2)]
        alipay = [_paid_through(db, bundle_id, "alipay", "wap", 1)]
        waiting, _ = orders.reserve(
            db, {"request_id": "demo-bank-0001", "bundle_id": bundle_id, "tonnes": 1}, None
        )
    except Exception as error:  # noqa: BLE001 - a small demo bundle may not hold them
        import logging

        logging.getLogger(__name__).warning("demo payments skipped: %s", error)
        return
    orders.choose_transfer(db, waiting, "bank")
    stamp = datetime.now(UTC).astimezone(BEIJING)
    day, moment = stamp.strftime("%Y-%m-%d"), stamp.strftime("%Y-%m-%d %H:%M:%S")
    wechat_lines = [WECHAT_HEADER]
    for trade in wechat:
        values = [
            moment,
            "wx0000000000000000",
            "1900000000",
            "0",
            "",
            trade["transaction"],
            trade["number"],
            "oDemo",
            "NATIVE",
            "SUCCESS",
            "OTHERS",
            "CNY",
            yuan_plain(trade["fen"]),
            "0.00",
            "0",
            "0",
            "0.00",
            "0.00",
            "",
            "",
            "四旁树碳汇 1 吨",
            "",
            "0.60000",
            "0.60%",
            yuan_plain(trade["fen"]),
            "0.00",
            "",
        ]
        wechat_lines.append(",".join("`" + v for v in values))
    wechat_lines.append(
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    )
    statements.import_statement(
        db, "wechat", f"wechat-{day}.csv", "\n".join(wechat_lines).encode(), "system"
    )
    alipay_lines = ["#支付宝业务明细查询", ALIPAY_HEADER]
    for trade in alipay:
        alipay_lines.append(
            f"{trade['transaction']}\t,{trade['number']}\t,交易,四旁树碳汇 1 吨,{moment},{moment},"
            f",,,,138****0000,{yuan_plain(trade['fen'])},{yuan_plain(trade['fen'])},0.00,0.00,0.00,0.00,"
            "0.00,,0.00,0.00,,-0.60,0.00,"
        )
    alipay_lines.append("#业务明细列表结束")
    statements.import_statement(
        db, "alipay", f"alipay-{day}.csv", "\n".join(alipay_lines).encode("gb18030"), "system"
    )
