"""One budget and one pause per remote account, whoever sends: daemon workers and `sync --inline`.

Real Redis at 127.0.0.1:6379 (`TEST_REDIS_URL`), each test under its own key namespace, and the
simulator enforcing its own rate limit over loopback.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from connectors.ratelimit import SlidingWindowLimiter
from tests.conftest import TOKEN, make_source
from workers.app import App
from workers.config import AppConfig
from workers.limiter import RedisWindowLimiter, account_key

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"isync-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)


def limiter(namespace: str, limit: int, window: float) -> RedisWindowLimiter:
    key = account_key(namespace, "moneybird", TOKEN)
    return RedisWindowLimiter(redis.Redis.from_url(REDIS_URL), key, limit, window)


def open_app(
    database_url: str,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    namespace: str,
    redis_url: str = REDIS_URL,
    **source: object,
) -> App:
    config = AppConfig(
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace=namespace,
        sources=(make_source(server, simulator, **source),),
        path=Path("test.toml"),
    )
    return App.open(config)


def test_a_pause_in_one_process_holds_every_sender_of_the_account(namespace: str) -> None:
    first, second = limiter(namespace, 100, 1.0), limiter(namespace, 100, 1.0)
    first.acquire()

    first.pause(1.0)
    started = time.monotonic()
    second.acquire()

    assert time.monotonic() - started >= 0.9
    first.pause(0.2)  # a shorter pause never cuts a longer one short
    first.pause(1.0)
    first.pause(0.2)
    started = time.monotonic()
    second.acquire()
    assert time.monotonic() - started >= 0.9


def test_a_local_window_pause_holds_every_thread() -> None:
    local = SlidingWindowLimiter(100, 1.0, margin=0)
    local.pause(0.5)
    started = time.monotonic()
    local.acquire()
    assert time.monotonic() - started >= 0.45


def test_sync_inline_shares_the_daemons_window_and_sees_no_429(
    database_url: str, namespace: str, token: str
) -> None:
    """A daemon worker (here a thread with its own Redis limiter) and `sync --inline` on one
    token: together they must stay within the account's 5 requests per second."""
    import httpx

    simulator = MoneybirdSimulator(invoices=600, seed=5, token=TOKEN, rate_limit=5, rate_window=1.0)
    with SimulatorServer(simulator) as server:
        app = open_app(database_url, server, simulator, namespace, rate_limit=4, rate_window="1s")
        worker = limiter(namespace, 4, 1.0)
        stop = threading.Event()
        sent = 0

        def daemon_worker() -> None:
            nonlocal sent
            path = f"{simulator.administration_id}/sales_invoices/synchronization.json"
            with httpx.Client(
                base_url=server.base_url + "/", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as client:
                while not stop.is_set():
                    worker.acquire()
                    client.post(path, json={"ids": simulator.ids()[:1]})
                    sent += 1

        thread = threading.Thread(target=daemon_worker)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while sent == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # the other sender is under way before the sync starts
            result = app.sync_inline(app.config.sources[0])
        finally:
            stop.set()
            thread.join()
            app.close()

    assert result.status == "ok", result.error
    assert sent >= 3, "the other sender really competed for the window"
    assert simulator.rate_limited == 0
    assert result.requests == 1 + 6


def test_the_servers_remaining_zero_pauses_other_senders(
    database_url: str, namespace: str, token: str
) -> None:
    """Our own budget is generous; only the server's `RateLimit-Remaining: 0` can hold us back.
    One connector spends the server's window; another (as in another process) must wait for
    the reset the server announced instead of earning a 429."""
    simulator = MoneybirdSimulator(invoices=20, seed=5, token=TOKEN, rate_limit=3, rate_window=2.0)
    with SimulatorServer(simulator) as server:
        app = open_app(database_url, server, simulator, namespace, rate_limit=1000)
        source = app.config.sources[0]
        try:
            with app.connector(source) as spender:
                for _ in range(3):
                    spender.list_versions()  # the third answer says RateLimit-Remaining: 0
            started = time.monotonic()
            with app.connector(source) as other:
                listed = other.list_versions()
            waited = time.monotonic() - started
        finally:
            app.close()

    assert len(listed) == 20
    assert simulator.rate_limited == 0
    assert waited >= 0.5, "the second sender waited for the server's reset"


def test_without_redis_sync_inline_paces_itself(
    database_url: str,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    namespace: str,
    token: str,
) -> None:
    app = open_app(
        database_url,
        server,
        simulator,
        namespace,
        redis_url="redis://127.0.0.1:9/0",
        rate_limit=100,
        rate_window="1s",
    )
    try:
        result = app.sync_inline(app.config.sources[0])
    finally:
        app.close()
    assert result.status == "ok" and result.requests == 3


class _Watched(SlidingWindowLimiter):
    """A real window that remembers the pauses asked of it."""

    def __init__(self, limit: int, window: float) -> None:
        super().__init__(limit, window, margin=0)
        self.pauses: list[float] = []

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        super().pause(seconds)


@pytest.mark.parametrize(("ours", "paused"), [(3, False), (1000, True)])
def test_a_spent_window_of_our_own_costs_no_whole_second_pause(
    simulator: MoneybirdSimulator, server: SimulatorServer, ours: int, paused: bool
) -> None:
    """`RateLimit-Reset` is in whole seconds: when our own window is as spent as the server's,
    our window times the next request; when it is not (someone else spends the account), the
    server's reset holds us."""
    from connectors.http import ApiClient

    simulator.rate_limit, simulator.rate_window = 3, 5.0
    watched = _Watched(ours, 5.0)
    client = ApiClient(
        name="acme",
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        limiter=watched,
    )
    with client:
        for _ in range(3):  # the third answer says RateLimit-Remaining: 0
            client.request_json("GET", f"{simulator.administration_id}/financial_accounts.json")
    assert bool(watched.pauses) is paused
    assert simulator.rate_limited == 0


def test_free_in_says_when_the_shared_window_lets_the_next_request_go(namespace: str) -> None:
    shared = limiter(namespace, 2, 5.0)
    assert shared.free_in() == 0.0
    shared.acquire()
    assert shared.free_in() == 0.0, "looking takes no slot"
    shared.acquire()
    assert 4.0 < shared.free_in() <= 5.25
    shared.pause(8.0)
    assert shared.free_in() > 7.0
