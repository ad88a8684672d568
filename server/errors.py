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


def wants_json() -> bool:
    """JSON for the API and machine clients, HTML for people in a browser."""
    if request.path.startswith(("/api/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """Render an error as JSON or as a page, whichever the client wants."""
    if wants_json():
        body = {"status": status, "code": code, "message": message}
        if details is not None:
            body["details"] = details
        response = jsonify(error=body)
    else:
        response = Response(
            render_template("error.html", status=status, message=message), mimetype="text/html"
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
