"""What the daemon's actors do, called directly: real Redis, the real database, the simulator over
loopback, but no worker processes, so each decision is checked step by step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import store.mirror
import workers.fetch_list as fetch_list
from connectors.errors import TransientError
from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from tests.comparisons import count_comparisons
from tests.conftest import make_source
from tests.daemon_queue import REDIS_URL, Queue
from tests.mirror_check import analyze_counts, assert_mirror_equals, mirror_rows
from workers.app import App
from workers.config import AppConfig
from workers.daemon import Daemon
from workers.engine import MassDeletionBlocked


@pytest.fixture
def daemon(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> Iterator[Daemon]:
    namespace = f"isync-test-{uuid.uuid4().hex[:12]}"
    config = AppConfig(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_namespace=namespace,
        sources=(make_source(server, simulator, interval="2s", bank=True),),
        path=Path("test.toml"),
    )
    app = App.open(config)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield Daemon(app, client)
    finally:
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
        app.close()


def test_a_full_resync_waits_for_the_normal_cycle_and_then_runs_in_full(
    daemon: Daemon, simulator: MoneybirdSimulator
) -> None:
    queue = Queue()
    normal = daemon.cycle("acme", False, queue.batch, queue.cycle)
    assert normal.run_id is not None and len(queue.batches) == 2

    deferred = daemon.cycle("acme", True, queue.batch, queue.cycle)

    assert (deferred.coalesced, deferred.reason) == (False, "full resync deferred")
    assert queue.cycles == [("acme", True, 1000, "invoices")], "sent again, when the cycle ends"
    pending = daemon.app.runs.get(deferred.run_id)  # type: ignore[arg-type]
    assert (pending["status"], pending["full_resync"]) == ("pending", True)
    again = daemon.cycle("acme", True, queue.batch, queue.cycle)
    assert again.run_id == deferred.run_id, "a second --full joins the pending one"

    queue.drain(daemon)
    assert daemon.app.runs.get(normal.run_id)["status"] == "ok"
    simulator.change_invoice(simulator.ids()[0], reference="changed before the resync")

    resync = daemon.cycle("acme", True, queue.batch, queue.cycle)  # the message sent again
    assert resync.run_id == deferred.run_id and len(queue.batches) == 2
    assert all(batch[5] is True for batch in queue.batches), "every batch runs in full"
    queue.drain(daemon)

    run = daemon.app.runs.get(deferred.run_id)  # type: ignore[arg-type]
    assert (run["status"], run["full_resync"], run["changed"], run["requests"]) == (
        "ok",
        True,
        1,
        3,
    )
    assert_mirror_equals(daemon.app.engine, simulator)


def test_a_pending_full_resync_is_taken_by_the_next_cycle_if_its_message_is_lost(
    daemon: Daemon,
) -> None:
    queue = Queue()
    daemon.cycle("acme", False, queue.batch, queue.cycle)
    deferred = daemon.cycle("acme", True, queue.batch, queue.cycle)
    queue.drain(daemon)
    queue.cycles.clear()  # Redis lost the message that was to come back

    scheduled = daemon.cycle("acme", False, queue.batch, queue.cycle)

    assert scheduled.run_id == deferred.run_id
    assert all(batch[5] is True for batch in queue.batches)
    queue.drain(daemon)
    assert daemon.app.runs.get(scheduled.run_id)["status"] == "ok"  # type: ignore[arg-type]


def test_a_full_trigger_joins_a_running_full_cycle(daemon: Daemon) -> None:
    queue = Queue()
    first = daemon.cycle("acme", True, queue.batch, queue.cycle)
    second = daemon.cycle("acme", True, queue.batch, queue.cycle)
    assert first.run_id is not None and (second.coalesced, queue.cycles) == (True, [])
    normal = daemon.cycle("acme", False, queue.batch, queue.cycle)
    assert normal.coalesced, "a normal trigger joins a full cycle: it does more"


def test_the_mass_deletion_guard_blocks_a_daemon_cycle(
    daemon: Daemon, simulator: MoneybirdSimulator
) -> None:
    queue = Queue()
    daemon.cycle("acme", False, queue.batch, queue.cycle)
    queue.drain(daemon)
    for remote_id in simulator.ids()[:110]:
        simulator.delete_invoice(remote_id)

    with pytest.raises(MassDeletionBlocked):
        daemon.cycle("acme", False, queue.batch, queue.cycle)

    run = daemon.app.runs.running("acme") or daemon.app.runs.get(daemon.app.runs.latest_id("acme"))
    assert run["status"] == "blocked" and "lacks 110 of 120" in run["error"]
    assert not any(r["deleted_at"] for r in mirror_rows(daemon.app.engine).values())


def test_a_failing_batch_shows_its_error_and_fails_the_run_when_retries_run_out(
    daemon: Daemon,
) -> None:
    queue = Queue()
    planned = daemon.cycle("acme", False, queue.batch, queue.cycle)
    run_id = planned.run_id
    assert run_id is not None

    daemon.batch_failed(
        run_id, TransientError("acme: POST ...: server error HTTP 503"), final=False
    )
    run = daemon.app.runs.get(run_id)
    assert run["status"] == "running" and "HTTP 503" in run["error"]

    daemon.batch_failed(run_id, TransientError("acme: POST ...: server error HTTP 503"), final=True)
    run = daemon.app.runs.get(run_id)
    assert run["status"] == "failed" and "HTTP 503" in run["error"]


def test_the_daemon_scans_the_bank_inbox_once_at_a_time(daemon: Daemon, tmp_path: Path) -> None:
    import shutil

    from workers.config import ConfigError

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "bankfiles" / "mt940_rabobank_iban.sta", inbox)
    daemon.app.config = daemon.app.config.model_copy(update={"bank_inbox": inbox})

    assert daemon.scan_inbox() == 1
    assert [p.name for p in (inbox / "processed").iterdir()] == ["mt940_rabobank_iban.sta"]
    assert [a.account_iban for a in daemon.app.bank.accounts()] == ["NL71RABO0123456789"]

    daemon.app.config = daemon.app.config.model_copy(update={"bank_inbox": tmp_path / "gone"})
    with pytest.raises(ConfigError, match="bank_inbox: .* is not a directory"):
        daemon.scan_inbox()


def test_the_scheduler_scans_the_inbox_only_when_one_is_configured(tmp_path: Path) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from workers.scheduler import INBOX_INTERVAL, add_jobs

    config = AppConfig(path=Path("test.toml"))
    for inbox, expected in ((None, None), (tmp_path, INBOX_INTERVAL)):
        scheduler = BackgroundScheduler()
        add_jobs(
            scheduler,
            config.model_copy(update={"bank_inbox": inbox}),
            lambda source, stream: None,
            lambda: None,
        )
        job = scheduler.get_job("bank-inbox")
        interval = job.trigger.interval.total_seconds() if job else None
        assert interval == expected


def test_the_scheduler_asks_for_a_reconciliation_now_and_then() -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from workers.scheduler import RECONCILE_INTERVAL, add_jobs

    scheduler = BackgroundScheduler()
    asked: list[bool] = []
    add_jobs(
        scheduler,
        AppConfig(path=Path("test.toml")),
        lambda source, stream: None,
        None,
        lambda: asked.append(True),
    )
    job = scheduler.get_job("reconcile")
    assert job.trigger.interval.total_seconds() == RECONCILE_INTERVAL
    job.func()
    assert asked == [True]


def test_the_daemon_runs_the_bank_stream_beside_the_invoices(
    daemon: Daemon, simulator: MoneybirdSimulator
) -> None:
    queue = Queue()
    invoices = daemon.cycle("acme", False, queue.batch, queue.cycle)
    mutations = daemon.cycle("acme", False, queue.batch, queue.cycle, "financial_mutations")

    assert not invoices.coalesced and not mutations.coalesced, "one mutex per stream"
    assert {batch[6] for batch in queue.batches} == {"invoices", "financial_mutations"}
    queue.drain(daemon)

    runs = [daemon.app.runs.get(r.run_id) for r in (invoices, mutations)]  # type: ignore[arg-type]
    assert [(r["stream"], r["status"], r["new"]) for r in runs] == [
        ("invoices", "ok", 120),
        ("financial_mutations", "ok", len(simulator.mutation_ids())),
    ]
    mutations_held = daemon.app.bank_mirror.stored_versions("acme", simulator.mutation_ids())
    assert mutations_held.keys() == set(simulator.mutation_ids())
    assert daemon.app.bank_mirror.live("acme") == len(simulator.mutation_ids())


def test_a_finished_sync_asks_for_one_reconciliation_and_more_asks_are_coalesced(
    daemon: Daemon,
) -> None:
    sent: list[tuple[bool, int]] = []
    daemon.send_reconcile = lambda full, delay: sent.append((full, delay))
    queue = Queue()
    daemon.cycle("acme", False, queue.batch, queue.cycle)
    queue.drain(daemon)
    assert sent == [(False, 0)], "the finished run asks for a reconciliation"
    assert not daemon.request_reconcile(), "one waits already: nothing more is sent"
    assert daemon.reconcile() == "ok"
    assert daemon.request_reconcile(), "asked after the run started: one more run"
    assert sent == [(False, 0), (False, 0)]


def test_a_reconciliation_that_finds_one_running_comes_back_after_it(daemon: Daemon) -> None:
    from dramatiq.rate_limits import ConcurrentRateLimiter

    sent: list[tuple[bool, int]] = []
    daemon.send_reconcile = lambda full, delay: sent.append((full, delay))
    running = ConcurrentRateLimiter(
        daemon._mutex_backend, f"{daemon.namespace}:reconcile", limit=1, ttl=60_000
    )
    with running.acquire(raise_on_failure=False) as acquired:
        assert acquired
        assert daemon.reconcile(full=True) == "deferred"
    assert sent == [(True, 5_000)]
    assert daemon.reconcile(full=True) == "ok"


def test_a_plan_whose_ids_went_to_its_file_sends_every_batch_with_its_versions(
    daemon: Daemon, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 invoices with 7 ids held in memory: the batch messages are read back from the fetch
    list's file, each id with its listed version, and the mirror ends up whole."""
    monkeypatch.setattr(fetch_list, "CHUNK", 7)
    queue = Queue()

    outcome = daemon.cycle("acme", False, queue.batch, queue.cycle)

    assert outcome.batches == 2
    sent = {i: v for batch in queue.batches for i, v in zip(batch[3], batch[4], strict=True)}
    with daemon.app.connector(daemon.app.config.sources[0]) as connector:
        listed = connector.list_versions()
    assert sent == listed and len(sent) == 120
    queue.drain(daemon)
    assert_mirror_equals(daemon.app.engine, simulator)


