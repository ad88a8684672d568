"""The registry's market API: bundles, orders, payment (finance or provider webhook),
enterprise retirement, certificates (JSON, PNG, PDF)."""

from flask import Blueprint, Response, current_app, g, jsonify, request

from server.access import PUBLIC, allow
from server.db import get_db
from server.errors import ApiError
from server.extensions import limiter
from server.registry import (
    artwork,
    bundles,
    card,
    certificates,
    chain_hooks,
    checkout,
    orders,
    payments,
    serials,
)
from server.validation import json_body

PLAIN_TEXT = "^[^<>\\u0000-\\u001f\\u007f]+$"
REQUEST_ID = {"type": "string", "pattern": "^[0-9A-Za-z_-]{8,64}$"}
RULES = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": PLAIN_TEXT},
    "description": {"type": "string", "maxLength": 2000},
    "vintage_from": {"type": "integer", "minimum": 2000, "maximum": 2100},
    "vintage_to": {"type": "integer", "minimum": 2000, "maximum": 2100},
    "methods": {
        "type": "array",
        "items": {"type": "string", "maxLength": 64},
        "minItems": 1,
        "maxItems": 20,
    },
    "min_households": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "max_household_share_pct": {"type": "integer", "minimum": 1, "maximum": 100},
    "price_fen": {"type": "integer", "minimum": 1, "maximum": 100_000_000},
    "commission_bp": {"type": "integer", "minimum": 0, "maximum": 10_000},
    "individual_commission_bp": {"type": "integer", "minimum": 0, "maximum": 10_000},
    "households_pct": {"type": "integer", "minimum": 60, "maximum": 100},
    "collective_pct": {"type": "integer", "minimum": 0, "maximum": 40},
    "maintenance_pct": {"type": "integer", "minimum": 0, "maximum": 40},
}
BUNDLE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["county_code", "name", "vintage_from", "vintage_to", "methods"],
    "properties": {"county_code": {"type": "string", "pattern": "^[0-9]{6}$"}} | RULES,
    "example": {
        "county_code": "360423",
        "name": "武宁县四旁树碳汇包",
        "vintage_from": 2025,
        "vintage_to": 2026,
        "methods": ["sipang-2026.1"],
        "min_households": 1,
        "max_household_share_pct": 100,
    },
}
VERSION = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": RULES,
    "example": {"price_fen": 12000},
}
ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["request_id", "bundle_id", "tonnes"],
    "properties": {
        "request_id": REQUEST_ID | {"description": "made by the buyer; a retry sends it again"},
        "bundle_id": {"type": "integer", "minimum": 1},
        "tonnes": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "beneficiary": {"type": "string", "maxLength": 60, "pattern": PLAIN_TEXT},
        "reason": {"type": "string", "maxLength": 200, "pattern": PLAIN_TEXT},
        "phone": {
            "type": "string",
            "pattern": "^(\\+?86)?1[3-9][0-9]{9}$",
            "description": "the buyer's mobile, to find the certificates again under 我的证书",
        },
        "show_beneficiary": {
            "type": "boolean",
            "description": "let the public verify page show the beneficiary (off by default)",
        },
    },
    "example": {
        "request_id": "req-0001-abcdefgh",
        "bundle_id": 1,
        "tonnes": 1,
        "beneficiary": "李小明",
        "reason": "抵消一年的通勤排放",
    },
}
PAYMENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["method", "reference"],
    "properties": {
        "method": {"enum": ["bank", "digital_rmb"]},
        "reference": {"type": "string", "pattern": "^[0-9A-Za-z_./-]{4,64}$"},
    },
    "example": {"method": "bank", "reference": "ICBC-20260101-000123"},
}
RETIRE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["request_id", "beneficiary", "reason"],
    "properties": {
        "request_id": REQUEST_ID,
        "tonnes": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "beneficiary": {"type": "string", "minLength": 1, "maxLength": 60, "pattern": PLAIN_TEXT},
        "reason": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": PLAIN_TEXT},
    },
    "example": {
        "request_id": "retire-0001-abcdefgh",
        "beneficiary": "某化工有限公司",
        "reason": "（2026）赣0423刑初12号 生态环境损害赔偿",
    },
}

bp = Blueprint("market", __name__, url_prefix="/api/v1")


