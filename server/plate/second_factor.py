"""The door plate's second factor: the last 4 digits of the household's registered phone.

Attempts are rate-limited per client address (FARMER_UNLOCK_RATE_LIMIT) and, counting
failures only, per household (FARMER_UNLOCK_LOCKOUT, and FARMER_UNLOCK_DAILY whatever the
address): past either the plate is locked for the rest of the window. The household limits
are keyed on the household the code resolves to, never on the URL's text, so a code spelt
another way (whitespace, lower case, an old plate) shares its household's count. Failures
and lockouts go to the audit log, never the digits. An unlock is a flag in the signed
session cookie, valid FARMER_UNLOCK_MINUTES.

What the unlock allows beyond the payments lives here too: a push subscription for the
household from this browser (`unlocked_here`), or from a client given `household_token`.
"""

import hmac
import time
from typing import Any

from flask import current_app, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from limits import parse_many

from server import audit, households
from server.db import get_db
from server.errors import ApiError
from server.extensions import csrf, limiter

SESSION_KEY = "unlocked_households"
PUSH_SALT = "sipang-push-household"
LOCKED_MESSAGE = "尝试次数太多，已暂时锁定，请稍后再试，或到村委会查询。"


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


def attempt(household: dict[str, Any], digits: str) -> tuple[str | None, int]:
    """Check the digits typed for the household: (None, 303) and the browser remembered, or
    (the Chinese message to show, its status)."""
    db = get_db()
    if household_locked(household):
        audit.record(db, "household.unlock_locked", f"household:{household['code']}")
        return LOCKED_MESSAGE, 429
    digits = digits.strip()[:8]
    if len(digits) != 4 or not digits.isdigit():
        return "请输入登记手机号的后 4 位数字。", 422
    if household["phone_enc"] is None:
        return "这户没有登记手机号，请到村委会查询。", 422
    phone = households.reveal(db, household, "phone", "farmer second factor")
    if not hmac.compare_digest(phone[-4:].encode(), digits.encode()):
        _count_failure(household)
        audit.record(db, "household.unlock_failed", f"household:{household['code']}")
        return "手机号后 4 位不对。多次输错会暂时锁定。", 403
    audit.record(db, "household.unlocked", f"household:{household['code']}")
    _remember(household)
    return None, 303


# -- the push opt-in the unlock allows ------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=PUSH_SALT)


def household_token(code: str) -> str:
    """A token letting a browser subscribe to `code`'s notices; give it only to someone who
    has just passed the household's second factor (it lasts PUSH_HOUSEHOLD_TOKEN_SECONDS)."""
    return _serializer().dumps({"household": code})


def unlocked_here(code: str) -> dict[str, Any] | None:
    """The household, when this browser just passed its second factor on the door-plate page;
    cookies ride along on cross-site requests, so the request must also carry the page's
    CSRF token."""
    found = households.get_household(code)
    if found is None or not unlocked(found):
        return None
    csrf.protect()
    return found


def verified_household(code: str, token: str | None) -> dict[str, Any]:
    """The household a push subscription may speak for: unlocked in this browser, or named
    by a valid `household_token`; else the matching 4xx."""
    if token is None and (found := unlocked_here(code)) is not None:
        return found
    try:
        claims = _serializer().loads(
            token or "", max_age=current_app.config["PUSH_HOUSEHOLD_TOKEN_SECONDS"]
        )
    except SignatureExpired as error:
        raise ApiError(
            403, "household_not_verified", "The verification expired; verify again."
        ) from error
    except BadSignature as error:
        raise ApiError(
            403, "household_not_verified", "Verify the household (second factor) first."
        ) from error
    if not isinstance(claims, dict) or claims.get("household") != code:
        raise ApiError(403, "household_not_verified", "This token is for another household.")
    found = households.get_household(code)
    if found is None:
        raise ApiError(404, "not_found", "No such household.")
    return found
