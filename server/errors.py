"""One error shape for the whole app: `{"error": {"status", "code", "message", "details"}}`."""

import sqlite3
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error a client caused, reported in the one error shape."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


# What a person reads on an HTML page for each error code (the JSON shape keeps its message).
CHINESE = {
    "bad_request": "请求有误。",
    "unauthorized": "请先登录。",
    "invalid_credentials": "用户名或密码错误。",
    "invalid_token": "登录凭证无效或已过期，请重新登录。",
    "forbidden": "您的角色无权进行此操作。",
    "out_of_scope": "这属于您管辖范围以外的村庄。",
    "device_required": "计量员请通过已注册的手机操作。",
    "not_found": "没有找到这个页面或记录。",
    "method_not_allowed": "不支持这种请求方式。",
    "conflict": "与已保存的数据冲突。",
    "payload_too_large": "文件或内容太大。",
    "unsupported_media_type": "不支持这种文件格式。",
    "validation_failed": "填写的内容有误，请检查后重试。",
    "rate_limited": "尝试次数太多，请稍后再试。",
    "csrf_failed": "页面已过期，请刷新后重试。",
    "internal_error": "服务器出了问题，请稍后再试。",
    "rules_not_met": "碳汇包还不满足其入包规则。",
    "superseded": "这个版本已被新版本取代，请修改最新版本。",
    "open_flags": "还有待复核的记录，复核后才能签发。",
    "not_verified": "只有核查通过（或部分通过）的核算期才能签发。",
    "already_issued": "这个核算期已经签发过。",
    "overlapping_period": "这个核算期与已签发的核算期重叠。",
    "already_decided": "已经处理过了。",
    "already_paid": "这个订单已经付款。",
    "reference_used": "这个流水号已用于另一个订单。",
    "reservation_expired": "预留已过期，请重新下单。",
    "request_id_reused": "这次提交与另一笔注销重复。",
    "not_held": "这个订单没有可注销的持有吨数。",
    "sold_out": "碳汇余量不足，请减少吨数。",
    "invalid_enrolment_code": "注册码无效或已用过。",
    "bad_file": "文件无法读取，请检查格式。",
    "already_recorded": "这笔转账已经记录过。",
    "exceeds_owed": "金额超过应付。",
    "no_access_rule": "这个页面没有设置访问规则。",
    "upload_busy": "这张照片正在接收中，请稍后再试。",
}


def has_chinese(text: str | None) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text or "")


def chinese_message(code: str, message: str | None = None) -> str:
    """The message a person reads: the service's own if it is Chinese, else the code's."""
    if has_chinese(message):
        return message
    return CHINESE.get(code, "操作没有完成，请检查后重试。")


def wants_json() -> bool:
    """JSON for the API and machine clients, HTML for people in a browser."""
    if request.path.startswith(("/api/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """Render an error as JSON or as a page, whichever the client wants."""
    if wants_json():
        # every body has all four keys (README); `details` is null when there is nothing more
        body = {"status": status, "code": code, "message": message, "details": details}
        response = jsonify(error=body)
    else:
        response = Response(
            render_template("error.html", status=status, message=chinese_message(code, message)),
            mimetype="text/html",
        )
    response.status_code = status
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error: CSRFError) -> Response:
        return error_response(400, "csrf_failed", error.description)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(
            status, _HTTP_CODES.get(status, "http_error"), error.description or error.name
        )
        for name in ("Retry-After", "Allow"):
            if error.get_response().headers.get(name):
                response.headers[name] = error.get_response().headers[name]
        return response

    @app.errorhandler(sqlite3.IntegrityError)
    def handle_integrity_error(error: sqlite3.IntegrityError) -> Response:
        return error_response(409, "conflict", "This conflicts with data already stored.")

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on the server.")
