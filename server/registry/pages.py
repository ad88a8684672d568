"""Buyer-facing pages (Chinese, mobile-first): bundles, buy, pay instructions, an order's
certificates by its link, an enterprise's certificates, and the public verify page."""

import io
import uuid

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFError
from PIL import Image, ImageOps

from server import form_tokens, units
from server.access import PUBLIC, allow
from server.db import first, get_db
from server.errors import ApiError, error_response
from server.photos import blob_paths
from server.registry import artwork, bundles, certificates, chain_hooks, checkout, market, orders
from server.validation import StrictValidator

bp = Blueprint("registry_pages", __name__)


def _page_bundle(bundle_id: int) -> dict:
    found = bundles.get_bundle(get_db(), bundle_id)
    if found is None or not bundles.sellable(found):
        raise ApiError(404, "not_found", "没有这个碳汇包。")
    return found


@bp.get("/bundles")
@allow(PUBLIC)
def bundles_page():
    """Village carbon bundles on sale."""
    return render_template(
        "registry/bundles.html", bundles=bundles.list_public(get_db()), user=g.user
    )


def _bundle_page(bundle: dict, error: str | None = None, form: dict | None = None, status=200):
    view = bundles.public_view(get_db(), bundle, detail=True)
    return (
        render_template(
            "registry/bundle.html",
            b=view,
            error=error,
            form=form or {},
            # an anonymous page is shared by a cache: its script makes the buyer's own id
            request_id=uuid.uuid4().hex if form_tokens.personal() else "",
            user=g.user,
        ),
        status,
    )


@bp.get("/bundles/<int:bundle_id>")
@allow(PUBLIC)
def bundle_page(bundle_id: int):
    """One bundle: villages, households, tonnes available and sold, price, farmers' share."""
    return _bundle_page(_page_bundle(bundle_id))


@bp.get("/bundles/<int:bundle_id>/photos/<sha256>.jpg")
@allow(PUBLIC)
def bundle_photo(bundle_id: int, sha256: str):
    """A tree photo of the bundle, re-encoded small without its metadata (no GPS)."""
    if len(sha256) != 64 or not bundles.has_photo(get_db(), bundle_id, sha256):
        raise ApiError(404, "not_found", "没有这张照片。")
    path = blob_paths(sha256)[0]
    if not path.exists():
        raise ApiError(404, "not_found", "照片还在上传中。")
    try:
        with Image.open(path) as original:
            picture = ImageOps.exif_transpose(original).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ApiError(404, "not_found", "照片无法显示。") from error
    picture.thumbnail((800, 800))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)  # written fresh: no EXIF, no location
    return Response(
        out.getvalue(), mimetype="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}
    )


BUY_FIELDS = ("tonnes", "beneficiary", "reason", "phone", "show_beneficiary")


@bp.errorhandler(CSRFError)
def buy_form_again(error: CSRFError):
    """The buy form posted without its token (no scripts, an old page): the form again,
    filled in, with a token for the second click; nothing was reserved."""
    bundle_id = (request.view_args or {}).get("bundle_id")
    found = bundle_id is not None and bundles.get_bundle(get_db(), bundle_id)
    if request.endpoint != "registry_pages.buy" or not found or not bundles.sellable(found):
        return error_response(400, "csrf_failed", error.description)
    form_tokens.hand_out_token()
    form = {key: request.form.get(key, "").strip() for key in BUY_FIELDS}
    response = make_response(_bundle_page(found, form_tokens.AGAIN, form, 400))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/bundles/<int:bundle_id>/buy")
@market.limit_orders
@allow(PUBLIC)
def buy(bundle_id: int):
    """The buy form: reserve tonnes and go to the order's pay instructions."""
    bundle = _page_bundle(bundle_id)
    form = {key: request.form.get(key, "").strip() for key in BUY_FIELDS}
    data = {
        # without the page's script the form brings none: this post is its own request
        "request_id": request.form.get("request_id", "")[:64] or uuid.uuid4().hex,
        "bundle_id": bundle_id,
        "tonnes": int(form["tonnes"]) if form["tonnes"].isdigit() else form["tonnes"],
    }
    data |= {key: form[key] for key in ("beneficiary", "reason") if form[key]}
    if form["phone"]:
        data["phone"] = form["phone"].replace(" ", "").replace("-", "")
    if form["show_beneficiary"]:
        data["show_beneficiary"] = True
    errors = list(StrictValidator(market.ORDER).iter_errors(data))
    if errors:
        return _bundle_page(
            bundle,
            "请填写 1 至 10000 的整数吨数；受益人和用途不能含 < > 等符号；手机号为 11 位数字。",
            form,
            422,
        )
    try:
        order, _ = orders.reserve(get_db(), data, g.user)
    except ApiError as error:
        message = "碳汇余量不足，请减少吨数。" if error.code == "sold_out" else error.message
        return _bundle_page(bundle, message, form, error.status)
    return redirect(f"/orders/{order['public_id']}", 303)


@bp.get("/orders/<order_id>")
@allow(PUBLIC)
def order_page(order_id: str):
    """An order through its link: pay instructions while reserved, then its certificates."""
    found = orders.get_order(get_db(), order_id)
    if found is None:
        raise ApiError(404, "not_found", "没有这个订单。")
    view = orders.order_view(get_db(), found)
    bundle = bundles.get_bundle(get_db(), found["bundle_id"])
    native = first(
        get_db(),
        """SELECT id FROM payment_attempts WHERE order_id = ? AND provider = 'wechat'
           AND channel = 'native' AND status = 'open' LIMIT 1""",
        [found["id"]],
    )
    return render_template(
        "registry/order.html",
        o=view,
        bundle=bundle,
        expires=beijing_time(view["expires_at"]),
        pay=checkout.choices(),
        native=native is not None and view["status"] == "reserved",
        user=g.user,
    )


def beijing_time(moment: str) -> str:
    """A stored UTC timestamp as buyers read it: `2026年11月21日 16:18（北京时间）`."""
    return units.when(moment) + "（北京时间）"


@bp.get("/account/certificates")
@allow("enterprise")
def account_certificates():
    """An enterprise account's orders, tonnes held and certificates."""
    rows = get_db().query(
        "SELECT * FROM orders WHERE buyer_user_id = ? AND paid_at IS NOT NULL ORDER BY id DESC",
        [g.user["id"]],
    )
    listed = [orders.order_view(get_db(), row) for row in rows]
    return render_template("registry/account.html", orders=listed, user=g.user)


@bp.get("/verify/<cert_id>")
@allow(PUBLIC)
def verify_page(cert_id: str):
    """A certificate's public check: recomputes its hash and shows valid or mismatch."""
    cert = certificates.get(get_db(), cert_id.strip().upper())
    if cert is None:
        return render_template(
            "registry/verify.html", cert=None, cert_id=cert_id[:40], user=g.user
        ), 404
    check = certificates.check(get_db(), cert)
    shown = certificates.beneficiary_shown(get_db(), cert, request.args.get("order"))
    try:
        text = artwork.lines(cert, shown)
    except (ValueError, KeyError, TypeError, IndexError):
        text = None
    record = chain_hooks.certificate_record(get_db(), cert, chain_hooks.ledger_reader())
    return render_template(
        "registry/verify.html",
        cert=cert,
        cert_id=cert["id"],
        check=check,
        record=record,
        text=text,
        url=artwork.verify_url(current_app.config["PUBLIC_BASE_URL"], cert["id"]),
        user=g.user,
    )
