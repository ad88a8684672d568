"""Screenshots of each staff role's home on a 360 px phone, from the demo county, into
docs/screenshots/<role>.png (and the bureau's dashboard on a PC).

    .venv/bin/python tools/screenshots.py [--out docs/screenshots]

Builds a throwaway instance with `sipang demo`'s data, serves it on a loopback port, signs
in through the form as each demo staff user in Debian's Chromium and saves the full page.
"""

import argparse
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 360, "height": 740}
ROLES = ("admin", "bureau", "finance", "verifier", "enterprise")


def demo_app(folder: Path):
    from server import create_app, demo
    from server.db import get_db

    app = create_app({"INSTANCE_PATH": str(folder)})
    with app.app_context():
        credentials = demo.create_demo(get_db())
    return app, credentials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="sipang-shots-") as folder:
        app, credentials = demo_app(Path(folder) / "instance")
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        staff = {
            info["role"]: (name, info["password"]) for name, info in credentials["staff"].items()
        }
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
                )
                for role in ROLES:
                    if role not in staff:
                        print(f"{role}: no demo user, skipped")
                        continue
                    for name, viewport in (("", PHONE), ("-pc", {"width": 1366, "height": 900})):
                        if name and role != "bureau":
                            continue
                        context = browser.new_context(viewport=viewport, locale="zh-CN")
                        page = context.new_page()
                        page.goto(f"{url}/login")
                        page.fill("input[name=username]", staff[role][0])
                        page.fill("input[name=password]", staff[role][1])
                        page.click("button[type=submit]")
                        page.wait_for_load_state("networkidle")
                        path = out / f"{role}{name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        width = page.evaluate("document.documentElement.scrollWidth")
                        print(
                            f"{role}{name}: {page.url.removeprefix(url)} → {path} ({width} px wide)"
                        )
                        context.close()
                browser.close()
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
