"""English on server pages, on request: Chinese first, English when the reader chooses it.

The choice is a cookie (`sipang_lang`, a year, like the PWA's saved choice) set by
`/lang/en` or `/lang/zh`. Templates are written in Chinese; for an English reader each one is
loaded in an English variant: its Chinese text runs (text and attribute values between
tags) are replaced from the catalogue `en.json`, and every `{{ value }}` passes through the
`tr` filter, which translates the labels, messages and dates the Python code hands in
(exact strings, or patterns with `{}` for the parts that vary). Names people entered
(villages, bundles, beneficiaries) stay as entered. Chinese and English templates are cached
apart. What has no English label stays Chinese; tests/test_i18n_crawl.py keeps every
template's text covered.
"""

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, redirect, request
from jinja2 import BaseLoader, Environment
from jinja2.utils import LRUCache
from markupsafe import Markup, escape

from server.access import PUBLIC, allow

COOKIE = "sipang_lang"
LANGUAGES = ("zh", "en")
HAN = re.compile(r"[\u3400-\u9fff]")
# A run of page text or an attribute value: no markup, no quotes, no Jinja braces.
TEXT_RUN = re.compile(r"[^<>\"{}]+")
OUTPUT = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
JINJA = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.S)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAY = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
MONTH = re.compile(r"(\d{4})年(\d{1,2})月")

bp = Blueprint("language", __name__)


def language() -> str:
    """The reader's language: "en" when chosen, else Chinese."""
    try:
        return "en" if request.cookies.get(COOKIE) == "en" else "zh"
    except RuntimeError:  # outside a request (PDFs, the CLI): Chinese
        return "zh"


@lru_cache(maxsize=1)
def catalogue() -> tuple[dict[str, str], list[tuple[re.Pattern, str]]]:
    """(exact labels, patterns) from en.json; a key with `{}` is a pattern."""
    data = json.loads(resources.files(__package__).joinpath("en.json").read_text("utf-8"))
    exact = {key: value for key, value in data.items() if "{}" not in key}
    patterns = [
        (
            re.compile(
                "".join("(.+?)" if p == "{}" else re.escape(p) for p in re.split(r"(\{\})", key))
            ),
            value,
        )
        for key, value in data.items()
        if "{}" in key
    ]
    patterns.sort(key=lambda pair: -len(pair[0].pattern))  # the most specific first
    return exact, patterns


def english_dates(text: str) -> str:
    """2026年12月7日 → 7 Dec 2026; 2026年12月 → Dec 2026."""
    text = DAY.sub(lambda m: f"{int(m[3])} {MONTHS[int(m[2]) - 1]} {m[1]}", text)
    return MONTH.sub(lambda m: f"{MONTHS[int(m[2]) - 1]} {m[1]}", text)


def translate(text: str) -> str:
    """One label or message in English, or unchanged when the catalogue has none."""
    if not HAN.search(text):
        return text
    exact, patterns = catalogue()
    key = " ".join(text.split())
    if key in exact:
        return exact[key]
    for pattern, english in patterns:
        found = pattern.fullmatch(key)
        if found:
            pieces = english.split("{}")
            parts = [translate(part) for part in found.groups()]
            return pieces[0] + "".join(p + rest for p, rest in zip(parts, pieces[1:], strict=False))
    return english_dates(text)


def tr(value: Any) -> Any:
    """The `tr` filter: a value in the reader's language (in markup the code built, such as
    a chart, its text runs only)."""
    if not isinstance(value, str) or language() != "en":
        return value
    if isinstance(value, Markup):
        return Markup(_text(str(value)))  # noqa: S704 - markup in, runs escaped below
    return translate(value)


def _text(piece: str, in_script=lambda position: False) -> str:
    """Replace the Chinese runs of template text (outside Jinja) from the catalogue: escaped
    for HTML, or for a JavaScript string inside a script (`in_script(position)`)."""

    def one(found: re.Match) -> str:
        run = found.group(0)
        core = run.strip()
        if not HAN.search(core):
            return run
        english = translate(core)
        if in_script(found.start()):
            english = json.dumps(english, ensure_ascii=False)[1:-1]
        else:
            english = str(escape(english))
        start = run.index(core[0])
        return run[:start] + english + run[start + len(core) :]

    return TEXT_RUN.sub(one, piece)


SCRIPT = re.compile(r"<script\b.*?</script>", re.I | re.S)


def english_source(source: str) -> str:
    """A template's English variant: text runs translated, every output through `tr`."""
    scripts = [match.span() for match in SCRIPT.finditer(source)]
    out, offset = [], 0
    for piece in JINJA.split(source):
        if piece.startswith("{{"):
            out.append(OUTPUT.sub(lambda m: f"{{{{{m[1]} ({m[2]})|tr {m[3]}}}}}", piece))
        elif piece.startswith(("{%", "{#")):
            out.append(piece)
        else:
            base = offset
            inside = lambda at, base=base: any(a <= base + at < b for a, b in scripts)  # noqa: E731
            out.append(_text(piece, inside).replace('lang="zh-CN"', 'lang="en"'))
        offset += len(piece)
    return "".join(out)


class LanguageLoader(BaseLoader):
    """The app's loader, giving the English variant of a template to an English reader."""

    def __init__(self, inner: BaseLoader):
        self.inner = inner

    def get_source(self, environment: Environment, template: str):
        source, filename, uptodate = self.inner.get_source(environment, template)
        if language() == "en":
            source = english_source(source)
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


class LanguageCache:
    """Jinja's template cache, one per language, so a variant never serves the other."""

    def __init__(self, size: int = 400):
        self.caches = {lang: LRUCache(size) for lang in LANGUAGES}

    def _cache(self) -> LRUCache:
        return self.caches[language()]

    def get(self, key, default=None):
        return self._cache().get(key, default)

    def __getitem__(self, key):
        return self._cache()[key]

    def __setitem__(self, key, value) -> None:
        self._cache()[key] = value

    def __contains__(self, key) -> bool:
        return key in self._cache()

    def clear(self) -> None:
        for cache in self.caches.values():
            cache.clear()


@bp.get("/lang/zh", defaults={"choice": "zh"})
@bp.get("/lang/en", defaults={"choice": "en"})
@allow(PUBLIC)
def choose(choice: str):
    """Remember the reader's language (a year) and go back to the page they were on."""
    back = request.args.get("next", "/")
    if not back.startswith("/") or back.startswith("//") or "\\" in back:
        back = "/"
    response = redirect(back, code=303)
    response.set_cookie(COOKIE, choice, max_age=365 * 24 * 3600, samesite="Lax")
    return response


def init_app(app: Flask) -> None:
    """The English variants, the `tr` filter, `page_language` in templates, the toggle."""
    app.jinja_env.loader = LanguageLoader(app.jinja_env.loader)
    app.jinja_env.cache = LanguageCache()
    app.jinja_env.filters["tr"] = tr
    app.jinja_env.globals["page_language"] = language

    @app.after_request
    def vary_by_language(response):
        if response.mimetype == "text/html":
            response.vary.add("Cookie")
        return response

    app.register_blueprint(bp)
