"""What the workspace's screens share: post-then-redirect with a message, Chinese errors."""

from collections.abc import Callable
from typing import Any

from flask import flash, g, redirect, render_template
from werkzeug.wrappers import Response

from server.errors import ApiError, chinese_message

PROBLEM_FIELDS = {
    "vintage_to": "年份",
    "households_pct": "农户分成",
    "methods": "方法学版本",
    "bundle_id": "碳汇包",
    "phone": "电话",
    "bank_account": "银行卡号",
    "id_number": "身份证号",
    "tax_id": "税号",
    "title": "发票抬头",
}


def back(url: str, ok: str | None = None, error: str | None = None) -> Response:
    """Redirect (303) to `url` with a message for the next page."""
    if ok:
        flash(ok, "ok")
    if error:
        flash(error, "error")
    return redirect(url, code=303)


def attempt(url: str, ok: str, action: Callable[[], Any]) -> Response:
    """Run a service call; back to `url` with `ok`, or with the error in Chinese."""
    try:
        action()
    except ApiError as problem:
        return back(url, error=explain(problem))
    return back(url, ok=ok)


def explain(problem: ApiError) -> str:
    """An ApiError as a Chinese sentence, naming the fields it points at."""
    text = chinese_message(problem.code, problem.message)
    fields = [
        PROBLEM_FIELDS[item["field"]]
        for item in problem.details or []
        if isinstance(item, dict) and item.get("field") in PROBLEM_FIELDS
    ]
    return text + (f"（请检查：{'、'.join(dict.fromkeys(fields))}）" if fields else "")


def page(template: str, **context: Any) -> str:
    """A workspace page with the signed-in user."""
    return render_template(f"workspace/{template}", user=g.user, **context)


def whole(text: str | None, low: int = 1, high: int = 10**9) -> int | None:
    """A form field as an integer within bounds, or None."""
    text = (text or "").strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None
