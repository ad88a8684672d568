"""The app shell in a real Chromium: installable, updated in place, and resumable uploads.

- Chromium's own installability check passes on the manifest, icons and service worker.
- A new version of the shell is offered as "update available"; taking it reloads into the new
  version, and the old cache is deleted.
- The app killed in the middle of a photo upload resumes from the bytes the server holds.
"""

import io
import json
import os
import re
import shutil
import threading

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

import server.pwa
from tests.browser import GPRS, kill_phone, open_phone, serious_violations, serving
from tests.helpers_pwa import WAIT_MS, enrol, fill_tree, ready, wait_until


def test_chromium_finds_the_app_installable(app, world, tmp_path):
    with serving(app) as site, sync_playwright() as playwright:
        phone = open_phone(playwright, tmp_path / "phone")
        page = phone.pages[0]
        page.goto(f"{site}/app/")
        ready(page, "enrol")
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        cdp = phone.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["errors"] == [], manifest["errors"]
        assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        assert manifest["url"] == f"{site}/app/manifest.webmanifest"
        assert json.loads(manifest["data"])["display"] == "standalone"
        phone.close()


@pytest.fixture
def shell_copy(tmp_path, monkeypatch):
    """The app's files served from a copy, so the test can ship a new version of them."""
    copy = tmp_path / "pwa"
    shutil.copytree(server.pwa.PWA_ROOT, copy, ignore=shutil.ignore_patterns("tests"))
    monkeypatch.setattr(server.pwa, "PWA_ROOT", copy)
    return copy


def caches(page) -> list[str]:
    return sorted(page.evaluate("caches.keys()"))


