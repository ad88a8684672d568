"""The OpenAPI document, generated from the route table and each route's `@allow` rule."""

import re
from typing import Any

from flask import Blueprint, current_app, jsonify

from server.access import PUBLIC, allow, rule_for

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def describe(**fields: Any):
    """Add OpenAPI fields that a route's `@allow` rule cannot carry: query or header
    `parameters` (appended), a `requestBody` the route reads itself, `responses` (merged)."""

    def mark(view):
        view.openapi = fields
        return view

    return mark


def _methods(url_rule) -> list[str]:
    """A route's methods; HEAD only where it was declared on its own (not GET's shadow)."""
    methods = set(url_rule.methods) - {"OPTIONS"}
    if "GET" in methods:
        methods.discard("HEAD")
    return sorted(methods)


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for url_rule in sorted(current_app.url_map.iter_rules(), key=lambda r: r.rule):
        if not url_rule.rule.startswith(("/api/", "/healthz")):
            continue
        rule = rule_for(url_rule.endpoint)
        path = _PARAM.sub(r"{\2}", url_rule.rule)
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if conv == "int" else "string"},
            }
            for conv, name in _PARAM.findall(url_rule.rule)
        ]
        extra = getattr(current_app.view_functions[url_rule.endpoint], "openapi", {})
        for method in _methods(url_rule):
            operation: dict[str, Any] = {
                "operationId": url_rule.endpoint,
                "summary": rule.summary,
                "x-roles": sorted(rule.roles) or ["public"],
                "parameters": parameters,
                "responses": {
                    "default": {
                        "description": "Error",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                    "200": {"description": "OK"},
                },
            }
            if rule.scope:
                operation["x-scope"] = rule.scope
            if not rule.public:
                operation["security"] = [{"bearer": []}, {"session": []}]
            if rule.body:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": rule.body}},
                }
            if extra:
                operation["parameters"] = parameters + extra.get("parameters", [])
                operation["responses"] = operation["responses"] | extra.get("responses", {})
                if "requestBody" in extra:
                    operation["requestBody"] = extra["requestBody"]
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sipang API", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {"Error": ERROR_SCHEMA},
        },
    }


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}

bp = Blueprint("openapi", __name__)


@bp.get("/api/v1/openapi.json")
@allow(PUBLIC)
def openapi():
    """This API's OpenAPI 3.1 document."""
    return jsonify(openapi_document())