def order_limit() -> str:
    return current_app.config["ORDER_RATE_LIMIT"]


# One allowance per client address, shared by the API and the buy form.
limit_orders = limiter.shared_limit(order_limit, scope="orders-by-address")


def _bundle(bundle_id: int) -> dict:
    found = bundles.get_bundle(get_db(), bundle_id)
    if found is None:
        raise ApiError(404, "not_found", "No such bundle.")
    return found


def _order(order_id: str) -> dict:
    found = orders.get_order(get_db(), order_id)
    if found is None:
        raise ApiError(404, "not_found", "No such order.")
    return found


def _certificate(cert_id: str) -> dict:
    found = certificates.get(get_db(), cert_id)
    if found is None:
        raise ApiError(404, "not_found", "No such certificate.")
    return found


def _blank_text(data: dict, *fields: str) -> None:
    blank = [
        {"field": f, "problem": "is blank"} for f in fields if f in data and not data[f].strip()
    ]
    if blank:
        raise ApiError(422, "validation_failed", "The body does not match the schema.", blank)


@bp.get("/bundles")
@allow(PUBLIC)
def list_bundles():
    """Bundles on sale (or sold): rules, split, price, tonnes available and sold."""
    return jsonify(bundles=bundles.list_public(get_db()))


@bp.get("/bundles/<int:bundle_id>")
@allow(PUBLIC)
def show_bundle(bundle_id: int):
    """One bundle: rules, split, villages with their households and grams, versions.

    Drafts are shown to admins only."""
    found = _bundle(bundle_id)
    if not bundles.sellable(found) and (g.user is None or g.user["role"] != "admin"):
        raise ApiError(404, "not_found", "No such bundle.")
    return jsonify(bundle=bundles.public_view(get_db(), found, detail=True))


@bp.post("/bundles")
@allow("admin", body=BUNDLE)
def create_bundle():
    """Create a bundle (draft) with entry rules and split policy fixed from now on."""
    data = json_body(BUNDLE)
    _blank_text(data, "name")
    county = data.pop("county_code")
    made = bundles.create_bundle(get_db(), county, data, g.user["id"])
    return jsonify(bundle=bundles.public_view(get_db(), made)), 201


@bp.post("/bundles/<int:bundle_id>/versions")
@allow("admin", body=VERSION)
def version_bundle(bundle_id: int):
    """Change a bundle's rules: a new version; the old one takes no new issuances."""
    data = json_body(VERSION)
    made = bundles.new_version(get_db(), _bundle(bundle_id), data, g.user["id"])
    return jsonify(bundle=bundles.public_view(get_db(), made)), 201


@bp.post("/bundles/<int:bundle_id>/publish")
@allow("admin")
def publish_bundle(bundle_id: int):
    """Put a bundle on sale once its households meet its rules."""
    done = bundles.publish(get_db(), _bundle(bundle_id))
    return jsonify(bundle=bundles.public_view(get_db(), done))


@bp.get("/registry/totals")
@allow("admin", "bureau", "finance")
def totals():
    """Tonnes by bundle and vintage: issued, available, reserved, held, retired, buffer,
    cancelled (issued is always the sum of the rest). A bureau sees its own county's."""
    county = g.user["county_id"] if g.user["role"] == "bureau" else None
    if g.user["role"] == "bureau" and county is None:
        return jsonify(totals=[])
    return jsonify(totals=serials.counts(get_db(), county_id=county))


@bp.post("/orders")
@limit_orders
@allow(PUBLIC, body=ORDER)
def reserve():
    """Reserve tonnes (idempotent on `request_id`; the reservation expires)."""
    data = json_body(ORDER)
    _blank_text(data, "beneficiary", "reason")
    order, created = orders.reserve(get_db(), data, g.user)
    view = orders.order_view(get_db(), order) | {"replayed": not created}
    return jsonify(order=view), 201 if created else 200


@bp.get("/orders/<order_id>")
@allow(PUBLIC)
def show_order(order_id: str):
    """An order through its link: status, amount, pay instructions' figures, certificates."""
    return jsonify(order=orders.order_view(get_db(), _order(order_id)))


