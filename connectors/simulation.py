"""What every API simulator shares: injectable faults, and serving over real HTTP on loopback.

Simulators exist for tests and benchmarks only; nothing in a sync imports them. A fault is queued
for the next N matching requests; `429`, `5xx` and `drop` are answered before anything else (so
fault tests stay deterministic), `slow` and `truncate` wrap a normal answer, `invalid` is up to
each simulator (a record it makes unreadable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson
import uvicorn
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

FAULT_KINDS = frozenset({"429", "500", "502", "503", "slow", "drop", "truncate", "invalid"})
#: the faults answered instead of the request, before authentication
REFUSALS = frozenset({"429", "500", "502", "503"})


@dataclass
class Fault:
    kind: str
    endpoint: str
    remaining: int
    delay: float
    retry_after: str | None
    remote_id: str | None


class Faults:
    """A thread-safe queue of faults, each matching one endpoint name or `any`."""

    def __init__(self, endpoints: Collection[str]) -> None:
        self.endpoints = frozenset(endpoints) | {"any"}
        self._queued: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        *,
        times: int = 1,
        endpoint: str = "any",
        delay: float = 2.0,
        retry_after: str | None = None,
        remote_id: str | None = None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if endpoint not in self.endpoints:
            raise ValueError(
                f"unknown endpoint {endpoint!r}; expected one of {sorted(self.endpoints)}"
            )
        fault = Fault(
            kind, endpoint, times, delay, retry_after, None if remote_id is None else str(remote_id)
        )
        with self._lock:
            self._queued.append(fault)

    def take(self, matches: Callable[[Fault], bool]) -> Fault | None:
        """The first queued fault that matches, used up once."""
        with self._lock:
            for fault in self._queued:
                if matches(fault):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._queued.remove(fault)
                    return fault
        return None

    def take_for(self, endpoint: str) -> Fault | None:
        """The next fault for a request to `endpoint` (`invalid` faults are taken elsewhere)."""
        return self.take(lambda f: f.kind != "invalid" and f.endpoint in ("any", endpoint))

    def take_invalid(self, answered: list[str], endpoint: str) -> str | None:
        """Which of the records being answered an `invalid` fault spoils, if one is queued."""
        fault = self.take(
            lambda f: (
                f.kind == "invalid"
                and f.endpoint in ("any", endpoint)
                and bool(answered)
                and (f.remote_id is None or f.remote_id in answered)
            )
        )
        if fault is None:
            return None
        return fault.remote_id or answered[0]


def refusal(fault: Fault, rate_limit_headers: dict[str, str] | None = None) -> Response:
    """The answer a `429`, `500`, `502` or `503` fault gives instead of the request's."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.kind == "429":
        headers["Retry-After"] = fault.retry_after or "1"
        headers.update(rate_limit_headers or {})
        return Response("Retry later", 429, headers, media_type="text/plain")
    if fault.kind == "500":
        return Response(
            orjson.dumps({"error": "Internal server error"}),
            500,
            headers,
            media_type="application/json",
        )
    title = {"502": "502 Bad Gateway", "503": "503 Service Temporarily Unavailable"}[fault.kind]
    return Response(
        f"<html><body><h1>{title}</h1></body></html>",
        int(fault.kind),
        headers,
        media_type="text/html",
    )


def reset_epoch(retry_after: str) -> int:
    """The epoch second a Retry-After (delta seconds, epoch seconds or HTTP date) points at."""
    now = time.time()
    if retry_after.strip().isdigit():
        value = int(retry_after)
        return value if value > 1_000_000_000 else math.ceil(now) + value
    try:
        return int(email.utils.parsedate_to_datetime(retry_after).timestamp())
    except (TypeError, ValueError):
        return math.ceil(now) + 1


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def drop_connection(receive: Receive) -> None:
    """Close the socket without any response: ASGI has no verb for it, uvicorn's transport does."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the drop fault needs the simulator to run under uvicorn")
    transport.close()
    await _disconnect(receive)


class Simulated(Protocol):
    app: Any  # an ASGI application (a Starlette app)
    #: the path the API lives under (`/api/v2`), or "" when the base URL is the host itself
    base_path: str


class SimulatorServer:
    """Serves a simulator with uvicorn in a daemon thread on loopback; `port` and `base_url` are
    set on entry."""

    def __init__(self, simulator: Simulated, port: int = 0) -> None:
        self.simulator = simulator
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}{simulator.base_path}"
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SimulatorServer:
        # proto must say TCP: asyncio sets TCP_NODELAY only then, else Nagle adds 40 ms per answer
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.listen(2048)
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}{self.simulator.base_path}"
        config = uvicorn.Config(
            self.simulator.app,
            host="127.0.0.1",
            port=self.port,
            http="h11",
            lifespan="off",
            access_log=False,
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            daemon=True,
            name=f"{type(self.simulator).__name__}-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the {type(self.simulator).__name__} did not start")
            time.sleep(0.005)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None


async def answered_by_fault(
    fault: Fault | None,
    scope: Scope,
    receive: Receive,
    send: Send,
    refuse: Callable[[Fault], Response] = refusal,
) -> bool:
    """Play the faults that come before a request is handled; True when one answered (or
    dropped) it. `slow` waits here; `truncate` is the caller's, on its answer; `refuse` makes
    the answer of a `429`/`5xx` fault (a simulator may add its rate-limit headers)."""
    if fault is None:
        return False
    if fault.kind == "drop":
        await drop_connection(receive)
        return True
    if fault.kind in REFUSALS:
        await refuse(fault)(scope, receive, send)
        return True
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
    return False


async def lose_answer(how: str, scope: Scope, receive: Receive, send: Send) -> bool:
    """After a write was recorded, lose its answer as `how` says (`drop`: close the connection,
    `500`: a server error, `hang`: answer nothing until the client goes away, at most a minute:
    a worker killed meanwhile never hears); False for "" (answer normally). A simulator's
    `fail_after_write`."""
    if how == "hang":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_disconnect(receive), 60)
        how = "drop"
    if how == "drop":
        await drop_connection(receive)
        return True
    if how == "500":
        await Response(b"Internal Server Error", 500)(scope, receive, send)
        return True
    return False


class RawEndpoint:
    """An ASGI app Starlette routes to as is (a plain function would get a Request instead),
    so that a fault can drop the connection."""

    def __init__(self, serve: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.serve = serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send)


def serve_main(
    name: str, build: Callable[[int, int, str], Simulated], token: str, argv: list[str] | None
) -> None:
    """A simulator's command line: `--invoices`, `--seed`, `--port`, `--token`; serves until
    killed. `build(invoices, seed, token)` makes the simulator."""
    parser = argparse.ArgumentParser(description=f"Serve a {name} simulator on loopback.")
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=token)
    args = parser.parse_args(argv)
    with SimulatorServer(build(args.invoices, args.seed, args.token), args.port) as server:
        print(f"{name} simulator on {server.base_url}", flush=True)
        threading.Event().wait()


def raw_number(value: Any) -> orjson.Fragment:
    """orjson `default`: Decimals become JSON numbers spelled exactly as they are."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
