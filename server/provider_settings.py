"""The settings of the services a county signs up with: text messages (Aliyun SMS), bank
transfers, WeChat Pay and Alipay; declared as (name, default, help) and read into
`server.settings.SETTINGS` with the others."""

from typing import Any

PROVIDER_SETTINGS: tuple[tuple[str, Any, str], ...] = (
    (
        "SMS_PROVIDER",
        "console",
        "Who sends text messages (buyers' one-time codes, farmers' money sent): `console` "
        "logs them with the phone masked (for `make run`), `aliyun` sends through Aliyun SMS.",
    ),
    (
        "SMS_ACCESS_KEY_ID",
        None,
        "AccessKey ID of the RAM user allowed to call Aliyun SMS (give it in the environment).",
    ),
    (
        "SMS_ACCESS_KEY_SECRET",
        None,
        "AccessKey secret of that RAM user; give it in the environment, never in a file.",
    ),
    (
        "SMS_SIGN_NAME",
        None,
        "The approved SMS signature (签名) Aliyun puts in front of every message.",
    ),
    (
        "SMS_TEMPLATES",
        None,
        "JSON object naming the approved Aliyun template code of each message, e.g. "
        '`{"buyer_code": "SMS_1", "farmer_money_sent": "SMS_2"}`.',
    ),
    (
        "SMS_ENDPOINT",
        "dysmsapi.aliyuncs.com",
        "Host (or http(s) URL) of the Aliyun SMS API; change it only for a regional endpoint.",
    ),
    (
        "BANK_PAYEE_NAME",
        "",
        "Account name (收款户名) shown on the order page for bank transfers; empty hides "
        "the bank-transfer choice.",
    ),
    (
        "BANK_PAYEE_ACCOUNT",
        "",
        "Account number (收款账号) buyers transfer to, shown on the order page.",
    ),
    (
        "BANK_PAYEE_BANK",
        "",
        "The bank and branch (开户行) of the payee account, shown on the order page.",
    ),
    (
        "WECHATPAY_MCHID",
        None,
        "WeChat Pay merchant id (商户号); setting it turns WeChat Pay on (API v3).",
    ),
    (
        "WECHATPAY_APPID",
        None,
        "The AppID (公众号 or 小程序) bound to the merchant id, used for every WeChat order.",
    ),
    (
        "WECHATPAY_APIV3_KEY",
        None,
        "The 32-character APIv3 key that decrypts notifications (give it in the environment).",
    ),
    (
        "WECHATPAY_CERT_SERIAL_NO",
        None,
        "Serial number of the merchant API certificate whose private key signs requests.",
    ),
    (
        "WECHATPAY_PRIVATE_KEY",
        None,
        "The merchant API private key (PEM text); when not given it is read from "
        "`wechatpay/apiclient_key.pem` in the instance folder.",
    ),
    (
        "WECHATPAY_PUBLIC_KEY_ID",
        None,
        "WeChat Pay public key id (PUB_KEY_ID_…) when the merchant verifies with the WeChat "
        "Pay public key; unset means platform certificates are used instead.",
    ),
    (
        "WECHATPAY_PUBLIC_KEY",
        None,
        "WeChat Pay public key (PEM text); when not given it is read from "
        "`wechatpay/pub_key.pem` in the instance folder (only with WECHATPAY_PUBLIC_KEY_ID).",
    ),
    (
        "WECHATPAY_API_BASE",
        "https://api.mch.weixin.qq.com",
        "Base URL of the WeChat Pay API; change it only for a proxy in front of it.",
    ),
    (
        "ALIPAY_APPID",
        None,
        "Alipay open-platform app id; setting it turns Alipay on (page and wap pay, RSA2).",
    ),
    (
        "ALIPAY_PRIVATE_KEY",
        None,
        "The app's RSA2 private key (PEM text); when not given it is read from "
        "`alipay/app_private_key.pem` in the instance folder.",
    ),
    (
        "ALIPAY_PUBLIC_KEY",
        None,
        "Alipay's public key (PEM text) that verifies notifications and answers; when not "
        "given it is read from `alipay/alipay_public_key.pem` in the instance folder.",
    ),
    (
        "ALIPAY_GATEWAY",
        "https://openapi.alipay.com/gateway.do",
        "The Alipay gateway; the sandbox is https://openapi-sandbox.dl.alipaydev.com/gateway.do.",
    ),
)
