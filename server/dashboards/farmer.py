"""The farmer's view on the door-plate page `/h/<code>`: totals for anyone who scans the
plate; each payment (date, amount, transfer reference tail, chain transaction) only after
a second factor, the last 4 digits of the household's registered phone.

Attempts are rate-limited per client address (FARMER_UNLOCK_RATE_LIMIT) and, counting
failures only, per household (FARMER_UNLOCK_LOCKOUT, and FARMER_UNLOCK_DAILY whatever the
address): past either the plate is locked for the rest of the window. The household limits
are keyed on the household the code resolves to, never on the URL's text, so a code spelt
another way (whitespace, lower case, an old plate) shares its household's count. Failures
and lockouts go to the audit log, never the digits. An unlock is a flag in the signed
session cookie, valid FARMER_UNLOCK_MINUTES."""

import hmac
import time
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, session
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many

from server import audit, households, trees, units
from server.access import PUBLIC, allow
from server.dashboards import money
from server.db import get_db
from server.extensions import limiter

bp = Blueprint("farmer", __name__)
SESSION_KEY = "unlocked_households"


def _address_limit() -> str:
    return current_app.config["FARMER_UNLOCK_RATE_LIMIT"]


def _household_limits():
    config = current_app.config
    return [
        *parse_many(config["FARMER_UNLOCK_LOCKOUT"]),
        *parse_many(config["FARMER_UNLOCK_DAILY"]),
    ]


def _household_counter(household: dict[str, Any]) -> str:
    """The failures' counter of one household (its row id: every spelling of its code)."""
    return f"farmer-unlock-failures:household:{household['id']}"


def household_locked(household: dict[str, Any]) -> bool:
    """Whether the household took its allowance of wrong answers in a current window."""
    counter = _household_counter(household)
    return any(not limiter.limiter.test(limit, counter) for limit in _household_limits())


def _count_failure(household: dict[str, Any]) -> None:
    counter = _household_counter(household)
    for limit in _household_limits():
        limiter.limiter.hit(limit, counter)


limit_by_address = limiter.shared_limit(_address_limit, scope="farmer-unlock-by-address")


def unlocked(household: dict[str, Any]) -> bool:
    """Whether this browser passed the second factor for this household lately."""
    until = (session.get(SESSION_KEY) or {}).get(str(household["id"]))
    return isinstance(until, int | float) and until > time.time()


def _remember(household: dict[str, Any]) -> None:
    now = time.time()
    kept = {k: v for k, v in (session.get(SESSION_KEY) or {}).items() if v > now}
    kept[str(household["id"])] = int(now + 60 * current_app.config["FARMER_UNLOCK_MINUTES"])
    session[SESSION_KEY] = kept


def tail(reference: str | None, keep: int = 4) -> str | None:
    """A transfer reference shown by its tail only: …1234."""
    if not reference:
        return None
    return "…" + reference[-keep:]


def view(household: dict[str, Any]) -> dict[str, Any]:
    """What the plate page shows of the money: totals always, payments once unlocked."""
    db = get_db()
    totals = money.household_totals(db, household["id"])
    found: dict[str, Any] = {"totals": totals, "unlocked": unlocked(household)}
    if found["unlocked"]:
        ledger = money.household_ledger(db, household["id"])
        found["payments"] = [
            {
                "settle_on": s["settle_on"],
                "paid_on": units.day(s["recorded_at"], ""),  # the Beijing day, as the bureau
                "amount_fen": s["amount_fen"],
                "status": s["status"],
                "reference_tail": tail(s["transfer_reference"]),
                "tx_hash": s["tx_hash"],
                "chain_state": s["chain_state"],
            }
            for s in ledger["settlements"]
        ]
        found["accruals"] = ledger["accruals"][:50]
    return found


def household_response(household: dict[str, Any], error: str | None = None, status: int = 200):
    """The door-plate page (shared by the plain page and the unlock form's answers)."""
    from server import farmer_sms
    from server.dashboards import plate

    farmer = view(household)
    summary = households.public_summary(household)
    db = get_db()
    response = current_app.make_response(
        (
            render_template(
                "household.html",
                h=summary,
                positions=trees.POSITIONS,
                farmer=farmer,
                tree_map=plate.tree_map(summary["trees"]),
                timeline=plate.timeline(db, household, farmer["unlocked"]),
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


@bp.post("/h/<code>/unlock")
@limit_by_address
@allow(PUBLIC)
def unlock(code: str):
    """Show a household's payments after the last 4 digits of its registered phone."""
    household, reason = households.resolve_plate(code)
    if household is None:
        return render_template("invalid_plate.html", reason=reason, user=g.user), 404
    db = get_db()
    if household_locked(household):
        audit.record(db, "household.unlock_locked", f"household:{household['code']}")
        return household_response(household, LOCKED_MESSAGE, 429)
    digits = request.form.get("phone_tail", "").strip()[:8]
    if len(digits) != 4 or not digits.isdigit():
        return household_response(household, "请输入登记手机号的后 4 位数字。", 422)
    if household["phone_enc"] is None:
        return household_response(household, "这户没有登记手机号，请到村委会查询。", 422)
    phone = households.reveal(db, household, "phone", "farmer second factor")
    if not hmac.compare_digest(phone[-4:].encode(), digits.encode()):
        _count_failure(household)
        audit.record(db, "household.unlock_failed", f"household:{household['code']}")
        return household_response(household, "手机号后 4 位不对。多次输错会暂时锁定。", 403)
    audit.record(db, "household.unlocked", f"household:{household['code']}")
    _remember(household)
    return redirect(f"/h/{household['code']}#payments", code=303)


LOCKED_MESSAGE = "尝试次数太多，已暂时锁定，请稍后再试，或到村委会查询。"


@bp.errorhandler(RateLimitExceeded)
def locked_out(_error: RateLimitExceeded):
    household = households.get_household(str((request.view_args or {}).get("code", ""))[:40])
    if household is None:
        return render_template("error.html", status=429, message=LOCKED_MESSAGE), 429
    return household_response(household, LOCKED_MESSAGE, 429)
