"""Pacing shared by every process that talks to one remote account: one window in Redis.

The window lives in Redis as a sorted set of send times, checked and updated by one Lua script
using Redis's own clock, so workers on different machines agree. A server's "stop for N seconds"
(`RateLimit-Remaining: 0`, a 429's `Retry-After`) is a second key with that TTL, which the same
script honours, so one worker's 429 pauses them all. Waiting happens in the thread that wants to
send, so it never counts as a failed attempt of the message.

`sync --inline` uses the same window whenever Redis is reachable, so running it beside the daemon
never doubles the rate on one token; without Redis it paces itself alone (`shared_limiter`).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import redis

from connectors.ratelimit import MARGIN, Limiter, SlidingWindowLimiter
from workers.logs import get_logger

#: seconds until the window lets a request go (0: now); with a member (ARGV[3]), a free slot is
#: taken for it
_SCRIPT = """
local key, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then
  return tostring(paused / 1000)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  if member ~= '' then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
  end
  return '0'
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""

#: extend the pause key only if the new pause ends later than the one already set
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"""


def account_key(namespace: str, kind: str, token: str) -> str:
    """The limiter's key names the account by a hash of its token, never the token itself."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"{namespace}:ratelimit:{kind}:{digest}"


class RedisWindowLimiter:
    """One budget and one pause per account in Redis.

    With a `fallback`, a Redis that stops answering mid-run is logged once and the fallback
    (this process's own window) paces the rest; without one, the Redis error propagates (the
    daemon's message is then retried).
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        limit: int,
        window: float,
        *,
        margin: float = MARGIN,
        fallback: SlidingWindowLimiter | None = None,
    ) -> None:
        self.limit = limit
        self.window = window + margin
        self._keys = [key, f"{key}:paused"]
        self._script = client.register_script(_SCRIPT)
        self._pause = client.register_script(_PAUSE)
        self._fallback = fallback
        self._lost = threading.Event()

    def acquire(self) -> None:
        while not self._lost.is_set():
            try:
                wait = float(
                    self._script(keys=self._keys, args=[self.window, self.limit, uuid.uuid4().hex])
                )
            except redis.RedisError as exc:
                self._lose(exc)
                break
            if wait <= 0:
                return
            time.sleep(min(wait, 5.0) + 0.005)
        assert self._fallback is not None
        self._fallback.acquire()

    def free_in(self) -> float:
        if not self._lost.is_set():
            try:
                return max(
                    0.0, float(self._script(keys=self._keys, args=[self.window, self.limit, ""]))
                )
            except redis.RedisError as exc:
                self._lose(exc)
        assert self._fallback is not None
        return self._fallback.free_in()

    def pause(self, seconds: float) -> None:
        if self._fallback is not None:
            self._fallback.pause(seconds)
        if self._lost.is_set() or seconds <= 0:
            return
        try:
            self._pause(keys=self._keys[1:], args=[max(1, int(seconds * 1000))])
        except redis.RedisError as exc:
            self._lose(exc)

    def _lose(self, exc: redis.RedisError) -> None:
        if self._fallback is None:
            raise exc
        if not self._lost.is_set():
            self._lost.set()
            get_logger().warning(
                "Redis stopped answering: pacing this process alone from now on",
                error=type(exc).__name__,
            )


def shared_limiter(
    client: redis.Redis | None, namespace: str, kind: str, token: str, limit: int, window: float
) -> Limiter:
    """The account's Redis window when Redis answers, else this process's own window."""
    local = SlidingWindowLimiter(limit, window)
    if client is None:
        return local
    try:
        client.ping()
    except redis.RedisError as exc:
        get_logger().warning(
            "Redis is not reachable: pacing this process alone; a daemon running on the same "
            "token may push the account over its rate limit",
            error=type(exc).__name__,
        )
        return local
    key = account_key(namespace, kind, token)
    return RedisWindowLimiter(client, key, limit, window, fallback=local)