@bp.post("/orders/<order_id>/payment")
@allow("finance", body=PAYMENT)
def confirm_payment(order_id: str):
    """Record a bank or digital-RMB payment; individuals' tonnes retire at once."""
    data = json_body(PAYMENT)
    done = orders.confirm_payment(
        get_db(), _order(order_id), data["method"], data["reference"], f"user:{g.user['id']}"
    )
    return jsonify(order=orders.order_view(get_db(), done))


@bp.post("/orders/<order_id>/retirements")
@allow("enterprise", body=RETIRE)
def retire(order_id: str):
    """An enterprise retires tonnes it holds, for a beneficiary and reason (idempotent)."""
    data = json_body(RETIRE)
    _blank_text(data, "beneficiary", "reason")
    order = _order(order_id)
    if order["buyer_user_id"] != g.user["id"]:
        raise ApiError(404, "not_found", "No such order.")
    cert, created = orders.retire_held(get_db(), order, data)
    return jsonify(certificate=certificates.public_view(cert, True), replayed=not created), (
        201 if created else 200
    )


@bp.post("/payments/webhooks/<provider>")
@allow(PUBLIC, csrf=False, body=payments.EVENT)
def webhook(provider: str):
    """A payment provider's signed event (HMAC, timestamp window, replay protection)."""
    found = payments.PROVIDERS.get(provider)
    if found is None or not found.enabled():
        raise ApiError(404, "not_found", "No such payment provider.")
    raw = request.get_data(cache=True)
    payments.verify_signature(found, request.headers.get(payments.SIGNATURE_HEADER), raw)
    event = json_body(payments.EVENT)
    return jsonify(payments.handle(get_db(), found, event))


def _shows_beneficiary(cert: dict) -> bool:
    """The buyer opted in, or the caller holds the order's link (`?order=`)."""
    return certificates.beneficiary_shown(get_db(), cert, request.args.get("order"))


@bp.get("/orders/<order_id>/status")
@allow(PUBLIC)
def order_status(order_id: str):
    """What the order page polls: asks the provider about open trades, then the order."""
    order = _order(order_id)
    payments.check_open_attempts(get_db(), order)
    return jsonify(order=orders.order_view(get_db(), _order(order_id)))


@bp.post("/payments/wechat/notify")
@allow(PUBLIC, csrf=False)
def wechat_notify():
    """WeChat Pay's payment notification (v3: signed headers, AES-256-GCM resource)."""
    return checkout.wechat_notification()


@bp.post("/payments/alipay/notify")
@allow(PUBLIC, csrf=False)
def alipay_notify():
    """Alipay's asynchronous notification (form fields signed with RSA2)."""
    return checkout.alipay_notification()


@bp.get("/certificates/<cert_id>/card.png")
@allow(PUBLIC)
def certificate_card(cert_id: str):
    """A portrait card to share on WeChat Moments: village, tree photos, tonnes, verify QR."""
    cert = _certificate(cert_id)
    png = card.render_card(
        get_db(), cert, current_app.config["PUBLIC_BASE_URL"], _shows_beneficiary(cert)
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=300"})


@bp.get("/certificates/<cert_id>")
@allow(PUBLIC)
def show_certificate(cert_id: str):
    """A certificate's canonical document, its sha256, and whether it recomputes.

    The beneficiary is shown only when the buyer opted in (or with `?order=<link id>`)."""
    cert = _certificate(cert_id)
    return jsonify(
        certificate=certificates.public_view(cert, _shows_beneficiary(cert)),
        check=certificates.check(get_db(), cert),
        ledger=chain_hooks.certificate_record(get_db(), cert, chain_hooks.ledger_reader()),
    )


@bp.get("/certificates/<cert_id>/image.png")
@allow(PUBLIC)
def certificate_png(cert_id: str):
    """The certificate as a PNG to share (QR to its verify page)."""
    cert = _certificate(cert_id)
    png = artwork.render_png(cert, current_app.config["PUBLIC_BASE_URL"], _shows_beneficiary(cert))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=300"})


@bp.get("/certificates/<cert_id>/document.pdf")
@allow(PUBLIC)
def certificate_pdf(cert_id: str):
    """The certificate as a PDF (A4 landscape, QR to its verify page)."""
    cert = _certificate(cert_id)
    pdf = artwork.render_pdf(cert, current_app.config["PUBLIC_BASE_URL"], _shows_beneficiary(cert))
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{cert_id}.pdf"'},
    )
