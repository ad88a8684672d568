"""The sync protocol's messages: operations a phone pushes and the results it gets back."""

import re
from dataclasses import asdict, dataclass
from typing import Any

MAX_BATCH_OPS = 100
KINDS = ("tree.register", "tree.measure", "tree.status")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Operation:
    """One immutable change made on a phone: a tree registered, measured or marked."""

    op_id: str
    device_seq: int
    record_id: str
    kind: str
    payload: dict[str, Any]
    client_time: str
    base_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Batch:
    device_id: str
    sent_at: str | None
    operations: list[Operation]


class BatchError(ValueError):
    """A batch that cannot be read at all (as opposed to one operation being rejected)."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
        self.problems = problems


def _operation(index: int, raw: Any, problems: list[dict[str, str]]) -> Operation | None:
    where = f"ops/{index}"
    if not isinstance(raw, dict):
        problems.append({"field": where, "problem": "an operation is an object"})
        return None
    checks = [
        ("op_id", isinstance(raw.get("op_id"), str) and bool(_UUID.match(raw["op_id"])), "a UUID"),
        (
            "device_seq",
            type(raw.get("device_seq")) is int and 1 <= raw["device_seq"] < 2**53,
            "a whole number from 1",
        ),
        (
            "record_id",
            isinstance(raw.get("record_id"), str) and 0 < len(raw["record_id"]) <= 40,
            "the id of the record changed",
        ),
        ("kind", raw.get("kind") in KINDS, f"one of {', '.join(KINDS)}"),
        ("payload", isinstance(raw.get("payload"), dict), "an object"),
        (
            "client_time",
            isinstance(raw.get("client_time"), str) and 0 < len(raw["client_time"]) <= 40,
            "an ISO-8601 time with its zone",
        ),
        (
            "base_version",
            raw.get("base_version") is None
            or (type(raw["base_version"]) is int and raw["base_version"] >= 0),
            "null or a version",
        ),
    ]
    bad = [
        {"field": f"{where}/{name}", "problem": f"must be {text}"}
        for name, ok, text in checks
        if not ok
    ]
    extra = set(raw) - {
        "op_id",
        "device_seq",
        "record_id",
        "kind",
        "payload",
        "client_time",
        "base_version",
    }
    bad += [
        {"field": f"{where}/{name}", "problem": "is not part of an operation"}
        for name in sorted(extra)
    ]
    if bad:
        problems.extend(bad)
        return None
    return Operation(
        raw["op_id"],
        raw["device_seq"],
        raw["record_id"],
        raw["kind"],
        raw["payload"],
        raw["client_time"],
        raw.get("base_version"),
    )


def parse_batch(body: Any) -> Batch:
    """Read a pushed batch; BatchError names every problem (nothing is applied then)."""
    if not isinstance(body, dict):
        raise BatchError([{"field": "(body)", "problem": "a batch is a JSON object"}])
    problems: list[dict[str, str]] = []
    ops = body.get("ops")
    if not isinstance(body.get("device_id"), str):
        problems.append({"field": "device_id", "problem": "must be the device's id"})
    if not isinstance(ops, list) or not 1 <= len(ops) <= MAX_BATCH_OPS:
        problems.append({"field": "ops", "problem": f"a list of 1–{MAX_BATCH_OPS} operations"})
        ops = []
    if body.get("sent_at") is not None and not isinstance(body["sent_at"], str):
        problems.append({"field": "sent_at", "problem": "the phone's clock as an ISO-8601 time"})
    operations = [op for i, raw in enumerate(ops) if (op := _operation(i, raw, problems))]
    ids = [op.op_id for op in operations]
    if len(set(ids)) != len(ids):
        problems.append({"field": "ops", "problem": "an op_id appears twice in the batch"})
    seqs = [op.device_seq for op in operations]
    if len(set(seqs)) != len(seqs):
        problems.append({"field": "ops", "problem": "a device_seq appears twice in the batch"})
    if problems:
        raise BatchError(problems)
    return Batch(body["device_id"], body.get("sent_at"), operations)
