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

#: the most the window is padded by: enough for the spread of request latencies, which is what
#: the server's clock sees; 5 % of Moneybird's 5 minutes would idle 15 s of every window
MAX_MARGIN = 0.25


def padded(window: float, margin: float) -> float:
    """The window we keep: `margin` (a fraction) longer, by at most `MAX_MARGIN` seconds, so a
    request sent just as a slot frees does not reach the server before it frees there."""
    return window + min(window * margin, MAX_MARGIN)


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
    def __init__(self, limit: int, window: float, *, margin: float = 0.05) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = padded(window, margin)
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                wait = self.window - (now - self._sent[0])
            time.sleep(max(wait, 0.001))

    def free_in(self) -> float:
        with self._lock:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= self.window:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - self._sent[0]))

    def pause(self, seconds: float) -> None:
        """Hold every slot until the server's reset time (never shortening a longer hold)."""
        with self._lock:
            filler = time.monotonic() + min(seconds, self.window) - self.window
            if not self._sent or self._sent[0] < filler:
                self._sent = collections.deque([filler] * self.limit)
