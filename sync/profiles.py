"""The weak networks the proxy plays (2G-like rates, latency, jitter, faults), its
counters, and its command line's options."""

import argparse
import copy
import random
from collections import Counter
from dataclasses import dataclass, field, replace

ERROR_CODES = {429: "rate_limited", 502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout"}


@dataclass(frozen=True)
class FaultSpec:
    """What goes wrong on one connection; the default is nothing."""

    cut_after: int | None = None  # close the connection once this many bytes went through...
    cut_direction: str = "down"  # ...this way: "down" (server to client) or "up"
    stall_s: float = 0.0  # stop forwarding this long...
    stall_after: int = 0  # ...once this many bytes went through...
    stall_direction: str = "down"  # ...this way
    drop_response: bool = False  # forward the request, read the response, close without it
    status: int | None = None  # answer 429/502/504 without connecting upstream
    retry_after: int = 5  # the Retry-After seconds sent with an injected 429 or 503
    refuse: bool = False  # reset the connection as soon as it is accepted


@dataclass(frozen=True)
class Profile:
    """A named network: rates in kbps (1000 bit/s, 0 = unlimited), delays, default faults."""

    name: str
    down_kbps: float = 0.0
    up_kbps: float = 0.0
    latency_ms: float = 0.0  # round trip; each direction adds half
    jitter_ms: float = 0.0  # up to this much extra one-way delay, drawn per piece
    cut_probability: float = 0.0  # chance that a connection is cut at a random byte
    cut_max_bytes: int = 16_384  # the random cut falls in 0..cut_max_bytes
    drop_response_every: int = 0  # every Nth connection drops its response (0 = never)
    status_every: int = 0  # every Nth connection is answered with `status` (0 = never)
    status: int = 429
    faults: FaultSpec = field(default_factory=FaultSpec)  # applied to every connection


PROFILES: dict[str, Profile] = {
    "none": Profile("none"),
    "gprs": Profile("gprs", down_kbps=50, up_kbps=20, latency_ms=500, jitter_ms=100),
    "edge": Profile("edge", down_kbps=240, up_kbps=200, latency_ms=840, jitter_ms=100),
    "3g-slow": Profile("3g-slow", down_kbps=400, up_kbps=400, latency_ms=400, jitter_ms=50),
    "lossy-2g": Profile(
        "lossy-2g",
        down_kbps=30,
        up_kbps=20,
        latency_ms=650,
        jitter_ms=200,
        cut_probability=0.2,
        cut_max_bytes=32_768,
    ),
}


@dataclass
class ConnectionStats:
    """Bytes and faults of one accepted connection."""

    number: int
    bytes_up: int = 0  # written to the server
    bytes_down: int = 0  # written to the client (injected answers included)
    bytes_dropped: int = 0  # read from the server and thrown away (drop_response)
    faults: list[str] = field(default_factory=list)
    error: str | None = None
    open: bool = True


@dataclass
class ProxyStats:
    """A snapshot of the counters: totals over all connections, and each connection."""

    connections: int
    bytes_up: int
    bytes_down: int
    bytes_dropped: int
    faults: Counter[str]
    per_connection: list[ConnectionStats]

    @classmethod
    def of(cls, connections: list[ConnectionStats]) -> "ProxyStats":
        """Totals of these connections (which are copied)."""
        return cls(
            connections=len(connections),
            bytes_up=sum(c.bytes_up for c in connections),
            bytes_down=sum(c.bytes_down for c in connections),
            bytes_dropped=sum(c.bytes_dropped for c in connections),
            faults=Counter(f for c in connections for f in c.faults),
            per_connection=copy.deepcopy(connections),
        )


def get_profile(profile: str | Profile) -> Profile:
    """A profile by name, or the profile given."""
    return PROFILES[profile] if isinstance(profile, str) else profile


def default_faults(profile: Profile, seed: int, number: int) -> FaultSpec:
    """The faults the profile gives connection `number`; the same for the same seed."""
    spec = profile.faults
    if profile.drop_response_every and number % profile.drop_response_every == 0:
        spec = replace(spec, drop_response=True)
    if profile.status_every and number % profile.status_every == 0:
        spec = replace(spec, status=profile.status)
    rng = random.Random(f"{seed}:{number}:faults")
    if rng.random() < profile.cut_probability:
        direction = rng.choice(("up", "down"))
        spec = replace(
            spec, cut_after=rng.randint(0, profile.cut_max_bytes), cut_direction=direction
        )
    return spec


def as_fault(spec: FaultSpec | dict | None) -> FaultSpec | None:
    """A schedule entry as a FaultSpec (None keeps the profile's behaviour)."""
    return FaultSpec(**spec) if isinstance(spec, dict) else spec


def _address(text: str) -> tuple[str, int]:
    """HOST:PORT as a tuple."""
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m sync.proxy`."""
    parser = argparse.ArgumentParser(
        prog="python -m sync.proxy",
        description="Forward TCP from --listen to --target through a weak network (bandwidth,"
        " latency, jitter, faults); print one line per closed connection. Ctrl-C stops it.",
    )
    rates = ", ".join(
        f"{p.name} {p.down_kbps:g}/{p.up_kbps:g} kbps {p.latency_ms:g} ms"
        for p in PROFILES.values()
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gprs", help=rates)
    parser.add_argument("--listen", type=_address, default="127.0.0.1:8001", metavar="HOST:PORT")
    parser.add_argument("--target", type=_address, default="127.0.0.1:5000", metavar="HOST:PORT")
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter and random cuts")
    add = parser.add_argument
    add("--cut-after", type=int, metavar="BYTES", help="close each connection after BYTES")
    add("--cut-direction", choices=("up", "down"), default="down", help="bytes counted this way")
    add("--stall", type=float, default=0.0, metavar="SECONDS", help="pause each connection")
    add("--stall-after", type=int, default=0, metavar="BYTES", help="pause after BYTES")
    add("--stall-direction", choices=("up", "down"), default="down", help="pause this way")
    add("--drop-response-every", type=int, default=0, metavar="N", help="drop every Nth response")
    add("--status-every", type=int, default=0, metavar="N", help="answer every Nth with --status")
    add("--status", type=int, choices=(429, 502, 503, 504), default=429, help="injected status")
    return parser


def profile_from_args(args: argparse.Namespace) -> Profile:
    """The named profile with the command line's faults added."""
    faults = FaultSpec(
        cut_after=args.cut_after,
        cut_direction=args.cut_direction,
        stall_s=args.stall,
        stall_after=args.stall_after,
        stall_direction=args.stall_direction,
    )
    return replace(
        PROFILES[args.profile],
        faults=faults,
        drop_response_every=args.drop_response_every,
        status_every=args.status_every,
        status=args.status,
    )


def print_connection(stats: ConnectionStats) -> None:
    """One line per closed connection."""
    faults = ",".join(stats.faults) or "-"
    print(
        f"#{stats.number} up {stats.bytes_up} B down {stats.bytes_down} B "
        f"dropped {stats.bytes_dropped} B faults {faults} error {stats.error or '-'}",
        flush=True,
    )
