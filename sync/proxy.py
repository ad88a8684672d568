"""A weak-network TCP proxy: 2G-like bandwidth, latency and jitter, and injected faults."""

import asyncio
import copy
import json
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus

from sync.profiles import (
    ERROR_CODES,
    PROFILES,
    ConnectionStats,
    FaultSpec,
    Profile,
    ProxyStats,
    as_fault,
    default_faults,
    get_profile,
    parser,
    print_connection,
    profile_from_args,
)

__all__ = ["PROFILES", "FaultSpec", "Profile", "ProxyStats", "WeakNetworkProxy", "default_faults"]

BURST_S = 0.05  # a link may catch up this much idle time, so sleep overshoot does not add up
QUEUE_PIECES = 1024  # pieces in flight per direction (the link's "propagation" buffer)


class _Link:
    """One direction of the shared link: lets bytes through at a fixed rate."""

    def __init__(self) -> None:
        self.bytes_per_s = 0.0
        self._free_at = 0.0

    def piece_size(self) -> int:
        """How many bytes to send at once: about 20 ms of the link's time."""
        if not self.bytes_per_s:
            return 65_536
        return int(min(16_384, max(256, self.bytes_per_s / 50)))

    async def transmit(self, size: int) -> None:
        """Wait until `size` bytes have gone over the link."""
        if not self.bytes_per_s:
            return
        now = asyncio.get_running_loop().time()
        self._free_at = max(self._free_at, now - BURST_S) + size / self.bytes_per_s
        if self._free_at > now:
            await asyncio.sleep(self._free_at - now)


class _Connection:
    """Both sides of one proxied connection and its counters."""

    def __init__(self, proxy: "WeakNetworkProxy", stats: ConnectionStats, fault: FaultSpec):
        self.proxy, self.stats, self.fault = proxy, stats, fault
        self.writers: list[asyncio.StreamWriter] = []

    def count(self, direction: str, size: int, dropped: bool = False) -> None:
        """Add bytes to this connection's counters."""
        with self.proxy._lock:
            if dropped:
                self.stats.bytes_dropped += size
            elif direction == "up":
                self.stats.bytes_up += size
            else:
                self.stats.bytes_down += size

    def record(self, fault: str) -> None:
        """Note a fault injected on this connection."""
        with self.proxy._lock:
            self.stats.faults.append(fault)

    def close(self, abort: bool = False) -> None:
        """Close both sides now (abort: without flushing)."""
        for writer in self.writers:
            if abort:
                writer.transport.abort()
            else:
                writer.close()


