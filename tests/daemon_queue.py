"""The daemon's actors called directly, without dramatiq: a stand-in queue that collects what the
daemon sends, and a daemon over real Redis under a namespace of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from workers.app import App
from workers.daemon import Daemon

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Batch = tuple[str, int, int, list[str], list[str | None], bool, str, dict[str, str] | None]


class Queue:
    """Stands in for dramatiq's queue: collects what the daemon sends."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.cycles: list[tuple[str, bool, int, str]] = []

    def batch(self, *message: Any) -> None:
        self.batches.append(message)  # type: ignore[arg-type]

    def cycle(self, source: str, full: bool, delay_ms: int, stream: str) -> None:
        self.cycles.append((source, full, delay_ms, stream))

    def drain(self, daemon: Daemon) -> None:
        while self.batches:
            daemon.batch(*self.batches.pop(0))


@contextmanager
def daemon_of(app: App) -> Iterator[Daemon]:
    """A daemon for `app` whose Redis keys live under a fresh namespace, removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    daemon = Daemon(app, client)
    daemon.namespace = f"isync-test-{uuid.uuid4().hex[:12]}"
    try:
        yield daemon
    finally:
        keys = list(client.scan_iter(f"{daemon.namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()
