"""我的证书: a buyer finds their orders and certificates again with the phone number they gave
when buying and a one-time code sent by SMS.

Codes are six digits, kept only as a keyed hash, valid BUYER_CODE_SECONDS, void after five
wrong answers or one right one; at most BUYER_CODE_RATE_LIMIT codes go to one number (and
are asked for from one address). The page answers the same whether or not the number has
orders, and a code is only texted to a number that has some.
"""

import hashlib
import hmac
import secrets
import time
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, session
from limits import parse_many
from sqlite_utils import Database

from server import audit, pii, sms
from server.access import PUBLIC, allow
from server.clock import iso_after, now_iso
from server.db import first, get_db, insert, transaction
from server.extensions import limiter
from server.registry import orders

bp = Blueprint("buyers", __name__)
SESSION_KEY = "buyer_phone"
SESSION_MINUTES = 30
MAX_ATTEMPTS = 5


def _code_limit() -> str:
    return current_app.config["BUYER_CODE_RATE_LIMIT"]


limit_by_address = limiter.shared_limit(_code_limit, scope="buyer-code-by-address")


def _code_hash(phone_index: str, code: str) -> str:
    key = bytes.fromhex(current_app.config["PII_KEY"])
    return hmac.new(key, f"buyer-code:{phone_index}:{code}".encode(), hashlib.sha256).hexdigest()


def _phone_has_orders(db: Database, phone_index: str) -> bool:
    return first(db, "SELECT 1 FROM orders WHERE buyer_phone_index = ?", [phone_index]) is not None


def send_code(db: Database, phone: str) -> bool:
    """Text a code to a number that bought something; False when its allowance is used up."""
    index = pii.blind_index(phone, "buyer_phone")
    counter = f"buyer-code:phone:{index}"
    limits = parse_many(_code_limit())
    if any(not limiter.limiter.test(limit, counter) for limit in limits):
        return False
    for limit in limits:
        limiter.limiter.hit(limit, counter)
    if not _phone_has_orders(db, index):
        return True
    code = f"{secrets.randbelow(1_000_000):06d}"
    with transaction(db):
        db.execute(
            "UPDATE buyer_codes SET used_at = ? WHERE phone_index = ? AND used_at IS NULL",
            [now_iso(), index],
        )
        insert(
            db,
            "buyer_codes",
            {
                "phone_index": index,
                "code_hash": _code_hash(index, code),
                "expires_at": iso_after(seconds=current_app.config["BUYER_CODE_SECONDS"]),
                "created_at": now_iso(),
            },
        )
        audit.record(db, "buyer.code_sent", f"buyer:{index[:16]}")
    sms.send_sms(phone, "buyer_code", {"code": code})
    return True


def check_code(db: Database, phone: str, code: str) -> bool:
    """Whether `code` is the number's live code; spends it when right, counts it when wrong."""
    index = pii.blind_index(phone, "buyer_phone")
    with transaction(db):
        row = first(
            db,
            """SELECT * FROM buyer_codes WHERE phone_index = ? AND used_at IS NULL
               AND expires_at > ? ORDER BY id DESC LIMIT 1""",
            [index, now_iso()],
        )
        if row is None or row["attempts"] >= MAX_ATTEMPTS:
            return False
        if hmac.compare_digest(row["code_hash"], _code_hash(index, code.strip())):
            db.execute("UPDATE buyer_codes SET used_at = ? WHERE id = ?", [now_iso(), row["id"]])
            audit.record(db, "buyer.signed_in", f"buyer:{index[:16]}")
            return True
        db.execute("UPDATE buyer_codes SET attempts = attempts + 1 WHERE id = ?", [row["id"]])
        return False


def signed_in_index() -> str | None:
    held = session.get(SESSION_KEY) or {}
    if isinstance(held, dict) and held.get("until", 0) > time.time():
        return held.get("index")
    return None


def buyer_orders(db: Database, index: str) -> list[dict[str, Any]]:
    rows = db.query(
        "SELECT * FROM orders WHERE buyer_phone_index = ? ORDER BY id DESC LIMIT 200", [index]
    )
    return [orders.order_view(db, row) for row in rows]


@bp.get("/my/certificates")
@allow(PUBLIC)
def my_certificates():
    """我的证书: the buyer's orders and certificates once the phone is confirmed."""
    index = signed_in_index()
    if index is None:
        return render_template("registry/my.html", step="phone", user=g.user)
    return render_template(
        "registry/my.html", step="list", orders=buyer_orders(get_db(), index), user=g.user
    )


def _phone_field() -> str | None:
    try:
        return sms.normalize_phone(request.form.get("phone", ""))
    except ValueError:
        return None


@bp.post("/my/certificates/code")
@limit_by_address
@allow(PUBLIC)
def ask_code():
    """Send a one-time code to the phone number (if it bought something)."""
    phone = _phone_field()
    if phone is None:
        return render_template(
            "registry/my.html", step="phone", error="请输入 11 位手机号。", user=g.user
        ), 422
    if not send_code(get_db(), phone):
        return render_template(
            "registry/my.html",
            step="phone",
            error="验证码发送太频繁，请一小时后再试。",
            user=g.user,
        ), 429
    return render_template("registry/my.html", step="code", phone=phone, user=g.user)


@bp.post("/my/certificates/verify")
@allow(PUBLIC)
def verify_code():
    """Check the code; the browser then sees this number's orders for half an hour.

    Guessing is bounded by the codes themselves: five answers per code, and codes per
    number per hour (BUYER_CODE_RATE_LIMIT)."""
    phone = _phone_field()
    code = request.form.get("code", "")
    if phone is None or not code.isdigit() or not check_code(get_db(), phone, code):
        return render_template(
            "registry/my.html",
            step="code",
            phone=phone or "",
            error="验证码不对或已过期，请重新获取。",
            user=g.user,
        ), 422
    session[SESSION_KEY] = {
        "index": pii.blind_index(phone, "buyer_phone"),
        "until": time.time() + SESSION_MINUTES * 60,
    }
    return redirect("/my/certificates", 303)
