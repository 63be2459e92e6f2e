"""Client-side pacing, so a long sync never trips a vendor's rate limit.

A sliding log (not a token bucket) guarantees at most `limit` requests in *any* window of
`window` seconds, which is how Moneybird counts. The limiter interface is one method so the
daemon can swap in a Redis-backed limiter shared by all workers.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Protocol

#: seconds our window is kept longer than the server's, so a request sent just as a slot frees
#: here does not reach the server before it frees there (the server's clock sees arrivals, whose
#: latencies spread); a share of the window instead would idle 15 s of every Moneybird 5 minutes
MARGIN = 0.25


class Limiter(Protocol):
    def acquire(self) -> None:
        """Block until one more request may be sent."""

    def pause(self, seconds: float) -> None:
        """The server says the budget is spent (`RateLimit-Remaining: 0`, a 429 with
        `Retry-After`): send nothing for `seconds`, in every thread and process sharing it."""

    def free_in(self) -> float:
        """Seconds until `acquire` would let a request go (0: now)."""


class Unlimited:
    def acquire(self) -> None:
        return None

    def free_in(self) -> float:
        return 0.0

    def pause(self, seconds: float) -> None:
        return None


class SlidingWindowLimiter:
    def __init__(self, limit: int, window: float, *, margin: float = MARGIN) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window + margin
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._prune()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                wait = self.window - (now - self._sent[0])
            time.sleep(max(wait, 0.001))

    def free_in(self) -> float:
        with self._lock:
            now = self._prune()
            if len(self._sent) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - self._sent[0]))

    def _prune(self) -> float:
        """Forget the sends that left the window (under the lock); answers now."""
        now = time.monotonic()
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        return now

    def pause(self, seconds: float) -> None:
        """Hold every slot until the server's reset time (never shortening a longer hold)."""
        with self._lock:
            filler = time.monotonic() + min(seconds, self.window) - self.window
            if not self._sent or self._sent[0] < filler:
                self._sent = collections.deque([filler] * self.limit)
