"""Retrying the reference client's sync: full-jitter backoff that honours Retry-After."""

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from sync.connection import TransientError


class Syncing(Protocol):
    """What the scheduler drives (sync.client.SyncClient): one sync round, its status."""

    def sync(self) -> dict[str, Any]: ...


class SyncScheduler:
    """Retry `sync` with full-jitter backoff (2 s → 5 min), honouring Retry-After."""

    def __init__(
        self,
        client: Syncing,
        *,
        base: float = 2.0,
        cap: float = 300.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client, self.base, self.cap = client, base, cap
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.failures = 0

    def delay(self, retry_after: float | None = None) -> float:
        """The wait before the next attempt after `self.failures` failures in a row."""
        ceiling = min(self.cap, self.base * 2 ** max(self.failures - 1, 0))
        wait = self.rng.uniform(0, ceiling)
        return max(wait, retry_after or 0)

    def run(self, attempts: int = 50) -> dict[str, Any]:
        """Sync until everything is settled or `attempts` run out (then TransientError)."""
        last_error: TransientError | None = None
        for attempt in range(1, attempts + 1):
            try:
                status = self.client.sync()
            except TransientError as error:
                last_error = error
                self.failures += 1
                if attempt < attempts:  # no wait after the last attempt: give up at once
                    self.sleep(self.delay(error.retry_after))
                continue
            self.failures = 0
            if status["pending"] == 0 and status["photos_pending"] == 0:
                return status
        raise last_error or TransientError("gave up")
