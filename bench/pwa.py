"""The measurer app against its budgets (DESIGN.md §12): first-load bytes, offline start on a slow
phone, and Lighthouse's scores for the measurer app and a household's public page.

Runs the demo county in a real server process (`sipang serve`), Debian's Chromium through
Playwright, and Lighthouse from npm (`make bench-tools` installs it into bench/node_modules).

    .venv/bin/python bench/pwa.py [--quick] [--screenshots DIR]

- first load: bytes on the wire (headers included, as sent: compressed) for the app's first visit
  until the service worker holds the whole shell, counted by a byte-counting proxy in front of
  the server; then what enrolling adds (the methodology and the village's roster);
- offline start: airplane mode, CPU slowed 4× (a 5-year-old Android phone), from navigation to
  the village screen drawn from IndexedDB (`performance.mark("sipang-ready")`), median of runs;
- Lighthouse 12 (mobile, its simulated slow 4G and 4× CPU): performance, accessibility and best
  practices for `/app/`, `/h/<code>` and the app's offline village map `/app/#/map` (opened in
  a Chromium profile enrolled beforehand, its storage kept);
- `--screenshots DIR`: each screen at 360×740 for review.

The last line is one JSON object: first_load_kb, offline_start_ms, lighthouse_performance,
lighthouse_accessibility (the lowest of the pages), and the rest of the figures.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.proxy import WeakNetworkProxy  # noqa: E402
from tests.browser import CHROMIUM_ARGS  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

LIGHTHOUSE = ROOT / "bench" / "node_modules" / ".bin" / "lighthouse"
PHONE = {"width": 360, "height": 740}
FIELD = {"latitude": 29.2611, "longitude": 115.0934, "accuracy": 6}
CATEGORIES = ("performance", "accessibility", "best-practices")


def prepare(instance: Path) -> dict:
    """The demo county, plus an enrolment code for a measurer of its first village."""
    subprocess.run(  # noqa: S603 - our own programs, no shell
        [str(ROOT / ".venv" / "bin" / "sipang"), "demo", "--instance", str(instance)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from server import create_app, devices
    from server.db import first, get_db

    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        measurer = first(db, "SELECT * FROM users WHERE role = 'measurer' ORDER BY id LIMIT 1")
        admin = first(db, "SELECT id FROM users WHERE role = 'admin' ORDER BY id LIMIT 1")
        household = first(
            db,
            """SELECT h.code FROM households h JOIN trees t ON t.household_id = h.id
               WHERE h.village_id = ? GROUP BY h.id ORDER BY count(*) DESC LIMIT 1""",
            [measurer["village_id"]],
        )["code"]
        code = devices.create_enrolment_code(db, measurer, admin["id"])["code"]
        second = devices.create_enrolment_code(db, measurer, admin["id"])["code"]
    return {"enrolment_code": code, "second_code": second, "household": household}


def ready(page, screen: str) -> None:
    page.wait_for_selector(f"body[data-ready=true][data-screen={screen}]", timeout=60_000)


def first_load(browser, proxy: WeakNetworkProxy, world: dict) -> tuple[dict, object]:
    """Bytes for the shell's first visit, then for enrolling; returns the enrolled context."""
    # bypass_csp: only so Playwright may evaluate its waits; the app runs under its policy
    context = browser.new_context(viewport=PHONE, locale="zh-CN", bypass_csp=True)
    page = context.new_page()
    before = proxy.stats.bytes_down
    page.goto(f"{proxy.url}/app/")
    ready(page, "enrol")
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
    page.evaluate("navigator.serviceWorker.ready")
    page.wait_for_load_state("networkidle")
    shell = proxy.stats.bytes_down - before
    page.fill("#code", world["enrolment_code"])
    page.click("#enrol")
    ready(page, "village")
    page.wait_for_load_state("networkidle")
    enrol = proxy.stats.bytes_down - before - shell
    households = page.locator("#households > li").count()
    return {"shell_bytes": shell, "enrol_bytes": enrol, "households": households}, context


def offline_starts(context, runs: int) -> list[float]:
    """Milliseconds from navigation to the village screen, offline, CPU slowed 4×."""
    page = context.pages[0]
    cdp = context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
    context.set_offline(True)
    times = []
    for _ in range(runs):
        page.reload()
        ready(page, "village")
        mark = page.evaluate("performance.getEntriesByName('sipang-ready')[0]?.startTime")
        times.append(round(mark, 1))
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    context.set_offline(False)
    return times


def enrolled_profile(playwright, site: str, code: str, folder: Path) -> Path:
    """A Chromium profile whose app is enrolled and synced, for Lighthouse's in-app screens."""
    context = playwright.chromium.launch_persistent_context(
        str(folder),
        executable_path=shutil.which("chromium"),
        args=CHROMIUM_ARGS,
        viewport=PHONE,
        locale="zh-CN",
        bypass_csp=True,
    )
    page = context.pages[0] if context.pages else context.new_page()
    page.goto(f"{site}/app/")
    ready(page, "enrol")
    page.fill("#code", code)
    page.click("#enrol")
    ready(page, "village")
    page.wait_for_load_state("networkidle")
    context.close()
    return folder


