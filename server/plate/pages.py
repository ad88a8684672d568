"""The door-plate pages: `/h/<code>` (totals, trees and a map for anyone who scans the
plate; payments after the second factor), a tree's photo, the unlock form and the "money
sent" text-message switch."""

from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError

from server import farmer_sms, form_tokens, households, photos, trees
from server.access import PUBLIC, allow
from server.db import first, get_db
from server.errors import ApiError, error_response
from server.plate import second_factor, timeline, tree_map

bp = Blueprint("farmer", __name__)


def _invalid(code: str, reason: str | None):
    current_app.logger.warning("invalid plate scanned: %s (%s)", code[:40], reason)
    return render_template("invalid_plate.html", reason=reason, user=g.user), 404


def household_response(household: dict[str, Any], error: str | None = None, status: int = 200):
    """The door-plate page (shared by the plain page and the unlock form's answers)."""
    db = get_db()
    farmer = timeline.view(db, household)
    summary = households.public_summary(household)
    response = current_app.make_response(
        (
            render_template(
                "household.html",
                h=summary,
                positions=trees.POSITIONS,
                farmer=farmer,
                tree_map=tree_map.tree_map(summary["trees"]),
                timeline=timeline.timeline(db, household, farmer["unlocked"]),
                sms_on=farmer["unlocked"] and farmer_sms.opted_in(db, household["id"]),
                has_phone=household["phone_enc"] is not None,
                unlock_error=error,
                user=g.user,
            ),
            status,
        )
    )
    # with payments on it the page is kept nowhere; without, it may be kept and revalidated
    response.headers["Cache-Control"] = "private, no-store" if farmer["unlocked"] else "no-cache"
    return response


@bp.get("/h/<code>")
@bp.get("/H/<code>")
@allow(PUBLIC)
def household_page(code: str):
    """A door plate's public page: the household's trees, carbon and money totals; its
    payments after the second factor."""
    household, reason = households.resolve_plate(code)
    if household is None:
        return _invalid(code, reason)
    return household_response(household)


@bp.get("/h/<code>/trees/<tree_id>.jpg")
@allow(PUBLIC)
def household_tree_photo(code: str, tree_id: str):
    """The latest photo of one of this door plate's trees, small and without metadata."""
    household, _reason = households.resolve_plate(code)
    # A tree that is gone shows the photo taken when it was marked so, where one came.
    found = household and first(
        get_db(),
        """SELECT coalesce(
               (SELECT b.sha256 FROM blobs b
                WHERE b.sha256 = t.status_photo_sha256 AND t.status != 'alive'),
               (SELECT photo_sha256 FROM measurements WHERE tree_id = t.id
                AND photo_sha256 IS NOT NULL ORDER BY client_time DESC LIMIT 1)) AS photo_sha256
           FROM trees t WHERE t.id = ? AND t.household_id = ?""",
        [tree_id[:40], household["id"]],
    )
    if not found or not found["photo_sha256"]:
        raise ApiError(404, "not_found", "这棵树没有照片。")
    return photos.small_jpeg(found["photo_sha256"])


@bp.post("/h/<code>/unlock")
@second_factor.limit_by_address
@allow(PUBLIC)
def unlock(code: str):
    """Show a household's payments after the last 4 digits of its registered phone."""
    household, reason = households.resolve_plate(code)
    if household is None:
        return render_template("invalid_plate.html", reason=reason, user=g.user), 404
    error, status = second_factor.attempt(household, request.form.get("phone_tail", ""))
    if error is not None:
        return household_response(household, error, status)
    return redirect(f"/h/{household['code']}#payments", code=303)


@bp.post("/h/<code>/sms")
@allow(PUBLIC)
def sms_choice(code: str):
    """Turn "money sent" text messages on or off, once this browser passed the second factor."""
    household, _reason = households.resolve_plate(code)
    if household is None:
        raise ApiError(404, "not_found", "没有这个门牌。")
    if not second_factor.unlocked(household):
        raise ApiError(403, "second_factor_required", "请先输入登记手机号的后 4 位。")
    if household["phone_enc"] is None:
        raise ApiError(422, "no_phone", "这户没有登记手机号，请到村委会登记。")
    farmer_sms.set_opt_in(get_db(), household, request.form.get("sms") == "on")
    return redirect(f"/h/{household['code']}#notices", code=303)


@bp.errorhandler(RateLimitExceeded)
def locked_out(_error: RateLimitExceeded):
    household = households.get_household(str((request.view_args or {}).get("code", ""))[:40])
    if household is None:
        message = second_factor.LOCKED_MESSAGE
        return render_template("error.html", status=429, message=message), 429
    return household_response(household, second_factor.LOCKED_MESSAGE, 429)


@bp.errorhandler(CSRFError)
def unlock_form_again(error: CSRFError):
    """The unlock form posted without its token (no scripts, an old page): the page again with
    a token for the second try; no digits were checked or counted."""
    code = str((request.view_args or {}).get("code", ""))[:40]
    household = households.resolve_plate(code)[0] if request.endpoint == "farmer.unlock" else None
    if household is None:
        return error_response(400, "csrf_failed", error.description)
    form_tokens.hand_out_token()
    response = household_response(household, form_tokens.AGAIN, 400)
    response.headers["Cache-Control"] = "private, no-store"
    return response
