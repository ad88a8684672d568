"""Benchmark: the public and staff read routes through the production stack.

Starts Debian's nginx with deploy/nginx.conf (micro-cache included) in front of `--workers`
gunicorn processes with deploy/gunicorn.conf.py (several share a Debian redis-server, as a
county's do), on a fresh instance: the seeded test county, a published bundle of one grown
village and a sold certificate. Then two runs, each bounded in time:

- closed loop: N clients on keep-alive connections, each sending its next request as soon as
  the last is answered (no think time);
- open loop: U users on their own connections, each sending one request a second at a fixed
  phase; latency counts from the moment the request was due, so a late server is not hidden.

Each request takes the next route of the mix: villages, species, a door plate, a village page,
the bundle page, a certificate's verify page (public, no cookie) and the bureau's dashboard
API (staff, with its token: never cached). Prints p50/p95/p99 per route and in all,
throughput, errors, the CPU each stack part spent per request and the load generator's own
share of the machine. Nothing passes or fails on time.

    .venv/bin/python bench/api.py [--quick] [--workers N] [--clients N] [--users N]
                                  [--seconds S] [--no-cache] [--profile]
"""

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import site_processes as site  # noqa: E402

STAFF = "dashboard (staff)"
GRACE_SECONDS = 10  # open loop: answers still owed this long after the run count as lost


def prepare(instance: Path) -> dict[str, str]:
    """The seeded county, a published bundle and a certificate; returns the route mix."""
    from server import create_app
    from server.db import get_db
    from server.registry import orders as order_service
    from tests import registry_world as rw
    from tests.conftest import seed

    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        world = seed(db)
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=10, trees_per_household=12
        )
        sold = rw.order(db, bundle["id"], beneficiary="李小明")
        order_service.confirm_payment(db, sold, "bank", "BENCH-0001", "user:1")
        cert = db.execute("SELECT id FROM certificates").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {
        "villages": "/api/v1/villages",
        "species": "/api/v1/species",
        "plate": f"/h/{world.household_a}",
        "village page": f"/v/{world.village_a}",
        "bundle page": f"/bundles/{bundle['id']}",
        "verify page": f"/verify/{cert}",
        STAFF: "/api/v1/dashboard",
        "_token": world.tokens["bureau"],
    }


