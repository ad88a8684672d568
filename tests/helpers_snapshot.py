"""The one snapshot helper: a world is built once per session into an instance folder (its
SQLite file, stored photos and keys); each test gets a copy of that folder and a fresh app
on the copy, so no test sees another's writes.

conftest.py's `snapshots` fixture holds them; `seeded` is the small world every `app` starts
from, and a bigger world is built on top of a smaller one:

    registry = snapshots.build("registry", build_sample, on=seeded)
    app = registry.app(tmp_path / "instance")

A test module whose every test needs the same records (a stocked bundle, a paid order…)
builds them once with `extend` and overrides `app` to start from that world:

    @pytest.fixture(scope="session")
    def sold_world(snapshots, seeded):
        return snapshots.extend("push_api.sold", sell_one_tonne, on=seeded)

    @pytest.fixture
    def app(instance, sold_world):
        return sold_world.app(instance)

and the test reads the ids from `world.built`.
"""

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from flask import Flask

from server import create_app


class Snapshot(NamedTuple):
    """An instance folder built once, and what its builder returned (ids, a `World`…)."""

    folder: Path
    data: Any

    def copy_to(self, instance: Path) -> Path:
        """Make `instance` an exact copy of the snapshot (whatever was there before)."""
        if instance.exists():
            shutil.rmtree(instance)
        shutil.copytree(self.folder, instance)
        return instance

    def app(self, instance: Path, **config: Any) -> Flask:
        """A fresh app on a private copy; `app.world` is a copy of the builder's result."""
        self.copy_to(instance)
        app = create_app({"INSTANCE_PATH": str(instance)} | config)
        app.world = copy.deepcopy(self.data)
        return app


class Snapshots:
    """Snapshots by name, each built at most once per session under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self._built: dict[str, Snapshot] = {}

    def build(
        self, name: str, builder: Callable[[Flask], Any], *, on: Snapshot | None = None
    ) -> Snapshot:
        """The snapshot `name`: `builder(app)` runs once, inside an app context, on an empty
        instance or on a copy of `on`; later calls return the first build."""
        if name not in self._built:
            folder = self.root / name
            if on is not None:
                on.copy_to(folder)
            app = create_app({"INSTANCE_PATH": str(folder)})
            if on is not None:
                app.world = copy.deepcopy(on.data)
            with app.app_context():
                data = builder(app)
            checkpoint(app)
            self._built[name] = Snapshot(folder, data)
        return self._built[name]

    def extend(
        self, name: str, builder: Callable[[Flask], dict[str, Any]], *, on: Snapshot
    ) -> Snapshot:
        """A bigger world on `on`'s (a `World`): `builder(app)` runs once, as for `build`, and
        returns what it made by name, which each test's `app.world.built` then holds."""

        def build(app: Flask) -> Any:
            app.world.built |= builder(app)
            return app.world

        return self.build(name, build, on=on)


def checkpoint(app: Flask) -> None:
    """Fold the write-ahead log into the database file, so copying the file copies it all."""
    from server.db import connect

    database = connect(app.config["DATABASE"])
    try:
        database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        database.close()