def lighthouse(url: str, workdir: Path, profile: Path | None = None) -> dict[str, int]:
    """Lighthouse's category scores (0–100) for one page, mobile defaults; with `profile`,
    in that Chromium profile with its storage kept (an enrolled phone's app screens)."""
    if not LIGHTHOUSE.exists():
        raise SystemExit("Lighthouse is not installed: run `make bench-tools` first")
    out = workdir / "lighthouse.json"
    flags = " ".join(
        ["--headless=new", *CHROMIUM_ARGS, *([f"--user-data-dir={profile}"] if profile else [])]
    )
    subprocess.run(  # noqa: S603 - our own programs, no shell
        [
            str(LIGHTHOUSE),
            url,
            "--quiet",
            f"--chrome-flags={flags}",
            *(["--disable-storage-reset"] if profile else []),
            f"--only-categories={','.join(CATEGORIES)}",
            "--output=json",
            f"--output-path={out}",
        ],
        check=True,
        env={**os.environ, "CHROME_PATH": shutil.which("chromium") or "chromium"},
        timeout=300,
    )
    report = json.loads(out.read_text())
    scores = {name: round(report["categories"][name]["score"] * 100) for name in CATEGORIES}
    audits = report["audits"]
    scores["failing"] = sorted(
        ref["id"]
        for name in CATEGORIES
        for ref in report["categories"][name]["auditRefs"]
        if ref["weight"]
        and (audits[ref["id"]].get("score") or 0) < 0.9
        and audits[ref["id"]].get("scoreDisplayMode") in ("binary", "numeric")
    )
    return scores


def screenshots(context, site: str, household: str, folder: Path) -> list[Path]:
    """Each screen at 360×740, the way a reviewer looks at them."""
    folder.mkdir(parents=True, exist_ok=True)
    page = context.new_page()
    page.goto(f"{site}/app/#/village")
    ready(page, "village")
    shots = []

    def shot(name: str, *, full: bool = False) -> None:
        path = folder / f"{len(shots) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=full)
        shots.append(path)

    shot("village")
    page.evaluate(f"location.hash = '#/household/{household}'")
    ready(page, "household")
    shot("household")
    page.evaluate(f"location.hash = '#/tree/new/{household}'")
    ready(page, "tree-new")
    page.fill("#species-search", "杉木")  # not 水杉
    page.check("input[name=position][value=road]")
    page.fill("#dbh", "18.4")
    page.fill("#height", "12.5")
    shot("tree-new")
    shot("tree-new-full", full=True)
    page.click("#save")
    page.wait_for_selector("#saved")
    page.evaluate(f"location.hash = '#/household/{household}'")
    ready(page, "household")
    page.click("#trees > li a.button")  # re-measure the first tree
    ready(page, "tree-measure")
    shot("tree-measure")
    page.evaluate("location.hash = '#/outbox'")
    ready(page, "outbox")
    shot("outbox")
    page.evaluate("location.hash = '#/map'")
    ready(page, "map")
    shot("map")
    page.evaluate("location.hash = '#/enrol'")
    ready(page, "enrol")
    shot("enrol")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.evaluate("location.hash = '#/village'")
    ready(page, "village")
    shot("village-en")
    page.click("#lang")
    page.goto(f"{site}/h/{household}")
    shot("household-public")
    shot("household-public-full", full=True)
    page.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: no Lighthouse, 2 starts")
    parser.add_argument("--screenshots", type=Path, help="write each screen's PNG into this folder")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="sipang-bench-pwa-"))
    instance = work / "instance"
    world = prepare(instance)
    with ServerProcess(instance) as server, WeakNetworkProxy(("127.0.0.1", server.port)) as proxy:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
            )
            loads, context = first_load(browser, proxy, world)
            starts = offline_starts(context, 2 if args.quick else 7)
            shots = (
                screenshots(context, proxy.url, world["household"], args.screenshots)
                if args.screenshots
                else []
            )
            browser.close()
            profile = None
            if not args.quick:
                profile = enrolled_profile(
                    playwright, server.url, world["second_code"], work / "profile"
                )
        scores = {}
        if not args.quick:
            scores["app"] = lighthouse(f"{server.url}/app/", work)
            scores["household"] = lighthouse(f"{server.url}/h/{world['household']}", work)
            scores["village map"] = lighthouse(f"{server.url}/app/#/map", work, profile)

    offline_ms = statistics.median(starts)
    print("PWA (measurer app), demo county, Debian Chromium")
    print(
        f"{'first load, shell (compressed, on the wire)':<46} {loads['shell_bytes'] / 1024:8.1f} KB"
    )
    print(
        f"{'enrolling adds (method + ' + str(loads['households']) + ' households)':<46} "
        f"{loads['enrol_bytes'] / 1024:8.1f} KB"
    )
    print(f"{'offline start, CPU 4× slower (median)':<46} {offline_ms:8.0f} ms   {starts}")
    for page_name, page_scores in scores.items():
        line = "  ".join(f"{k} {page_scores[k]}" for k in CATEGORIES)
        print(f"{'Lighthouse ' + page_name:<46} {line}")
        if page_scores["failing"]:
            print(f"{'':<46} below 0.9: {', '.join(page_scores['failing'])}")
    for path in shots:
        print(f"screenshot {path}")
    figures = {
        "first_load_kb": round(loads["shell_bytes"] / 1024, 1),
        "enrol_kb": round(loads["enrol_bytes"] / 1024, 1),
        "offline_start_ms": round(offline_ms),
        "lighthouse_performance": min((s["performance"] for s in scores.values()), default=None),
        "lighthouse_accessibility": min(
            (s["accessibility"] for s in scores.values()), default=None
        ),
        "lighthouse_best_practices": min(
            (s["best-practices"] for s in scores.values()), default=None
        ),
        "lighthouse": scores,
        "quick": args.quick,
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
