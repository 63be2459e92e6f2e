"""Pacing shared by every worker process and machine: one sliding window per remote account.

The window lives in Redis as a sorted set of send times, checked and updated by one Lua script
using Redis's own clock, so workers on different machines agree. Waiting happens here, in the
thread that wants to send, so it never counts as a failed attempt of the message.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import redis

_SCRIPT = """
local key, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def account_key(namespace: str, kind: str, token: str) -> str:
    """The limiter's key names the account by a hash of its token, never the token itself."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"{namespace}:ratelimit:{kind}:{digest}"


class RedisWindowLimiter:
    def __init__(
        self, client: redis.Redis, key: str, limit: int, window: float, *, margin: float = 0.05
    ) -> None:
        self.limit = limit
        self.window = window * (1 + margin)
        self._key = key
        self._script = client.register_script(_SCRIPT)

    def acquire(self) -> None:
        while True:
            wait = float(
                self._script(keys=[self._key], args=[self.window, self.limit, uuid.uuid4().hex])
            )
            if wait <= 0:
                return
            time.sleep(min(wait, 5.0) + 0.005)
