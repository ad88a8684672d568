"""Sipang's web app: `create_app` assembles settings, database, extensions and blueprints."""

import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from server import settings
from server.instance import read_or_create_secret

GENERATED_SECRETS = {
    "SECRET_KEY": "secret_key",
    "PII_KEY": "pii.key",
    "CODE_KEY": "code.key",
    "AUDIT_KEY": "audit.key",
}


def _from_environment() -> dict[str, Any]:
    """Settings given as SIPANG_<NAME>; numbers and booleans are read as JSON."""
    values: dict[str, Any] = {}
    for setting in settings.SETTINGS:
        raw = os.environ.get(f"SIPANG_{setting.name}")
        if raw is None:
            continue
        if isinstance(setting.default, bool | int):
            try:
                values[setting.name] = json.loads(raw)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"SIPANG_{setting.name} must be a JSON number or boolean"
                ) from error
        else:
            values[setting.name] = raw
    if os.environ.get("SIPANG_INSTANCE"):
        values["INSTANCE_PATH"] = os.environ["SIPANG_INSTANCE"]
    return values


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; `test_config` overrides the environment and the defaults."""
    config = settings.defaults() | _from_environment() | (test_config or {})
    instance = Path(config["INSTANCE_PATH"]).resolve()
    app = Flask(__name__, instance_path=str(instance), static_folder=None)
    app.config.from_mapping(config)
    app.config["INSTANCE_PATH"] = str(instance)
    from server import backup

    backup.check_instance_keys(
        instance, Path(app.config.get("DATABASE") or instance / "sipang.db"), app.config
    )
    for name, filename in GENERATED_SECRETS.items():
        if not app.config.get(name):
            app.config[name] = read_or_create_secret(instance, filename)
    if app.config.get("TESTPAY_ENABLED") and not app.config.get("TESTPAY_SECRET"):
        # made at start, not at the first webhook, so a backup taken before any payment has it
        app.config["TESTPAY_SECRET"] = read_or_create_secret(instance, "testpay.key")
    app.config.setdefault("DATABASE", None)
    app.config["DATABASE"] = app.config["DATABASE"] or str(instance / "sipang.db")
    from server.push import keys as push_keys

    app.extensions["push_public_key"] = push_keys.public_key(push_keys.load_or_create(instance))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_HEADERS_ENABLED=True,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False
    app.logger.setLevel(app.config["LOG_LEVEL"])
    logging.getLogger("werkzeug").setLevel(app.config["LOG_LEVEL"])

    from server import db

    database = db.connect(app.config["DATABASE"])
    db.migrate(database)
    database.close()
    backup.secure_instance(instance, Path(app.config["DATABASE"]))
    app.teardown_appcontext(db.close_db)

    from server import (
        admin,
        audit,
        auth,
        devices,
        errors,
        health,
        households,
        identity,
        kits,
        live,  # noqa: F401 - its Socket.IO handlers must exist before init_app below
        openapi,
        pages,
        pwa,
        rosters,
        security,
        sms,
        sync_api,
        trees,
        users,
        villages,
        workspace,
    )
    from server.carbon import blueprints as carbon
    from server.chain import blueprints as chain
    from server.dashboards import blueprints as dashboards
    from server.extensions import csrf, init_compression, limiter, socketio
    from server.payouts import blueprints as payouts
    from server.plate import blueprints as plate
    from server.push import blueprints as push
    from server.registry import blueprints as registry

    errors.register_error_handlers(app)
    identity.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    init_compression(app)
    socketio.init_app(app, async_mode="threading")
    security.init_app(app)  # after Socket.IO, so the proxy fix wraps it too
    sms.init_app(app)
    for part in (
        pages,
        plate,
        health,
        openapi,
        auth,
        users,
        villages,
        households,
        trees,
        devices,
        audit,
        carbon,
        pwa,
        rosters,
        kits,
        admin,
        sync_api,
        chain,
        registry,
        payouts,
        dashboards,
        push,
    ):  # a module's `bp`, or the BLUEPRINTS a package lists (api.py JSON, pages.py HTML)
        for blueprint in getattr(part, "BLUEPRINTS", None) or (part.bp,):
            app.register_blueprint(blueprint)
    workspace.init_app(app)  # role homes, navigation, the one formatting helper's filters
    return app