def served_version(client) -> str:
    worker = client.get("/app/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    return re.search(r'^const VERSION = "([0-9a-f]{12})";$', worker.text, re.M).group(1)


def test_the_service_workers_version_is_a_hash_of_the_shell(app, client, shell_copy):
    """Any change to any shell file (or to sw.js) serves a new VERSION; nothing else does."""
    first = served_version(client)
    assert served_version(client) == first
    assert client.get("/app/sw.js", headers={"If-None-Match": f'"{first}"'}).status_code == 304
    seen = {first}
    for name in ("css/app.css", "js/api.js", "i18n/zh.json", "icons/icon-192.png", "index.html"):
        path = shell_copy / name
        path.write_bytes(path.read_bytes() + b"\n")
        version = served_version(client)
        assert version not in seen, name
        seen.add(version)
    worker = shell_copy / "sw.js"
    worker.write_text(
        worker.read_text().replace("NAVIGATION_TIMEOUT_MS = 4000", "NAVIGATION_TIMEOUT_MS = 5000")
    )
    assert served_version(client) not in seen
    seen.add(served_version(client))
    (shell_copy / "calculator.html").write_text("not part of the app's shell")
    assert served_version(client) in seen


def test_a_new_version_is_offered_and_replaces_the_old(app, world, shell_copy, tmp_path):
    with serving(app) as site, sync_playwright() as playwright:
        phone = open_phone(playwright, tmp_path / "phone")
        page = phone.pages[0]
        enrol(page, site, app, world)
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        assert page.is_hidden("#update")  # the first install is not an update
        old = next(name for name in caches(page) if name.startswith("sipang-shell-"))
        # A release changes a shell file and nothing else: no version number to bump.
        css = shell_copy / "css" / "app.css"
        css.write_text(css.read_text() + "\nbody { --release: 2; }\n")
        with app.app_context():
            new = f"sipang-shell-{server.pwa.shell_version()}"
        assert new != old

        page.reload()  # any visit checks for a new service worker
        page.wait_for_selector("#update", state="visible", timeout=WAIT_MS)
        assert page.evaluate("getComputedStyle(document.body).getPropertyValue('--release')") == ""
        with page.expect_navigation():
            page.click("#update")
        ready(page, "village")
        assert (
            page.evaluate("getComputedStyle(document.body).getPropertyValue('--release')").strip()
            == "2"
        )
        page.wait_for_function(f"caches.keys().then((k) => !k.includes('{old}'))")
        assert new in caches(page)
        phone.close()


class UploadLog:
    """WSGI middleware that notes each photo chunk the server is sent: (offset, bytes)."""

    def __init__(self, app):
        self.app, self.chunks, self.lock = app, [], threading.Lock()

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "PUT" and "/blobs/" in environ["PATH_INFO"]:
            with self.lock:
                self.chunks.append(
                    (
                        int(environ.get("HTTP_UPLOAD_OFFSET", -1)),
                        int(environ.get("CONTENT_LENGTH") or 0),
                    )
                )
        return self.app(environ, start_response)


def test_killed_mid_upload_the_photo_resumes_where_it_stopped(app, world, tmp_path):
    log = UploadLog(app.wsgi_app)
    app.wsgi_app = log
    partial_dir = tmp_path / "instance" / "blobs" / "partial"
    with serving(app) as site, sync_playwright() as playwright:
        phone = open_phone(playwright, tmp_path / "phone")
        page = phone.pages[0]
        enrol(page, site, app, world)
        phone.set_offline(True)
        page.evaluate(f"location.hash = '#/tree/new/{world.household_a}'")
        ready(page, "tree-new")
        fill_tree(page)
        photo = io.BytesIO()
        Image.frombytes("RGB", (1280, 960), os.urandom(1280 * 960 * 3)).save(
            photo, "JPEG", quality=80
        )
        page.set_input_files(
            "#photo",
            files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": photo.getvalue()}],
        )
        page.wait_for_selector("#photo-status[data-tone=ok]")
        page.click("#save")
        page.wait_for_selector("#saved")
        size = page.evaluate(
            """async () => {
                const idb = await import('/app/js/idb.js');
                return (await idb.withStore('photos', 'readonly', (s) => s.getAll()))[0].size;
            }"""
        )

        # Signal on a 2G link: the records go, the photo starts, a chunk or two arrive.
        phone.new_cdp_session(page).send("Network.emulateNetworkConditions", GPRS)
        phone.set_offline(False)
        page.evaluate("window.sipang.scheduler.kick('test')")
        for _ in range(WAIT_MS // 200):
            partials = list(partial_dir.glob("*.part")) if partial_dir.exists() else []
            if partials and partials[0].stat().st_size > 0:
                break
            page.wait_for_timeout(200)
        held = partials[0].stat().st_size
        assert 0 < held < size
        assert kill_phone(tmp_path / "phone") > 0

        # Reopened with a good signal: the upload carries on from what the server holds.
        sent_before = len(log.chunks)
        phone = open_phone(playwright, tmp_path / "phone")
        page = phone.pages[0]
        page.goto(f"{site}/app/#/outbox")
        ready(page, "outbox")
        wait_until(page, "s.pending === 0 && s.photosPending === 0")
        phone.close()

    resumed = log.chunks[sent_before:]
    assert resumed and resumed[0][0] >= held  # not from zero
    assert sum(length for _, length in log.chunks) < size + 256 * 1024  # at most one chunk twice
    final = next((tmp_path / "instance" / "blobs").glob("??/*"))
    assert final.stat().st_size == size


def test_the_service_worker_precaches_every_file_the_app_needs():
    """Every module app.js imports (transitively, at once or when a screen opens), its styles,
    catalogues and icons are in sw.js's SHELL list, so a new file cannot be forgotten and
    break the app offline."""
    root = server.pwa.PWA_ROOT
    listed = set(re.findall(r'"(/app/[^"]*)"', (root / "sw.js").read_text()))
    modules, todo = set(), ["js/app.js"]
    while todo:
        name = todo.pop()
        if name not in modules:
            modules.add(name)
            todo += [
                f"js/{m}"
                for m in re.findall(
                    r'(?:from |import\()"\./([\w-]+\.js)"', (root / name).read_text()
                )
            ]
    needed = {f"/app/{name}" for name in modules} | {"/app/", "/app/css/app.css"}
    needed |= {f"/app/i18n/{p.name}" for p in (root / "i18n").glob("*.json")}
    needed |= {f"/app/icons/{p.name}" for p in (root / "icons").glob("*.png")}
    assert needed <= listed, sorted(needed - listed)
    assert len(modules) > 10  # the import walk found the app's modules


def test_the_village_board_opens_offline_after_one_visit(app, world, tmp_path):
    with serving(app) as site, sync_playwright() as playwright:
        phone = open_phone(playwright, tmp_path / "phone")
        page = phone.pages[0]
        enrol(page, site, app, world)
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        page.click("a[href='#/board']")
        ready(page, "board")
        online = page.inner_text("main")
        assert "长水村" in online and "在册树木" in online and "已付给农户" in online

        phone.set_offline(True)
        page.reload()
        ready(page, "board")
        assert page.inner_text("main") == online  # the copy the service worker kept
        assert serious_violations(page) == []
        phone.close()