def test_a_daemon_plan_equal_to_the_previous_one_compares_nothing(
    daemon: Daemon, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = Queue()
    daemon.cycle("acme", False, queue.batch, queue.cycle)
    queue.drain(daemon)
    equal = daemon.cycle("acme", False, queue.batch, queue.cycle)
    compared = count_comparisons(monkeypatch)

    again = daemon.cycle("acme", False, queue.batch, queue.cycle)

    assert compared == [] and queue.batches == []
    first, second = (daemon.app.runs.get(o.run_id) for o in (equal, again))  # type: ignore[arg-type]
    assert first["listing_digest"] and second["listing_digest"] == first["listing_digest"]
    assert (second["status"], second["listed"], second["unchanged"]) == ("ok", 120, 120)
    simulator.change_invoice(simulator.ids()[0], reference="changed")
    changed = daemon.cycle("acme", False, queue.batch, queue.cycle)
    assert compared == ["acme"] and len(queue.batches) == 1
    assert daemon.app.runs.get(changed.run_id)["listing_digest"] is None  # type: ignore[arg-type]
    queue.drain(daemon)
    assert_mirror_equals(daemon.app.engine, simulator)


def test_a_daemon_run_that_grew_the_mirror_analyzes_its_tables_when_its_last_batch_lands(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store.mirror, "ANALYZE_AFTER", 100)
    queue = Queue()

    first = daemon.cycle("acme", False, queue.batch, queue.cycle)
    queue.drain(daemon)

    assert daemon.app.runs.get(first.run_id)["status"] == "ok"  # type: ignore[arg-type]
    if daemon.app.engine.dialect.name == "postgresql":
        assert analyze_counts(daemon.app)["invoices"] == 1
        idle = daemon.cycle("acme", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        assert daemon.app.runs.get(idle.run_id)["new"] == 0  # type: ignore[arg-type]
        assert analyze_counts(daemon.app)["invoices"] == 1, "an idle run does not analyze"
    else:
        assert not daemon.app.mirror.analyze_if_grown(written=10_000, listed=10_000)
