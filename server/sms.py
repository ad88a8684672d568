"""Text messages: buyers' one-time codes and farmers' "money sent", through one adapter.

`send_sms(phone, template, params)` renders nothing itself in production: the SMS provider
(Aliyun SMS, through its SDK) holds the approved template text and fills in the params. The
console sender, used by `make run` and tests, renders the same text locally, logs it with the
phone masked and keeps the last messages in memory so a developer can read the code.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, current_app

log = logging.getLogger(__name__)

PHONE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")


@dataclass(frozen=True)
class Template:
    name: str
    params: tuple[str, ...]
    text: str


# The text is what the console prints and what the template submitted to the provider
# must say; in production the provider's own approved copy is sent, keyed by SMS_TEMPLATES.
TEMPLATES: dict[str, Template] = {
    "buyer_code": Template(
        "buyer_code",
        ("code",),
        "您的验证码为${code}，10分钟内有效，用于查看四旁碳汇证书。请勿告诉他人。",
    ),
    "farmer_money_sent": Template(
        "farmer_money_sent",
        ("amount", "village", "tail"),
        "四旁碳汇：${village}的碳汇收益${amount}元已转入您尾号${tail}的账户，请注意查收。",
    ),
}


class SmsError(Exception):
    """The provider refused or could not be reached; nothing was sent."""


class Sender(Protocol):
    def send(self, phone: str, template: Template, params: dict[str, str]) -> None: ...


def normalize_phone(phone: str) -> str:
    """A mainland mobile number as 11 digits; ValueError for anything else."""
    match = PHONE.match(re.sub(r"[\s-]", "", phone or ""))
    if not match:
        raise ValueError("not a mainland China mobile number")
    return match.group(1)


def mask_phone(phone: str) -> str:
    """138****5678: what logs and screens may show of a phone number."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def render(template: Template, params: dict[str, str]) -> str:
    """The template's text with its params filled in (what the console sender shows)."""
    text = template.text
    for name in template.params:
        text = text.replace("${" + name + "}", params[name])
    return text


class ConsoleSender:
    """Logs each message with the phone masked and keeps the last few in memory."""

    def __init__(self, keep: int = 200) -> None:
        self.sent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def send(self, phone: str, template: Template, params: dict[str, str]) -> None:
        text = render(template, params)
        with self._lock:
            self.sent.append(
                {"phone": phone, "template": template.name, "params": dict(params), "text": text}
            )
        log.info("SMS to %s (%s): %s", mask_phone(phone), template.name, text)

    def last(self, phone: str, template: str | None = None) -> dict[str, Any] | None:
        """The latest message kept for this phone (and template), or None."""
        phone = normalize_phone(phone)
        with self._lock:
            for message in reversed(self.sent):
                if message["phone"] == phone and template in (None, message["template"]):
                    return message
        return None


class AliyunSender:
    """Aliyun SMS (Dysmsapi 2017-05-25 SendSms) through the official SDK."""

    def __init__(self, config: dict[str, Any]) -> None:
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        key_id = config.get("SMS_ACCESS_KEY_ID")
        key_secret = config.get("SMS_ACCESS_KEY_SECRET")
        sign_name = config.get("SMS_SIGN_NAME")
        if not (key_id and key_secret and sign_name):
            raise ValueError(
                "SMS_PROVIDER=aliyun needs SMS_ACCESS_KEY_ID, SMS_ACCESS_KEY_SECRET "
                "and SMS_SIGN_NAME"
            )
        self.codes = template_codes(config)
        missing = sorted(set(TEMPLATES) - set(self.codes))
        if missing:
            raise ValueError(f"SMS_TEMPLATES has no template code for {', '.join(missing)}")
        endpoint = config.get("SMS_ENDPOINT") or "dysmsapi.aliyuncs.com"
        protocol = "HTTPS"
        if endpoint.startswith(("http://", "https://")):
            protocol = endpoint.split(":", 1)[0].upper()
            endpoint = endpoint.split("://", 1)[1].rstrip("/")
        self.sign_name = sign_name
        self.client = Client(
            Config(
                access_key_id=key_id,
                access_key_secret=key_secret,
                endpoint=endpoint,
                protocol=protocol,
                read_timeout=10_000,
                connect_timeout=5_000,
            )
        )

    def send(self, phone: str, template: Template, params: dict[str, str]) -> None:
        from alibabacloud_dysmsapi20170525 import models

        request = models.SendSmsRequest(
            phone_numbers=phone,
            sign_name=self.sign_name,
            template_code=self.codes[template.name],
            template_param=json.dumps(params, ensure_ascii=False),
        )
        try:
            response = self.client.send_sms(request)
        except Exception as error:  # the SDK raises its own exception types
            raise SmsError(f"Aliyun SMS request failed: {type(error).__name__}") from error
        body = response.body
        if body is None or body.code != "OK":
            code = getattr(body, "code", None)
            raise SmsError(f"Aliyun SMS refused the message: {code}")
        log.info(
            "SMS to %s (%s) accepted by Aliyun: %s",
            mask_phone(phone),
            template.name,
            body.biz_id,
        )


def template_codes(config: dict[str, Any]) -> dict[str, str]:
    """SMS_TEMPLATES as a dict (it may come from the environment as a JSON string)."""
    value = config.get("SMS_TEMPLATES") or {}
    if isinstance(value, str):
        value = json.loads(value)
    return {str(k): str(v) for k, v in value.items()}


def make_sender(config: dict[str, Any]) -> Sender:
    """The sender SMS_PROVIDER names: `console` (default) or `aliyun`."""
    provider = (config.get("SMS_PROVIDER") or "console").lower()
    if provider == "console":
        return ConsoleSender()
    if provider == "aliyun":
        return AliyunSender(config)
    raise ValueError(f"unknown SMS_PROVIDER {provider!r}: use console or aliyun")


def init_app(app: Flask) -> None:
    """Create the configured sender once; a misconfigured provider stops the app at start."""
    app.extensions["sms"] = make_sender(app.config)


def sender(app: Flask | None = None) -> Sender:
    """The app's sender (created on first use when init_app was not called)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    if "sms" not in app.extensions:
        init_app(app)
    return app.extensions["sms"]


def send_sms(phone: str, template: str, params: dict[str, str]) -> None:
    """Send one of TEMPLATES to a mainland mobile number; raises SmsError when not sent."""
    chosen = TEMPLATES.get(template)
    if chosen is None:
        raise ValueError(f"unknown SMS template {template!r}")
    given = {str(k): str(v) for k, v in params.items()}
    if set(given) != set(chosen.params):
        raise ValueError(f"template {template} takes {', '.join(chosen.params)}")
    sender().send(normalize_phone(phone), chosen, given)
