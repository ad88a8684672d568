"""Request bodies: parsed strictly and checked against the route's JSON Schema."""

import json
import math
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from flask import request
from jsonschema import Draft202012Validator, ValidationError, validators

from server.errors import ApiError

SQLITE_INTEGER = range(-(2**63), 2**63)


@lru_cache(maxsize=256)
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """Compile a schema pattern with JSON Schema's (ECMA-262) meaning of `$` and `\\d`.

    Python's `$` also matches before a trailing newline and its `\\d` matches any Unicode
    digit, so `^[0-9]{6}$` would let "330327\\n" through and `\\d` full-width digits.
    """
    translated, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        translated.append(char)
    return re.compile("".join(translated), re.ASCII)


def _pattern(validator, pattern: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unstorable(value: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """Values JSON can spell but the database cannot hold: huge numbers, lone surrogates."""
    field = "/".join(path) or "(body)"
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _unstorable(key, path)
            yield from _unstorable(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable(item, (*path, str(index)))
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield {"field": field, "problem": "contains a lone surrogate, not valid Unicode"}
    elif isinstance(value, int | float) and not isinstance(value, bool):
        in_range = value in SQLITE_INTEGER if isinstance(value, int) else math.isfinite(value)
        if not in_range:
            yield {"field": field, "problem": "is too large a number"}


MAX_JSON_DEPTH, MAX_JSON_CONTAINERS = 32, 50_000
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _too_nested(raw: bytes) -> bool:
    """Whether JSON text nests deeper, or holds more arrays and objects, than a request may."""
    containers = raw.count(b"[") + raw.count(b"{")
    if containers <= MAX_JSON_DEPTH:
        return False
    if containers > MAX_JSON_CONTAINERS:
        return True
    depth = 0
    for token in _JSON_TOKENS.finditer(raw):
        if token.group() in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token.group() in (b"]", b"}"):
            depth -= 1
    return False


def parse_json(raw: bytes) -> Any:
    """Parse a request body strictly: no NaN or Infinity, no deep nesting (which could
    exhaust the C stack once a library has raised the recursion limit)."""
    if _too_nested(raw):
        raise ApiError(400, "invalid_json", "The body nests too deeply.")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:  # also UnicodeDecodeError
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from error


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, validated, or an ApiError naming every problem."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    data = parse_json(request.get_data(cache=True))
    checker = StrictValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problems = [
        {
            "field": "/".join(str(part) for part in error.absolute_path) or "(body)",
            "problem": error.message,
        }
        for error in sorted(
            checker.iter_errors(data), key=lambda e: [str(part) for part in e.absolute_path]
        )
    ]
    problems += _unstorable(data)
    if problems:
        raise ApiError(422, "validation_failed", "The body does not match the schema.", problems)
    return data