class _Pump:
    """Forwards one direction: read, cut or stall, pace over the link, delay, write."""

    def __init__(self, conn: _Connection, direction: str, rng: random.Random) -> None:
        self.conn, self.direction, self.rng = conn, direction, rng
        self.fault = conn.fault
        self.queue: asyncio.Queue[tuple[float, bytes | str]] = asyncio.Queue(QUEUE_PIECES)
        self.position = 0
        self.last_arrival = 0.0
        self.cut_at = self.fault.cut_after if self.fault.cut_direction == direction else None
        stalls = self.fault.stall_s > 0 and self.fault.stall_direction == direction
        self.stall_at = self.fault.stall_after if stalls else None

    async def run(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Forward until EOF, a fault or an error."""
        feeder = asyncio.create_task(self.feed(src))
        try:
            await self.deliver(dst)
        finally:
            feeder.cancel()

    def cut_due(self) -> bool:
        """Whether the cut point of this direction has been reached."""
        return self.cut_at is not None and self.position >= self.cut_at

    def pieces(self, data: bytes, size: int) -> Iterable[bytes]:
        """Split data into pieces of at most `size` that end on every stop."""
        start, stops = 0, [s for s in (self.cut_at, self.stall_at) if s is not None]
        while start < len(data):
            end = min(len(data), start + size)
            for stop in stops:
                if self.position + start < stop < self.position + end:
                    end = stop - self.position
            yield data[start:end]
            start = end

    def arrival(self) -> float:
        """When a piece sent now reaches the far side, never before the previous one."""
        profile = self.conn.proxy.profile
        delay = profile.latency_ms / 2000 + self.rng.uniform(0, profile.jitter_ms) / 1000
        now = asyncio.get_running_loop().time()
        self.last_arrival = max(self.last_arrival, now + delay)
        return self.last_arrival

    async def stall_if_due(self) -> None:
        """Stop forwarding for the stall's length once its byte position is reached."""
        if self.stall_at is not None and self.position >= self.stall_at:
            self.stall_at = None
            self.conn.record(f"stall_{self.direction}")
            await asyncio.sleep(self.fault.stall_s)

    async def feed(self, src: asyncio.StreamReader) -> None:
        """Read from the source and queue paced pieces, then an end marker."""
        try:
            end = await self.forward(src, self.conn.proxy._links[self.direction])
        except (OSError, asyncio.IncompleteReadError):
            end = "close"
        await self.queue.put((self.arrival(), end))

    async def forward(self, src: asyncio.StreamReader, link: _Link) -> str:
        """Queue pieces until EOF ("eof") or an injected cut or drop ("close")."""
        while not self.cut_due():
            data = await src.read(65_536)
            if not data:
                return "eof"
            if self.direction == "down" and self.fault.drop_response:
                self.conn.count("down", len(data), dropped=True)
                self.conn.record("drop_response")
                return "close"
            for piece in self.pieces(data, link.piece_size()):
                await self.stall_if_due()
                await link.transmit(len(piece))
                await self.queue.put((self.arrival(), piece))
                self.position += len(piece)
                if self.cut_due():
                    break
        self.conn.record(f"cut_{self.direction}")
        return "close"

    async def deliver(self, dst: asyncio.StreamWriter) -> None:
        """Write queued pieces when they arrive; close both sides on a fault or error."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                arrival, item = await self.queue.get()
                await asyncio.sleep(max(0.0, arrival - loop.time()))
                if item == "eof":
                    if dst.can_write_eof() and not dst.is_closing():
                        dst.write_eof()
                    return
                if item == "close":
                    return self.conn.close()
                self.conn.count(self.direction, len(item))
                dst.write(item)
                await dst.drain()
        except OSError:
            self.conn.close()


class WeakNetworkProxy:
    """A TCP proxy on loopback with its own event loop thread; use it as a context manager."""

    def __init__(
        self,
        target: tuple[str, int],
        profile: str | Profile = "none",
        seed: int = 0,
        schedule: Iterable[FaultSpec | dict | None] = (),
        listen: tuple[str, int] = ("127.0.0.1", 0),
        on_close: Callable[[ConnectionStats], None] | None = None,
    ) -> None:
        self.target, self.listen, self.seed, self.on_close = target, listen, seed, on_close
        self.profile = get_profile(profile)
        self.port = 0
        self._schedule = [as_fault(s) for s in schedule]
        self._links = {"up": _Link(), "down": _Link()}
        self._apply_profile(self.profile)
        self._lock = threading.Lock()
        self._connections: list[ConnectionStats] = []
        self._tasks: set[asyncio.Task] = set()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The proxy's base URL, e.g. http://127.0.0.1:41234."""
        return f"http://{self.listen[0]}:{self.port}"

    @property
    def stats(self) -> ProxyStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return ProxyStats.of(self._connections)

    def set_schedule(self, schedule: Iterable[FaultSpec | dict | None]) -> None:
        """Replace the faults for the next connections (one entry each, in order)."""
        with self._lock:
            self._schedule = [as_fault(s) for s in schedule]

    def set_profile(self, profile: str | Profile) -> None:
        """Switch the network profile; rates change at once, for open connections too."""
        profile = get_profile(profile)
        if self._loop is None:
            return self._apply_profile(profile)
        self._loop.call_soon_threadsafe(self._apply_profile, profile)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every accepted connection has been closed."""
        deadline = time.monotonic() + timeout
        while any(c.open for c in self.stats.per_connection):
            if time.monotonic() > deadline:
                raise TimeoutError("proxy connections still open")
            time.sleep(0.01)

    def start(self) -> "WeakNetworkProxy":
        """Start listening in a background thread."""
        self._thread = threading.Thread(target=self._run, name="weak-network-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the thread."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> "WeakNetworkProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _apply_profile(self, profile: Profile) -> None:
        self.profile = profile
        self._links["down"].bytes_per_s = profile.down_kbps * 125
        self._links["up"].bytes_per_s = profile.up_kbps * 125

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()
        finally:
            self._loop = None

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, *self.listen)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    def _next_connection(self) -> tuple[ConnectionStats, FaultSpec]:
        with self._lock:
            stats = ConnectionStats(len(self._connections) + 1)
            self._connections.append(stats)
            scheduled = self._schedule.pop(0) if self._schedule else None
        return stats, scheduled or default_faults(self.profile, self.seed, stats.number)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats, fault = self._next_connection()
        conn = _Connection(self, stats, fault)
        conn.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._proxy(conn, reader, writer)
        except (
            OSError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as error:
            stats.error = type(error).__name__
        except asyncio.CancelledError:  # stop(): end quietly, or start_server logs an error
            conn.close(abort=True)
        finally:
            self._tasks.discard(task)
            conn.close()
            with self._lock:
                stats.open = False
            if self.on_close is not None:
                self.on_close(copy.deepcopy(stats))

    async def _proxy(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        fault, number = conn.fault, conn.stats.number
        if fault.refuse:
            conn.record("refuse")
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return writer.transport.abort()
        down = _Pump(conn, "down", random.Random(f"{self.seed}:{number}:down"))
        if fault.status:
            conn.record(f"status_{fault.status}")
            return await down.run(await _injected_answer(reader, fault), writer)
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        conn.writers.append(server_writer)
        up = _Pump(conn, "up", random.Random(f"{self.seed}:{number}:up"))
        await asyncio.gather(up.run(reader, server_writer), down.run(server_reader, writer))


async def _injected_answer(reader: asyncio.StreamReader, fault: FaultSpec) -> asyncio.StreamReader:
    """Read one HTTP request (head and Content-Length body) and make the injected response."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await asyncio.wait_for(reader.readexactly(int(value.strip())), 30)
    status = HTTPStatus(fault.status)
    code = ERROR_CODES.get(status.value, "injected")
    error = {
        "status": status.value,
        "code": code,
        "message": f"{status.phrase} (weak-network proxy)",
    }
    body = json.dumps({"error": error}).encode()
    headers = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if status.value in (429, 503):
        headers.append(f"Retry-After: {fault.retry_after}")
    response = asyncio.StreamReader()
    response.feed_data(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
    response.feed_eof()
    return response


def main(argv: list[str] | None = None) -> None:
    """Run the proxy until Ctrl-C."""
    args = parser().parse_args(argv)
    profile = profile_from_args(args)
    proxy = WeakNetworkProxy(
        args.target, profile, seed=args.seed, listen=args.listen, on_close=print_connection
    )
    with proxy:
        print(f"{profile.name}: {proxy.url} -> {args.target[0]}:{args.target[1]}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