class Stack:
    """nginx in front of `workers` gunicorn processes (and Redis when there are several)."""

    def __init__(self, folder: Path, instance: Path, workers: int, cache: bool):
        self.folder, self.processes = folder, []
        redis_port, self.port, *ports = site.free_ports(2 + workers)
        shared = {}
        if workers > 1:
            self.processes.append(site.start_redis(folder / "redis", redis_port))
            url = f"redis://127.0.0.1:{redis_port}/0"
            shared = {"SOCKETIO_MESSAGE_QUEUE": url, "RATELIMIT_STORAGE_URI": url}
        # THREADS becomes SIPANG_THREADS, which deploy/gunicorn.conf.py reads (its default)
        self.apps = [
            site.start_gunicorn(instance, port, PROXY_HOPS="1", THREADS="32", **shared)
            for port in ports
        ]
        self.processes += self.apps
        config = site.nginx_config(folder, self.port, ports)
        config = config.replace(
            "events { worker_connections 1024; }",
            "worker_rlimit_nofile 20000;\nevents { worker_connections 8192; }",
        )
        if not cache:
            config = "\n".join(
                line
                for line in config.splitlines()
                if line.strip().startswith("proxy_cache_path")
                or not line.strip().startswith(("proxy_cache", "proxy_no_cache", "proxy_ignore"))
            )
        for name in site.TEMP_PATHS:
            (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / "nginx.conf").write_text(config)
        import subprocess

        self.nginx = subprocess.Popen(  # noqa: S603 - Debian's nginx
            [site.NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(self.nginx)
        for port, app in zip(ports, self.apps, strict=True):
            site.wait_for(port, app)
        site.wait_for(self.port, self.nginx)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the app processes (workers included) and by nginx."""
        tick = os.sysconf("SC_CLK_TCK")

        def tree(pid: int) -> float:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                own = (int(fields[11]) + int(fields[12])) / tick
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                return 0.0
            return own + sum(tree(int(child)) for child in children)

        return {
            "app": sum(tree(app.pid) for app in self.apps),
            "nginx": tree(self.nginx.pid),
        }

    def stop(self) -> None:
        site.stop(*self.processes)


async def fetch(connection: list, port: int, path: str, headers: bytes) -> int:
    """One GET on the connection's keep-alive socket (opened again when closed); the status."""
    if connection[0] is None:
        connection[:] = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = connection
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n" + headers + b"\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    if fields.get("connection") == "close":
        writer.close()
        connection[:] = [None, None]
    return status


class Recorder:
    def __init__(self, mix: dict[str, str]):
        self.routes = [name for name in mix if not name.startswith("_")]
        self.latencies: dict[str, list[float]] = {name: [] for name in self.routes}
        self.errors: dict[str, int] = dict.fromkeys(self.routes, 0)
        self.statuses: dict[int, int] = {}  # what the errors were (0: the connection failed)
        self.dropped = 0  # open loop: still unanswered GRACE_SECONDS after the run
        token = mix["_token"].encode()
        self.headers = {
            name: b"Accept-Encoding: gzip, br\r\n"
            + (b"Authorization: Bearer " + token + b"\r\n" if name == STAFF else b"")
            for name in self.routes
        }

    async def one(self, connection, port, mix, name: str, due: float) -> None:
        try:
            status = await fetch(connection, port, mix[name], self.headers[name])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            connection[:] = [None, None]
            status = 0
        if status == 200:
            self.latencies[name].append(time.perf_counter() - due)
        else:
            self.errors[name] += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1


async def closed_loop(port: int, mix: dict, clients: int, seconds: float) -> Recorder:
    recorder = Recorder(mix)
    stop_at = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        connection = [None, None]
        turn = offset
        while time.perf_counter() < stop_at:
            name = recorder.routes[turn % len(recorder.routes)]
            turn += 1
            await recorder.one(connection, port, mix, name, time.perf_counter())

    await asyncio.gather(*(client(n) for n in range(clients)))
    return recorder


async def open_loop(port: int, mix: dict, users: int, seconds: float) -> Recorder:
    """Each user's requests fall due once a second whatever the server does: a request due
    while the user's last is unanswered goes on another connection (as a browser opens one)."""
    recorder = Recorder(mix)
    began = time.perf_counter() + 0.5
    idle: list[list] = []  # keep-alive connections not in use
    pending: set[asyncio.Task] = set()

    async def send(name: str, due: float) -> None:
        connection = idle.pop() if idle else [None, None]
        await recorder.one(connection, port, mix, name, due)
        if connection[0] is not None:
            idle.append(connection)

    async def user(offset: int) -> None:
        due = began + random.random()  # noqa: S311 - a phase, not a secret
        turn = offset
        while due < began + seconds:
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(send(recorder.routes[turn % len(recorder.routes)], due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            turn += 1
            due += 1.0

    await asyncio.gather(*(user(n) for n in range(users)))
    if pending:  # answers still owed after the run: wait a while, then count them lost
        _, late = await asyncio.wait(set(pending), timeout=GRACE_SECONDS)
        for task in late:
            task.cancel()
        recorder.dropped = len(late)
    return recorder


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] * 1000


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def measure(stack: Stack, mix: dict, label: str, run) -> dict:
    """Run one load, print its table, return its figures."""
    cpu_before, usage, busy_before = stack.cpu_seconds(), resource.getrusage(0), machine_busy()
    began = time.perf_counter()
    recorder = asyncio.run(run)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(0)
    cpu_after, busy_after = stack.cpu_seconds(), machine_busy()
    generator = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    cores = os.cpu_count() or 1
    done = sum(len(v) for v in recorder.latencies.values())
    errors = sum(recorder.errors.values())
    public = [x for name, v in recorder.latencies.items() if name != STAFF for x in v]
    print(
        f"\n{label}: {done / elapsed:.0f} req/s, {errors} errors, "
        f"{recorder.dropped} unanswered {GRACE_SECONDS} s after the run, {elapsed:.1f} s"
    )
    print(f"{'route':<20} {'n':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    rows = [*recorder.latencies.items(), ("all public", public)]
    for name, values in rows:
        if values:
            print(
                f"{name:<20} {len(values):>7} {percentile(values, 50):>8.1f} "
                f"{percentile(values, 95):>8.1f} {percentile(values, 99):>8.1f} "
                f"{recorder.errors.get(name, 0):>7}"
            )
    if recorder.statuses:
        kinds = ", ".join(
            f"{n} × {status or 'no answer'}" for status, n in recorder.statuses.items()
        )
        print(f"errors: {kinds}")
    app_ms = (cpu_after["app"] - cpu_before["app"]) / max(1, done) * 1000
    nginx_ms = (cpu_after["nginx"] - cpu_before["nginx"]) / max(1, done) * 1000
    share = generator / (elapsed * cores)
    print(
        f"CPU per request: app {app_ms:.2f} ms, nginx {nginx_ms:.2f} ms; load generator "
        f"{share:.0%} of the machine ({cores} cores), machine {busy:.0%} busy in all"
    )
    return {
        "req_per_s": round(done / elapsed, 1),
        "errors": errors,
        "dropped": recorder.dropped,
        "public_p50_ms": round(percentile(public, 50), 1) if public else None,
        "public_p95_ms": round(percentile(public, 95), 1) if public else None,
        "public_p99_ms": round(percentile(public, 99), 1) if public else None,
        "staff_p95_ms": round(percentile(recorder.latencies[STAFF], 95), 1)
        if recorder.latencies[STAFF]
        else None,
        "app_cpu_ms_per_req": round(app_ms, 2),
        "generator_share": round(share, 2),
        "machine_busy": round(busy, 2),
    }


def profile(instance: Path, mix: dict) -> None:
    """cProfile of each route served in-process (the app's own CPU, without the network)."""
    import cProfile
    import pstats

    from server import create_app

    app = create_app({"INSTANCE_PATH": str(instance)})
    client = app.test_client()
    for name in [n for n in mix if not n.startswith("_")]:
        headers = {"Accept-Encoding": "gzip, br"}
        if name == STAFF:
            headers["Authorization"] = f"Bearer {mix['_token']}"
        client.get(mix[name], headers=headers)  # warm
        profiler = cProfile.Profile()
        began = time.process_time()
        profiler.enable()
        for _ in range(50):
            client.get(mix[name], headers=headers)
        profiler.disable()
        print(f"\n{name}: {(time.process_time() - began) / 50 * 1000:.1f} ms CPU per request")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn processes (default 1)")
    parser.add_argument("--clients", type=int, help="closed-loop clients (default 200)")
    parser.add_argument("--users", type=int, help="open-loop users at 1 request/s (default 1000)")
    parser.add_argument("--seconds", type=float, help="length of each run (default 20)")
    parser.add_argument("--no-cache", action="store_true", help="nginx without its micro-cache")
    parser.add_argument("--profile", action="store_true", help="also profile each route")
    args = parser.parse_args()
    _, most = resource.getrlimit(resource.RLIMIT_NOFILE)  # an open loop may need thousands of
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))  # connections when it falls behind
    clients = args.clients or (20 if args.quick else 200)
    users = args.users or (50 if args.quick else 1000)
    seconds = args.seconds or (3 if args.quick else 20)
    folder = Path(tempfile.mkdtemp(prefix="sipang-bench-api-"))
    try:
        instance = folder / "instance"
        mix = prepare(instance)
        if args.profile:
            profile(instance, mix)
        stack = Stack(folder, instance, args.workers, cache=not args.no_cache)
        try:
            asyncio.run(closed_loop(stack.port, mix, 10, 1.0))  # warm every process
            label = (
                f"{args.workers} worker(s), nginx {'without' if args.no_cache else 'with'} cache"
            )
            closed = measure(
                stack,
                mix,
                f"closed loop, {clients} clients ({label})",
                closed_loop(stack.port, mix, clients, seconds),
            )
            opened = measure(
                stack,
                mix,
                f"open loop, {users} users × 1 request/s ({label})",
                open_loop(stack.port, mix, users, seconds),
            )
        finally:
            stack.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        json.dumps(
            {
                "workers": args.workers,
                "cache": not args.no_cache,
                "clients": clients,
                "users": users,
                "seconds": seconds,
                "closed": closed,
                "open": opened,
            }
        )
    )


if __name__ == "__main__":
    main()
