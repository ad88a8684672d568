"""Real-browser helpers: the app served over HTTP, and Debian's Chromium under Playwright."""

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from werkzeug.serving import make_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # shutdown() waits for the next poll: every 20 ms, not the default 0.5 s
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium driven by Playwright (installed by `make test`, never downloaded)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: run `make setup`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield InstrumentedBrowser(browser)
        finally:
            browser.close()


class InstrumentedBrowser:
    """The launched browser, whose contexts let the tests' own instruments (polling
    predicates, axe-core) run beside the app's Content-Security-Policy (`bypass_csp`). The
    app's pages are checked against that policy, without the bypass, in
    tests/test_security_csp.py (`strict=True` there)."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, strict: bool = False, **options):
        return self._browser.new_context(**({} if strict else {"bypass_csp": True}) | options)

    def new_page(self, strict: bool = False, **options):
        return self._browser.new_page(**({} if strict else {"bypass_csp": True}) | options)

    def __getattr__(self, name):
        return getattr(self._browser, name)


PHONE = {"width": 360, "height": 740}
# CDP Network.emulateNetworkConditions for DESIGN.md §5's `gprs`: 50 kbit/s down, 20 up, 500 ms.
GPRS = {
    "offline": False,
    "latency": 500,
    "downloadThroughput": 50_000 / 8,
    "uploadThroughput": 20_000 / 8,
}


def open_phone(
    playwright, profile: Path, *, camera: Path | None = None, geolocation: dict | None = None
):
    """A phone-sized Chromium with its own profile folder (so IndexedDB and the service worker
    outlive a kill), camera and location granted, the camera fed from `camera` (a Y4M video)."""
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: run `make setup`"
    fake_camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        *([f"--use-file-for-fake-video-capture={camera}"] if camera else []),
    ]
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=executable,
        args=[*CHROMIUM_ARGS, *fake_camera],
        viewport=PHONE,
        has_touch=True,
        locale="zh-CN",
        geolocation=geolocation,
        permissions=["geolocation", "camera"] if geolocation else ["camera"],
        bypass_csp=True,  # for the tests' polling predicates; see InstrumentedBrowser
    )


def kill_phone(profile: Path) -> int:
    """SIGKILL every Chromium process of this profile, as a phone kills an app; returns how many."""
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--user-data-dir={profile}".encode() in cmdline:
            with suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    return killed


AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page) -> list[str]:
    """axe-core (from npm) run on the page as it is now: its serious and critical findings."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] for n in v["nodes"][:3])
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
