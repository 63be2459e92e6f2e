"""The client survives what real APIs do: 429s, 5xx, drops, truncation, bad tokens, slowness."""

from __future__ import annotations

import logging
import time

import pytest

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from tests.conftest import TOKEN, TOKEN_ENV, make_source
from tests.mirror_check import assert_mirror_equals
from workers.app import App
from workers.config import AppConfig


def _app(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, **source: object
) -> App:
    from pathlib import Path

    config = AppConfig(
        database_url=database_url,
        sources=(make_source(server, simulator, **source),),
        path=Path("test.toml"),
    )
    return App.open(config)


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "drop", "truncate"])
def test_transient_faults_are_retried_and_the_sync_completes(
    kind: str, app: App, simulator: MoneybirdSimulator
) -> None:
    simulator.add_fault(kind, endpoint="list", times=1)
    simulator.add_fault(kind, endpoint="fetch", times=1)

    result = app.sync_inline(app.config.sources[0])

    assert result.status == "ok", result.error
    assert result.requests == (1 + 1) + (2 + 1) == len(simulator.requests)
    assert_mirror_equals(app.engine, simulator)


def test_retry_after_is_honoured(app: App, simulator: MoneybirdSimulator) -> None:
    simulator.add_fault("429", endpoint="list", retry_after="2")
    started = time.monotonic()

    result = app.sync_inline(app.config.sources[0])

    assert result.status == "ok"
    assert time.monotonic() - started >= 2.0


def test_a_slow_response_times_out_and_is_retried(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> None:
    simulator.add_fault("slow", endpoint="list", delay=3.0)
    app = _app(database_url, server, simulator, timeout=1)
    try:
        result = app.sync_inline(app.config.sources[0])
    finally:
        app.close()
    assert result.status == "ok"
    assert result.requests == 1 + 1 + 2


def test_a_bad_token_stops_the_source_without_a_retry_storm(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "wrong-token-123456")

    result = app.sync_inline(app.config.sources[0])

    assert result.status == "failed"
    assert result.requests == 1 == len(simulator.requests)
    assert "401" in (result.error or "") and "token" in (result.error or "")
    status = app.runs.status(["acme"])[0]
    assert status.last_error == result.error
    assert status.last_success_at is None


def test_pacing_keeps_under_the_real_rate_limit(database_url: str, token: str) -> None:
    simulator = MoneybirdSimulator(invoices=450, seed=5, token=TOKEN, rate_limit=3, rate_window=1.0)
    with SimulatorServer(simulator) as server:
        app = _app(database_url, server, simulator, rate_limit=3, rate_window=1.0)
        try:
            result = app.sync_inline(app.config.sources[0])
        finally:
            app.close()
    assert result.status == "ok"
    assert simulator.rate_limited == 0
    assert result.requests == 1 + 5
    assert_mirror_equals(app.engine, simulator)


def test_the_token_never_reaches_logs_or_errors(
    app: App,
    simulator: MoneybirdSimulator,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from workers.logs import configure

    configure(level="DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    simulator.add_fault("500", endpoint="fetch")
    simulator.add_fault("invalid", endpoint="fetch")
    app.sync_inline(app.config.sources[0])
    simulator.add_fault("429", endpoint="list", times=2)
    second = app.sync_inline(app.config.sources[0])

    captured = capfd.readouterr()
    everything = captured.out + captured.err + caplog.text + str(second.error)
    assert "request" in everything.lower(), "the logs were captured"
    assert TOKEN not in everything
    import sqlalchemy as sa

    from store.schema import sync_errors, sync_runs

    with app.engine.connect() as connection:
        stored = " ".join(
            str(v)
            for table in (sync_runs, sync_errors)
            for row in connection.execute(sa.select(table))
            for v in row
        )
    assert TOKEN not in stored


def test_the_client_decodes_json_exactly_and_counts_its_requests(
    server: SimulatorServer, simulator: MoneybirdSimulator
) -> None:
    from connectors.http import ApiClient

    path = f"{simulator.administration_id}/sales_invoices/synchronization.json"
    simulator.add_fault("503", endpoint="list")
    with ApiClient(
        name="acme", base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        listing = client.request_json("GET", path, params={"filter": "state:all"})

    assert client.requests == 2
    assert {str(item["id"]) for item in listing} == set(simulator.ids())
    assert all(isinstance(item["version"], int) for item in listing)
