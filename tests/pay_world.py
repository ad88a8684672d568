"""Local payment providers for the tests: HTTP servers speaking WeChat Pay API v3 and the
Alipay open-platform gateway with keys the test generates. Requests from the SDKs are
checked against the merchant's (app's) public key; answers and notifications are signed
(and, for WeChat, encrypted) exactly as the providers do. Only the host is local."""

import base64
import functools
import gzip
import hashlib
import json
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from server.db import get_db
from server.registry import bundles, issuance
from tests import registry_world as rw
from tests.helpers_snapshot import Snapshot

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
APIV3_KEY = "0123456789abcdefABCDEF0123456789"  # 32 characters, as WeChat's
PUBLIC_KEY_ID = "PUB_KEY_ID_0114232025120700000000000001"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
ALIPAY_APPID = "2021000000000001"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def shared_key(role: str) -> rsa.RSAPrivateKey:
    """One key per role ("merchant", "wechat platform", …) for the whole run: making a
    2,048-bit key takes a tenth of a second, and each test has its own app and servers, so
    no test needs keys of its own; a forgery is signed with a fresh `rsa_key()`."""
    return rsa_key()


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def rsa_sha256(key: rsa.RSAPrivateKey, text: str) -> str:
    signature = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_sha256_ok(public_key, text: str, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature), text.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def self_signed(key: rsa.RSAPrivateKey, serial: int) -> str:
    """A platform certificate as WeChat Pay hands them out (PEM)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def stocked(db, world) -> dict[str, Any]:
    """A published bundle with a few sellable tonnes (grown with the current methodology)."""
    grown = rw.grow_village(db, "360423101202", start_mm=100, end_mm=400, trees_per_household=14)
    found = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])
    made = rw.bundle(db)
    issuance.issue(db, found, made, None)
    return bundles.publish(db, bundles.get_bundle(db, made["id"]))


# The payment test modules' fixtures: a module that names them (`app, bundle, stocked_world =
# pw.app, pw.bundle, pw.stocked_world`) overrides conftest's `app` for its own tests only.


@pytest.fixture(scope="session")
def stocked_world(snapshots, seeded) -> Snapshot:
    """The seeded world with the `stocked` bundle (`world.built["bundle"]`), built once per
    run for every payment test module."""
    return snapshots.extend(
        "pay.stocked", lambda app: {"bundle": stocked(get_db(), app.world)}, on=seeded
    )


@pytest.fixture
def app(request, instance, seeded, stocked_world):
    """Tests that take `bundle` start from the world with the stocked bundle."""
    start = stocked_world if "bundle" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def bundle(world) -> dict[str, Any]:
    return world.built["bundle"]


class _Local:
    """A threading HTTP server whose handler calls `self.handle(request, body)`."""

    def __init__(self):
        outer = self
        self.requests: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, data = outer.handle(self, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Polled every 20 ms rather than 0.5 s, so `close` returns at once.
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class WeChatPay(_Local):
    """WeChat Pay API v3: orders, query, close, refund, trade bill; signed answers and
    encrypted notifications. `certificate=True` signs with a platform certificate instead
    of the WeChat Pay public key."""

    def __init__(self, merchant_key: rsa.RSAPrivateKey, *, certificate: bool = False):
        super().__init__()
        self.merchant_public = merchant_key.public_key()
        self.platform_key = shared_key("wechat platform")
        self.certificate = certificate
        self.cert_serial = secrets.randbits(64)
        self.serial = format(self.cert_serial, "X") if certificate else PUBLIC_KEY_ID
        self.trades: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.closed: list[str] = []
        self.bill = b""

    def settings(self, merchant_key) -> dict[str, Any]:
        base = {
            "WECHATPAY_MCHID": MCHID,
            "WECHATPAY_APPID": APPID,
            "WECHATPAY_APIV3_KEY": APIV3_KEY,
            "WECHATPAY_CERT_SERIAL_NO": MERCHANT_SERIAL,
            "WECHATPAY_PRIVATE_KEY": private_pem(merchant_key),
            "WECHATPAY_API_BASE": self.url,
        }
        if not self.certificate:
            base |= {
                "WECHATPAY_PUBLIC_KEY_ID": PUBLIC_KEY_ID,
                "WECHATPAY_PUBLIC_KEY": public_pem(self.platform_key),
            }
        return base

    def platform_certificate(self) -> str:
        return self_signed(self.platform_key, self.cert_serial)

    # --- the merchant's requests -------------------------------------------------------

    def _authorized(self, request, body: bytes) -> bool:
        auth = request.headers.get("Authorization", "")
        scheme, _, rest = auth.partition(" ")
        fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
        fields = {k: v.strip('"') for k, v in fields.items()}
        message = (
            f"{request.command}\n{request.path}\n{fields.get('timestamp')}\n"
            f"{fields.get('nonce_str')}\n{body.decode()}\n"
        )
        return (
            scheme == "WECHATPAY2-SHA256-RSA2048"
            and fields.get("mchid") == MCHID
            and fields.get("serial_no") == MERCHANT_SERIAL
            and rsa_sha256_ok(self.merchant_public, message, fields.get("signature", ""))
        )

    def signed_headers(self, body: str, key=None, serial=None, stamp=None) -> dict[str, str]:
        stamp = str(int(time.time()) if stamp is None else stamp)
        nonce = secrets.token_hex(16)
        signature = rsa_sha256(key or self.platform_key, f"{stamp}\n{nonce}\n{body}\n")
        return {
            "Wechatpay-Timestamp": stamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": serial or self.serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def _answer(self, status: int, data: dict | None):
        text = json.dumps(data, ensure_ascii=False) if data is not None else ""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        headers |= self.signed_headers(text)
        return status, headers, text.encode()

    def handle(self, request, body: bytes):
        path = urlsplit(request.path).path
        self.requests.append({"method": request.command, "path": request.path, "body": body})
        if path.startswith("/v3/billdownload/"):
            return 200, {"Content-Type": "application/octet-stream"}, gzip.compress(self.bill)
        if not self._authorized(request, body):
            return self._answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        data = json.loads(body) if body else {}
        opening = path.startswith("/v3/pay/transactions/") and "out-trade-no" not in path
        if request.command == "POST" and opening:
            kind = path.rsplit("/", 1)[1]
            if data.get("mchid") != MCHID or data.get("appid") != APPID:
                return self._answer(400, {"code": "PARAM_ERROR", "message": "mchid"})
            self.trades[data["out_trade_no"]] = {"request": data, "state": "NOTPAY"}
            prepay = "wx" + secrets.token_hex(14)
            if kind == "native":
                return self._answer(200, {"code_url": f"weixin://wxpay/bizpayurl?pr={prepay[:12]}"})
            if kind == "h5":
                return self._answer(
                    200, {"h5_url": f"{self.url}/pay/h5?prepay_id={prepay}&package=1"}
                )
            return self._answer(200, {"prepay_id": prepay})
        if path.startswith("/v3/pay/transactions/out-trade-no/"):
            number = path.split("/")[5]
            trade = self.trades.get(number)
            if trade is None:
                return self._answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            if path.endswith("/close"):
                trade["state"] = "CLOSED"
                self.closed.append(number)
                return self._answer(204, None)
            return self._answer(200, self.transaction(number))
        if path == "/v3/refund/domestic/refunds":
            self.refunds.append(data)
            return self._answer(
                200,
                {
                    "refund_id": "50000" + secrets.token_hex(8),
                    "out_refund_no": data["out_refund_no"],
                    "transaction_id": data.get("transaction_id"),
                    "status": "SUCCESS",
                    "amount": data["amount"] | {"payer_refund": data["amount"]["refund"]},
                },
            )
        if path == "/v3/bill/tradebill":
            return self._answer(
                200,
                {
                    "hash_type": "SHA1",
                    "hash_value": hashlib.sha1(self.bill).hexdigest(),  # noqa: S324
                    "download_url": f"{self.url}/v3/billdownload/file?token={uuid.uuid4().hex}",
                },
            )
        return self._answer(404, {"code": "NOT_FOUND", "message": path})

    # --- the buyer pays, WeChat tells the merchant -------------------------------------

    def transaction(self, number: str) -> dict[str, Any]:
        trade = self.trades[number]
        request = trade["request"]
        paid = trade.get("paid_fen", request["amount"]["total"])
        found = {
            "appid": APPID,
            "mchid": MCHID,
            "out_trade_no": number,
            "trade_state": trade["state"],
            "trade_state_desc": "支付成功" if trade["state"] == "SUCCESS" else "未支付",
            "amount": {"total": paid, "payer_total": paid, "currency": "CNY"},
        }
        if trade["state"] == "SUCCESS":
            found |= {
                "transaction_id": trade["transaction_id"],
                "trade_type": "NATIVE",
                "bank_type": "OTHERS",
                "success_time": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
                "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            }
        return found

    def pay(self, number: str, paid_fen: int | None = None) -> str:
        """The buyer scans and pays; returns WeChat's transaction id."""
        trade = self.trades[number]
        trade["state"] = "SUCCESS"
        trade["transaction_id"] = "4200" + secrets.token_hex(12)
        if paid_fen is not None:
            trade["paid_fen"] = paid_fen
        return trade["transaction_id"]

    def notification(
        self,
        number: str,
        *,
        key=None,
        apiv3_key: str = APIV3_KEY,
        stamp=None,
        serial=None,
        transaction: dict | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The payment notification as WeChat posts it: headers and raw body."""
        resource = json.dumps(transaction or self.transaction(number), ensure_ascii=False)
        nonce = secrets.token_hex(6)  # 12 characters, as WeChat's
        sealed = AESGCM(apiv3_key.encode()).encrypt(
            nonce.encode(), resource.encode(), b"transaction"
        )
        body = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "create_time": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
                "resource_type": "encrypt-resource",
                "event_type": "TRANSACTION.SUCCESS",
                "summary": "支付成功",
                "resource": {
                    "original_type": "transaction",
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": base64.b64encode(sealed).decode(),
                    "associated_data": "transaction",
                    "nonce": nonce,
                },
            },
            ensure_ascii=False,
        )
        headers = self.signed_headers(body, key=key, serial=serial, stamp=stamp)
        return headers | {"Content-Type": "application/json"}, body.encode()


def alipay_string(params: dict[str, str], *, drop_sign_type: bool) -> str:
    skip = {"sign", "sign_type"} if drop_sign_type else {"sign"}
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip and params[k] != "")


class Alipay(_Local):
    """The Alipay gateway: page/wap pay (a cashier page), trade query, close, refund; signed
    answers, notifications and return URLs with Alipay's key (RSA2)."""

    def __init__(self, app_key: rsa.RSAPrivateKey):
        super().__init__()
        self.app_public = app_key.public_key()
        self.alipay_key = shared_key("alipay")
        self.trades: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.closed: list[str] = []

    @property
    def gateway(self) -> str:
        return f"{self.url}/gateway.do"

    def settings(self, app_key) -> dict[str, Any]:
        return {
            "ALIPAY_APPID": ALIPAY_APPID,
            "ALIPAY_PRIVATE_KEY": private_pem(app_key),
            "ALIPAY_PUBLIC_KEY": public_pem(self.alipay_key),
            "ALIPAY_GATEWAY": self.gateway,
        }

    def _response(self, method: str, content: dict[str, Any]):
        name = method.replace(".", "_") + "_response"
        inner = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        text = f'{{"{name}":{inner},"sign":"{rsa_sha256(self.alipay_key, inner)}"}}'
        return 200, {"Content-Type": "application/json;charset=utf-8"}, text.encode()

    def handle(self, request, body: bytes):
        params = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
        self.requests.append(params)
        signed_ok = rsa_sha256_ok(
            self.app_public, alipay_string(params, drop_sign_type=False), params.get("sign", "")
        )
        method = params.get("method", "")
        if not signed_ok or params.get("app_id") != ALIPAY_APPID:
            error = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-signature",
            }
            text = json.dumps({"error_response": error})
            return 200, {"Content-Type": "application/json"}, text.encode()
        biz = json.loads(params.get("biz_content") or "{}")
        if method in ("alipay.trade.page.pay", "alipay.trade.wap.pay"):
            self.trades[biz["out_trade_no"]] = {
                "biz": biz,
                "status": "WAIT_BUYER_PAY",
                "notify_url": params.get("notify_url"),
                "return_url": params.get("return_url"),
            }
            page = f"<html><body><h1>支付宝收银台</h1><p>{biz['total_amount']}</p></body></html>"
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()
        trade = self.trades.get(biz.get("out_trade_no", ""))
        if method == "alipay.trade.query":
            if trade is None or trade["status"] == "WAIT_BUYER_PAY":
                return self._response(
                    method,
                    {
                        "code": "40004",
                        "msg": "Business Failed",
                        "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在",
                    },
                )
            return self._response(
                method, {"code": "10000", "msg": "Success"} | self.trade_view(biz["out_trade_no"])
            )
        if method == "alipay.trade.close":
            self.closed.append(biz["out_trade_no"])
            if trade is not None:
                trade["status"] = "TRADE_CLOSED"
            return self._response(
                method, {"code": "10000", "msg": "Success", "out_trade_no": biz["out_trade_no"]}
            )
        if method == "alipay.trade.refund":
            self.refunds.append(biz)
            return self._response(
                method,
                {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": biz.get("trade_no"),
                    "refund_fee": biz["refund_amount"],
                    "fund_change": "Y",
                },
            )
        return self._response(
            method, {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.UNKNOWN"}
        )

    def trade_view(self, number: str) -> dict[str, str]:
        trade = self.trades[number]
        return {
            "trade_no": trade["trade_no"],
            "out_trade_no": number,
            "trade_status": trade["status"],
            "total_amount": trade.get("paid", trade["biz"]["total_amount"]),
            "buyer_logon_id": "159****5620",
        }

    def pay(self, number: str, paid: str | None = None) -> str:
        trade = self.trades[number]
        trade["status"] = "TRADE_SUCCESS"
        trade["trade_no"] = "2026" + secrets.token_hex(12)
        if paid is not None:
            trade["paid"] = paid
        return trade["trade_no"]

    def _signed(self, params: dict[str, str], key=None) -> dict[str, str]:
        params = dict(params, sign_type="RSA2")
        params["sign"] = rsa_sha256(
            key or self.alipay_key, alipay_string(params, drop_sign_type=True)
        )
        return params

    def notification(self, number: str, key=None, **overrides: str) -> dict[str, str]:
        """The asynchronous notification's form fields, signed as Alipay signs them."""
        view = self.trade_view(number)
        params = {
            "notify_time": datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": ALIPAY_APPID,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": view["trade_no"],
            "out_trade_no": number,
            "trade_status": view["trade_status"],
            "total_amount": view["total_amount"],
            "receipt_amount": view["total_amount"],
            "subject": self.trades[number]["biz"]["subject"],
            "gmt_payment": datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        } | overrides
        return self._signed(params, key)

    def return_params(self, number: str, key=None) -> dict[str, str]:
        trade = self.trades[number]
        params = {
            "charset": "utf-8",
            "out_trade_no": number,
            "method": "alipay.trade.page.pay.return",
            "total_amount": trade["biz"]["total_amount"],
            "trade_no": trade.get("trade_no", ""),
            "auth_app_id": ALIPAY_APPID,
            "version": "1.0",
            "app_id": ALIPAY_APPID,
            "seller_id": "2088102177846880",
            "timestamp": datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        }
        return self._signed({k: v for k, v in params.items() if v}, key)


# --- samples for the route matrix (tests/test_access.py) ------------------------------------

PAY_BLUEPRINTS = ("checkout", "buyers", "finance_pay")
PAY_ENDPOINTS = ("market.wechat_notify", "market.alipay_notify")
_KEYS: dict[str, Any] = {}


def _sample_rows(app, order: dict[str, Any]) -> dict[str, str]:
    """Rows a payment route needs in the restored sample database; their ids."""
    from server.db import connect

    db = connect(app.config["DATABASE"])
    try:
        order_id = db.execute("SELECT id FROM orders WHERE public_id = ?", [order]).fetchone()[0]
        now = "2026-12-07T00:00:00.000Z"
        number = "SPSAMPLE" + secrets.token_hex(8).upper()
        db["payment_attempts"].insert_all(
            [
                {
                    "order_id": order_id,
                    "provider": "testpay",
                    "channel": "test",
                    "out_trade_no": number,
                    "amount_fen": 10000,
                    "created_at": now,
                },
                {
                    "order_id": order_id,
                    "provider": "wechat",
                    "channel": "native",
                    "out_trade_no": number + "W",
                    "amount_fen": 10000,
                    "pay_url": "weixin://wxpay/bizpayurl?pr=sample",
                    "created_at": now,
                },
                {
                    "order_id": order_id,
                    "provider": "alipay",
                    "channel": "page",
                    "out_trade_no": number + "A",
                    "amount_fen": 10000,
                    "created_at": now,
                },
            ]
        )
        refund = (
            db["refunds"]
            .insert(
                {
                    "order_id": order_id,
                    "provider": "testpay",
                    "transaction_id": "TP" + number,
                    "out_refund_no": "SPR" + number,
                    "amount_fen": 10000,
                    "reason": "finance",
                    "status": "failed",
                    "requested_by": "user:1",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            .last_pk
        )
        db["payment_events"].insert(
            {
                "provider": "testpay",
                "event_id": "evt-" + number,
                "amount_fen": 500,
                "outcome": "unknown_order",
                "received_at": now,
                "out_trade_no": "ELSEWHERE",
                "transaction_id": "TPX" + number,
            }
        )
        statement = (
            db["statements"]
            .insert(
                {
                    "provider": "wechat",
                    "bill_date": "2026-12-07",
                    "filename": "bill.csv",
                    "sha256": secrets.token_hex(32),
                    "line_count": 0,
                    "matched": 0,
                    "unmatched": 0,
                    "imported_by": "user:1",
                    "imported_at": now,
                }
            )
            .last_pk
        )
        db.conn.commit()
    finally:
        db.close()
    return {
        "<out_trade_no>": number,
        "<int:refund_id>": str(refund),
        "<int:statement_id>": str(statement),
        "event": "evt-" + number,
    }


def pay_route_sample(app, world, endpoint: str, url: str, order: str):
    """(url, request kwargs) for a payment route whose caller is allowed, or None."""
    if endpoint.split(".")[0] not in PAY_BLUEPRINTS and endpoint not in PAY_ENDPOINTS:
        return None
    rows = _sample_rows(app, order)
    for placeholder, value in rows.items():
        url = url.replace(placeholder, value)
    app.config.update(TESTPAY_ENABLED=True, BANK_PAYEE_ACCOUNT="6222020200112233")
    if "merchant" not in _KEYS:
        _KEYS["merchant"], _KEYS["app"] = shared_key("merchant"), shared_key("app")
        _KEYS["wechat"], _KEYS["alipay"] = WeChatPay(_KEYS["merchant"]), Alipay(_KEYS["app"])
    wechat, alipay = _KEYS["wechat"], _KEYS["alipay"]
    app.config.update(wechat.settings(_KEYS["merchant"]) | alipay.settings(_KEYS["app"]))
    if endpoint == "market.wechat_notify":
        wechat.trades["SPELSEWHERE001"] = {"request": {"amount": {"total": 1}}, "state": "NOTPAY"}
        wechat.pay("SPELSEWHERE001")
        headers, body = wechat.notification("SPELSEWHERE001")
        return url, {"data": body, "headers": headers}
    if endpoint == "market.alipay_notify":
        alipay.trades["SPELSEWHERE002"] = {
            "biz": {"total_amount": "1.00", "subject": "x"},
            "status": "WAIT_BUYER_PAY",
        }
        alipay.pay("SPELSEWHERE002")
        return url, {"data": alipay.notification("SPELSEWHERE002")}
    if endpoint == "checkout.alipay_return":
        number = rows["<out_trade_no>"] + "A"
        alipay.trades[number] = {
            "biz": {"total_amount": "100.00", "subject": "x"},
            "status": "WAIT_BUYER_PAY",
        }
        alipay.pay(number, paid="1.00")
        return url, {"query_string": alipay.return_params(number)}
    bodies = {
        "checkout.pay": {"data": {"method": "bank"}},
        "buyers.ask_code": {"data": {"phone": "13812345678"}},
        "finance_pay.confirm": {
            "data": {"method": "bank", "reference": "SAMPLE-0001", "amount_fen": "10000"}
        },
        "finance_pay.refund_unknown": {"data": {"provider": "testpay", "event_id": rows["event"]}},
        "finance_pay.import_statement": {"data": {"provider": "wechat"}},
    }
    if endpoint == "buyers.verify_code":
        from server import pii
        from server.db import connect
        from server.registry import buyers

        with app.test_request_context():
            index = pii.blind_index("13812345678", "buyer_phone")
            code_hash = buyers._code_hash(index, "123456")
        db = connect(app.config["DATABASE"])
        db["buyer_codes"].insert(
            {
                "phone_index": index,
                "code_hash": code_hash,
                "expires_at": "2999-01-01T00:00:00Z",
                "created_at": "2026-12-07T00:00:00Z",
            }
        )
        db.conn.commit()
        db.close()
        return url, {"data": {"phone": "13812345678", "code": "123456"}}
    return url, bodies.get(endpoint, {})
