"""Every setting, CLI command and live event is documented."""

import re
from pathlib import Path

import click

from server.cli import main
from server.settings import SETTINGS

DOCS = Path(__file__).resolve().parent.parent / "docs"
SERVER = Path(__file__).resolve().parent.parent / "server"


def test_every_setting_is_documented():
    text = (DOCS / "settings.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert missing == []
    assert all(len(s.help.split()) >= 5 for s in SETTINGS)


def _commands(group: click.Group, prefix: str = "sipang"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def test_every_cli_command_is_documented_and_has_help():
    text = (DOCS / "cli.md").read_text()
    commands = dict(_commands(main))
    assert {"sipang serve", "sipang demo", "sipang users", "sipang users add"} <= set(commands)
    for path, command in commands.items():
        assert f"`{path}" in text, f"{path} is not in docs/cli.md"
        assert len((command.help or "").split()) >= 4, f"{path} needs help text"


def test_every_live_event_is_documented():
    text = (DOCS / "events.md").read_text()
    source = "\n".join(p.read_text() for p in SERVER.rglob("*.py"))
    emitted = set(re.findall(r"""(?:socketio\.emit|announce)\(\s*["']([\w.:-]+)["']""", source))
    assert "welcome" in emitted
    missing = [event for event in sorted(emitted) if f"`{event}`" not in text]
    assert missing == []


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    from server import create_app

    monkeypatch.setenv("SIPANG_INSTANCE", str(tmp_path / "from-env"))
    monkeypatch.setenv("SIPANG_TOKEN_TTL_DAYS", "7")
    monkeypatch.setenv("SIPANG_SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("SIPANG_SECRET_KEY", "1234")
    app = create_app()
    assert app.config["INSTANCE_PATH"] == str(tmp_path / "from-env")
    assert app.config["TOKEN_TTL_DAYS"] == 7
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SECRET_KEY"] == "1234"
    assert (tmp_path / "from-env" / "sipang.db").exists()
    assert (tmp_path / "from-env" / "pii.key").stat().st_mode & 0o077 == 0


def test_methodology_doc_embeds_the_current_parameter_tables():
    from server.carbon.method import load_method
    from server.carbon.method_tables import parameter_tables

    text = (DOCS / "methodology.md").read_text()
    assert parameter_tables(load_method()) in text, (
        "docs/methodology.md is out of date: paste server.carbon.method_tables.parameter_tables()"
    )
