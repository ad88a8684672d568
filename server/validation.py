"""Request bodies: parsed strictly and checked against the route's JSON Schema."""

from typing import Any

from flask import request
from jsonschema import Draft202012Validator

from server.errors import ApiError


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, validated, or an ApiError naming every problem."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.")
    problems = [
        {
            "field": "/".join(str(part) for part in error.absolute_path) or "(body)",
            "problem": error.message,
        }
        for error in sorted(
            Draft202012Validator(schema).iter_errors(data),
            key=lambda e: [str(part) for part in e.absolute_path],
        )
    ]
    if problems:
        raise ApiError(422, "validation_failed", "The body does not match the schema.", problems)
    return data
