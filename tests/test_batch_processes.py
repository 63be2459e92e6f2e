"""A large inline cycle's batches in worker processes, against the simulator over loopback and
real PostgreSQL. The threshold is lowered so that the simulator's 120 invoices make a large
cycle; the worker processes are started fresh, so nothing patched here reaches them."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import workers.batch_processes as batch_processes
import workers.engine as engine
from connectors.moneybird.config import MoneybirdSource
from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from store.schema import sync_errors
from tests.conftest import PG_URL, TOKEN, make_source
from tests.mirror_check import assert_mirror_equals
from workers.app import App
from workers.batch_processes import Assignment, BatchProcesses, offer
from workers.cli import cli
from workers.config import AppConfig

#: PostgreSQL only (SQLite has one writer: its batches stay in one process)
on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def app(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> Iterator[App]:
    """With a rate limit: its window, in Redis, paces every process (without one a source keeps
    its batches in one process)."""
    source = make_source(server, simulator, rate_limit=10_000)
    opened = App.open(AppConfig(database_url=database_url, sources=(source,), path=Path("t.toml")))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def large_from_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_processes, "PROCESSES_FROM", 1)


def _not_here(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a batch ran in the process that started the cycle")


@on_postgresql
def test_worker_processes_write_the_mirror_the_simulator_holds(
    app: App,
    simulator: MoneybirdSimulator,
    large_from_one: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "sync_batch", _not_here)  # only this process sees it

    result = app.sync_inline(app.config.sources[0], processes=2)

    assert result.status == "ok", result.error
    assert (result.listed, result.new, result.quarantined) == (120, 120, 0)
    assert result.requests == 1 + 2 == len(simulator.requests)  # the workers' POSTs counted
    assert_mirror_equals(app.engine, simulator)
    again = app.sync_inline(app.config.sources[0], processes=2)
    assert (again.status, again.new, again.changed, again.requests) == ("ok", 0, 0, 1)


@on_postgresql
def test_a_record_quarantined_in_a_worker_is_counted_and_kept(
    app: App, simulator: MoneybirdSimulator, large_from_one: None
) -> None:
    bad = simulator.ids()[5]
    simulator.add_fault("invalid", endpoint="fetch", remote_id=bad)

    result = app.sync_inline(app.config.sources[0], processes=2)

    assert (result.status, result.new, result.quarantined) == ("ok", 120, 1), result.error
    with app.engine.connect() as connection:
        held = connection.execute(sa.select(sync_errors.c.remote_id)).scalars().all()
    assert held == [bad]


@on_postgresql
def test_a_batch_error_in_a_worker_fails_the_run_with_its_own_type_and_words(
    app: App, simulator: MoneybirdSimulator, large_from_one: None
) -> None:
    def revoke(done: int, _total: int) -> None:
        if done == 0:  # listed and planned: the batches' fetches are refused
            simulator.token = "revoked-token"

    result = app.sync_inline(app.config.sources[0], processes=2, on_progress=revoke)

    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("AuthError: "), result.error
    assert TOKEN not in result.error
    assert multiprocessing.active_children() == []  # the workers ended with the run
    simulator.token = TOKEN
    again = app.sync_inline(app.config.sources[0], processes=2)
    assert (again.status, again.new) == ("ok", 120), again.error
    assert_mirror_equals(app.engine, simulator)


@on_postgresql
def test_a_killed_worker_fails_the_run_and_the_next_cycle_fetches_the_rest(
    app: App, large_from_one: None
) -> None:
    simulator = MoneybirdSimulator(invoices=600, seed=5, token=TOKEN, rate_limit=None)
    with SimulatorServer(simulator) as server:
        source = make_source(server, simulator, rate_limit=10_000)
        config = app.config.model_copy(update={"sources": (source,)})
        app = App.open(config)
        try:

            def kill_workers(done: int, _total: int) -> None:
                if done > 0:
                    for child in multiprocessing.active_children():
                        os.kill(child.pid or 0, signal.SIGKILL)

            result = app.sync_inline(config.sources[0], processes=2, on_progress=kill_workers)

            assert result.status == "failed"
            assert result.error is not None
            assert "batch worker process ended unexpectedly" in result.error, result.error
            written = _mirrored(app)
            assert 0 < written < 600
            again = app.sync_inline(config.sources[0], processes=2)
            assert (again.status, again.new) == ("ok", 600 - written), again.error
            assert_mirror_equals(app.engine, simulator)
        finally:
            app.close()


def _mirrored(app: App) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM invoices")).scalar_one())


def _assignment(url: str, tmp_path: Path, rate_limit: int | None = 150) -> Assignment:
    source = MoneybirdSource.model_validate(
        {
            "name": "acme",
            "kind": "moneybird",
            "base_url": "http://127.0.0.1:9/api/v2",
            "administration_id": "1",
            "token_env": "ACME_TOKEN",
            "rate_limit": rate_limit,
        }
    )
    config = AppConfig(database_url=url, sources=(source,), path=tmp_path / "c.toml")
    return Assignment(config, source, "invoices", 100, "INFO")


def test_worker_processes_are_offered_only_where_they_can_help(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'm.db'}"
    assert offer(_assignment(sqlite, tmp_path), 4) is None  # one writer
    assert offer(_assignment(PG_URL, tmp_path), 1) is None
    assert offer(_assignment(PG_URL, tmp_path, rate_limit=None), 2) is None
    processes_for = offer(_assignment(PG_URL, tmp_path, rate_limit=150), 2)
    assert processes_for is not None
    assert processes_for(batch_processes.PROCESSES_FROM - 1) is None
    assert processes_for(150 * 100 + 1) is None  # 151 requests: the window paces the cycle
    started = processes_for(150 * 100)
    assert isinstance(started, BatchProcesses)
    assert started.in_flight == 4
    with started:  # shut down without a batch ever sent
        pass


def test_processes_is_an_inline_option() -> None:
    result = CliRunner().invoke(cli, ["sync", "--processes", "2"])

    assert result.exit_code == 2
    assert "--processes needs --inline" in result.output
