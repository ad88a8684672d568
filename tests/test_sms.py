"""The SMS adapter: the console sender, and Aliyun SMS through its SDK against a local server."""

import hashlib
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from server import create_app, sms

KEY_ID = "LTAI-test-key-id"
KEY_SECRET = "test-secret-made-here"


class AliyunSms:
    """Speaks Dysmsapi SendSms and checks the ACS3-HMAC-SHA256 signature (Aliyun's V3)."""

    def __init__(self, secret: str = KEY_SECRET):
        self.secret = secret
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = outer.handle(self, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for the next poll: every 20 ms, not the default 0.5 s
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        fields = dict(item.split("=", 1) for item in rest.split(","))
        signed = fields["SignedHeaders"].split(";")
        canonical_query = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
        canonical_headers = "".join(f"{h}:{request.headers.get(h, '').strip()}\n" for h in signed)
        payload_hash = hashlib.sha256(body).hexdigest()
        canonical = "\n".join(
            [
                request.command,
                parts.path or "/",
                canonical_query,
                canonical_headers,
                ";".join(signed),
                payload_hash,
            ]
        )
        to_sign = f"{algorithm}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        ok = (
            algorithm == "ACS3-HMAC-SHA256"
            and fields.get("Credential") == KEY_ID
            and hmac.compare_digest(expected, fields["Signature"])
            and request.headers.get("x-acs-content-sha256") == payload_hash
            and request.headers.get("x-acs-action") == "SendSms"
            and request.headers.get("x-acs-version") == "2017-05-25"
        )
        if not ok:
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "bad signature"}
        self.received.append(query)
        return 200, {
            "Code": "OK",
            "Message": "OK",
            "BizId": "900619746936498440^0",
            "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
        }

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def aliyun():
    server = AliyunSms()
    yield server
    server.close()


def aliyun_app(instance, endpoint: str, **extra):
    return create_app(
        {
            "INSTANCE_PATH": str(instance),
            "SMS_PROVIDER": "aliyun",
            "SMS_ACCESS_KEY_ID": KEY_ID,
            "SMS_ACCESS_KEY_SECRET": KEY_SECRET,
            "SMS_SIGN_NAME": "四旁碳汇",
            "SMS_TEMPLATES": json.dumps({"buyer_code": "SMS_100", "farmer_money_sent": "SMS_200"}),
            "SMS_ENDPOINT": endpoint,
            **extra,
        }
    )


def test_console_sender_keeps_the_message_and_logs_the_phone_masked(app, caplog):
    caplog.set_level(logging.INFO, logger="server.sms")
    with app.app_context():
        sms.send_sms("+86 139-1234-5678", "buyer_code", {"code": "482913"})
        message = sms.sender().last("13912345678", "buyer_code")
    assert message["text"].startswith("您的验证码为482913，")
    assert message["phone"] == "13912345678"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "139****5678" in logged
    assert "13912345678" not in logged


def test_farmer_money_sent_template_takes_amount_village_and_tail(app):
    with app.app_context():
        sms.send_sms(
            "13912345678",
            "farmer_money_sent",
            {"amount": "12.34", "village": "长水村", "tail": "5679"},
        )
        text = sms.sender().last("13912345678")["text"]
    assert text == "四旁碳汇：长水村的碳汇收益12.34元已转入您尾号5679的账户，请注意查收。"


@pytest.mark.parametrize(
    ("phone", "template", "params"),
    [
        ("12345", "buyer_code", {"code": "1"}),
        ("13912345678", "no_such_template", {"code": "1"}),
        ("13912345678", "buyer_code", {}),
        ("13912345678", "buyer_code", {"code": "1", "extra": "x"}),
    ],
)
def test_bad_phone_template_or_params_send_nothing(app, phone, template, params):
    with app.app_context():
        with pytest.raises(ValueError):
            sms.send_sms(phone, template, params)
        assert list(sms.sender().sent) == []


def test_aliyun_sender_sends_through_the_sdk_with_a_valid_signature(instance, aliyun, caplog):
    caplog.set_level(logging.INFO, logger="server.sms")
    app = aliyun_app(instance, aliyun.url)
    with app.app_context():
        sms.send_sms("13912345678", "buyer_code", {"code": "482913"})
    assert len(aliyun.received) == 1
    sent = aliyun.received[0]
    assert sent["PhoneNumbers"] == "13912345678"
    assert sent["SignName"] == "四旁碳汇"
    assert sent["TemplateCode"] == "SMS_100"
    assert json.loads(sent["TemplateParam"]) == {"code": "482913"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "139****5678" in logged and "13912345678" not in logged


def test_aliyun_refusal_raises_sms_error(instance):
    wrong = AliyunSms(secret="another-secret")
    try:
        app = aliyun_app(instance, wrong.url)
        with app.app_context(), pytest.raises(sms.SmsError):
            sms.send_sms("13912345678", "buyer_code", {"code": "1"})
        assert wrong.received == []
    finally:
        wrong.close()


def test_aliyun_without_keys_or_template_codes_stops_the_app(instance):
    with pytest.raises(ValueError, match="SMS_ACCESS_KEY_ID"):
        create_app({"INSTANCE_PATH": str(instance), "SMS_PROVIDER": "aliyun"})
    with pytest.raises(ValueError, match="farmer_money_sent"):
        aliyun_app(instance, "http://127.0.0.1:9", SMS_TEMPLATES='{"buyer_code": "SMS_1"}')


def test_mask_phone():
    assert sms.mask_phone("13912345678") == "139****5678"
    assert sms.mask_phone("123") == "***"
