"""The daemon for real: Redis at 127.0.0.1:6379, `dramatiq workers.actors` worker processes,
the simulator over loopback. Every test has its own Redis key namespace, so parallel runs and
other suites never share a queue, a mutex or a rate-limit window."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import dramatiq
import pytest
import redis
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from dramatiq.brokers.redis import RedisBroker

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from store.db import HEAD_REVISION, make_engine
from store.schema import sync_run_batches, sync_runs
from tests.conftest import TOKEN, TOKEN_ENV
from tests.mirror_check import assert_mirror_equals
from workers.broker import QUEUE
from workers.config import load_config
from workers.scheduler import add_jobs

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 2.0  # seconds: every daemon test's source interval, unless it sets its own
LEASE = 3 * INTERVAL  # a running run that showed no life for this long is taken as dead


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"isync-test-{uuid.uuid4().hex[:12]}"
    yield name
    drop_namespace(name)
    shutil.rmtree(
        Path(tempfile.gettempdir()) / f"invoice-sync-prometheus-{name}", ignore_errors=True
    )


def drop_namespace(name: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)


def write_config(
    path: Path,
    database_url: str,
    namespace: str,
    base_url: str,
    metrics_port: int = 0,
    **source: str,
) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in source.items())
    path.write_text(
        f'database_url = "{database_url}"\nredis_url = "{REDIS_URL}"\n'
        f'redis_namespace = "{namespace}"\nmetrics_port = {metrics_port}\n\n[[sources]]\nname = "acme"\nkind = "moneybird"\n'
        f'base_url = "{base_url}"\nadministration_id = "123456789"\ntoken_env = "{TOKEN_ENV}"\n'
        f'since = "2020-01-01"\ntimeout = "10s"\n{extra}'
    )
    return path


class Worker:
    """A real `invoice-sync worker` (dramatiq) process tree, killable like a crashed machine."""

    def __init__(self, config: Path, log: Path, threads: int = 2) -> None:
        self.config, self.log, self.threads = config, log, threads
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        env = {**os.environ, TOKEN_ENV: TOKEN}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers",
                "--config",
                str(self.config),
                "worker",
                "--processes",
                "1",
                "--threads",
                str(self.threads),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class SimulatorOptions(TypedDict, total=False):
    token: str
    rate_limit: int | None
    rate_window: float


@pytest.fixture
def daemon_setup(
    tmp_path: Path, database_url: str, namespace: str, token: str
) -> Iterator[Callable[..., tuple[MoneybirdSimulator, Path, Worker]]]:
    servers: list[SimulatorServer] = []
    workers: list[Worker] = []

    def start(
        invoices: int = 120,
        threads: int = 2,
        sim: SimulatorOptions | None = None,
        metrics_port: int = 0,
        **source: str,
    ) -> tuple[MoneybirdSimulator, Path, Worker]:
        options: SimulatorOptions = {"token": TOKEN, "rate_limit": None, **(sim or {})}
        simulator = MoneybirdSimulator(invoices=invoices, seed=11, **options)
        server = SimulatorServer(simulator).__enter__()
        servers.append(server)
        source.setdefault("interval", f'"{INTERVAL:g}s"')
        source.setdefault("rate_limit", "100000")
        config = write_config(
            tmp_path / "daemon.toml",
            database_url,
            namespace,
            server.base_url,
            metrics_port,
            **source,
        )
        worker = Worker(config, tmp_path / "worker.log", threads)
        workers.append(worker)
        return simulator, config, worker.start()

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            server.__exit__(None, None, None)
        log = tmp_path / "worker.log"
        if log.exists():
            print(log.read_text()[-4000:])


def enqueue_cycle(namespace: str, full: bool = False, stream: str | None = None) -> None:
    """As the scheduler or the CLI sends it; without `stream`, as messages from before streams
    existed (still accepted: the stream defaults to invoices)."""
    args: tuple[object, ...] = ("acme", full) if stream is None else ("acme", full, stream)
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    broker.enqueue(
        dramatiq.Message(
            queue_name=QUEUE, actor_name="sync_cycle", args=args, kwargs={}, options={}
        )
    )
    broker.close()


def migrated(connection: sa.Connection) -> bool:
    """Whether the worker has migrated the database yet (it does so on its first message).

    `sync_runs` alone is not enough: on SQLite, Alembic's DDL is not transactional, so the table
    shows up before a later migration adds its last columns; `alembic_version` reaches the head
    revision only when the whole schema is there, on both databases."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return False
    version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return version == HEAD_REVISION


def query(database_url: str, statement: sa.Select[Any]) -> list[sa.Row[Any]]:
    """The statement's rows; [] until the worker has migrated. Any other error fails the test."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            if not migrated(connection):
                return []
            return list(connection.execute(statement))
    finally:
        engine.dispose()


def runs(database_url: str) -> list[sa.Row[Any]]:
    return query(database_url, sa.select(sync_runs).order_by(sync_runs.c.id))


def reported_batches(database_url: str) -> set[tuple[int, int]]:
    """(run id, batch no) of every batch that has reported to the database."""
    statement = sa.select(sync_run_batches.c.run_id, sync_run_batches.c.batch_no)
    return {(row.run_id, row.batch_no) for row in query(database_url, statement)}


def lease_ran_out(database_url: str, run_id: int) -> Callable[[], bool]:
    """Whether LEASE has passed since the run last showed life: its start, else its newest
    reported batch (what the daemon checks before it gives up on a running run)."""

    def check() -> bool:
        (run,) = [r for r in runs(database_url) if r.id == run_id]
        finished = [
            row.finished_at
            for row in query(
                database_url,
                sa.select(sync_run_batches.c.finished_at).where(
                    sync_run_batches.c.run_id == run_id
                ),
            )
        ]
        last_life = max([run.started_at, *finished])
        return dt.datetime.now(dt.UTC) - last_life > dt.timedelta(seconds=LEASE)

    return check


def zcard(key: str) -> int:
    with redis.Redis.from_url(REDIS_URL) as client:
        return int(client.zcard(key))


def worker_is_fetching(namespace: str) -> Callable[[], bool]:
    """dramatiq's RedisBroker records a heartbeat in `{namespace}:__heartbeats__` on every call
    to Redis (a worker's fetches, but also any enqueue): ask before anything is enqueued."""
    return lambda: zcard(f"{namespace}:__heartbeats__") > 0


def logged(worker: Worker) -> list[dict[str, Any]]:
    """The worker's structured (JSON) log lines so far."""
    text = worker.log.read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def held_batches(namespace: str) -> set[tuple[int, int]]:
    """(run id, batch no) of every sync_batch message a worker has fetched and not acked yet:
    dramatiq's RedisBroker keeps their ids in `{namespace}:__acks__.<worker>.<queue>` sets and
    their bodies in `{namespace}:<queue>.msgs` until the ack."""
    held: set[tuple[int, int]] = set()
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(f"{namespace}:__acks__.*"):
            ids = list(client.smembers(key))
            for body in client.hmget(f"{namespace}:{QUEUE}.msgs", ids) if ids else []:
                message = json.loads(body) if body else {}
                if message.get("actor_name") == "sync_batch":
                    held.add((message["args"][1], message["args"][2]))
    return held


def wait_for(
    predicate: Callable[[], object], timeout: float = 40.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def finished_ok(database_url: str, count: int = 1) -> Callable[[], bool]:
    return lambda: sum(1 for r in runs(database_url) if r.status == "ok") >= count


def invoice_sync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own, as ops run it beside the daemon."""
    return subprocess.run(
        [sys.executable, "-m", "workers", "--config", str(config), *args],
        cwd=ROOT,
        env={**os.environ, TOKEN_ENV: TOKEN},
        capture_output=True,
        text=True,
        timeout=90,
    )


def summary(stdout: str) -> dict[str, str]:
    """The first source's row of a sync summary, by column."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("source "))
    return dict(zip(lines[at].split(), lines[at + 1].split(), strict=True))


def test_the_scheduler_enqueues_each_source_on_its_interval(tmp_path: Path) -> None:
    config_path = tmp_path / "s.toml"
    config_path.write_text(
        'database_url = "sqlite://"\n'
        + "".join(
            f'[[sources]]\nname = "{name}"\nkind = "moneybird"\nbase_url = "http://127.0.0.1:9"\n'
            f'administration_id = "1"\ntoken_env = "X"\ninterval = "{interval}"\n'
            for name, interval in (("fast", "0.2s"), ("slow", "1h"))
        )
    )
    sent: list[str] = []
    scheduler = BackgroundScheduler()
    add_jobs(scheduler, load_config(config_path), lambda source, _stream: sent.append(source))
    scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        time.sleep(1.1)  # a fixed window on purpose: the count in it has an upper bound too
    finally:
        scheduler.shutdown()
    assert sent.count("slow") == 1, "every source is triggered once at start"
    assert 4 <= sent.count("fast") <= 7
    assert set(jobs) == {"cycle:fast", "cycle:slow"}
    for name, seconds, grace in (("fast", 0.2, 1), ("slow", 3600.0, 3600)):
        job = jobs[f"cycle:{name}"]
        assert job.trigger.interval == dt.timedelta(seconds=seconds)
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, grace), (
            "missed runs are coalesced into one, never replayed in a burst nor run twice at once"
        )


def test_a_cycle_through_redis_and_a_real_worker_mirrors_the_simulator(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, _config, worker = daemon_setup()
    enqueue_cycle(namespace)

    wait_for(finished_ok(database_url), what="the run to finish")

    (run,) = runs(database_url)
    assert (run.status, run.listed, run.new, run.batches, run.requests) == ("ok", 120, 120, 2, 3)
    assert_mirror_equals(make_engine(database_url), simulator)

    wait_for(lambda: "run finished" in worker.log.read_text(), what="the last log line")
    ours = [line for line in logged(worker) if line["event"] in ("cycle planned", "run finished")]
    assert {line["event"] for line in ours} == {"cycle planned", "run finished"}
    for line in ours:
        assert line["source"] == "acme" and line["run_id"] == run.id
        assert line["actor"] in ("sync_cycle", "sync_batch") and line["message_id"]
    assert TOKEN not in worker.log.read_text()


def test_two_triggers_at_once_run_one_cycle(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, _config, worker = daemon_setup(threads=2)
    simulator.add_fault("slow", endpoint="list", delay=2.0)
    # the worker is up and waiting, so both messages are taken at once
    wait_for(worker_is_fetching(namespace), what="the worker to fetch from Redis")
    enqueue_cycle(namespace)
    enqueue_cycle(namespace)

    wait_for(finished_ok(database_url), what="the run to finish")
    wait_for(
        lambda: (
            any(line["event"].startswith("cycle coalesced") for line in logged(worker))
            or len(runs(database_url)) > 1
        ),
        what="the second trigger to be handled (coalesced, or wrongly run)",
    )

    assert len(runs(database_url)) == 1
    assert [m for m, path, _n in simulator.requests if m == "GET"] == ["GET"]
    assert_mirror_equals(make_engine(database_url), simulator)


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, _config, worker = daemon_setup(threads=1)
    simulator.add_fault("slow", endpoint="fetch", delay=5.0)
    enqueue_cycle(namespace)
    wait_for(lambda: any(m == "POST" for m, _p, _n in simulator.requests), what="a batch to start")

    worker.kill()
    worker.start()
    (stuck,) = runs(database_url)
    wait_for(lease_ran_out(database_url, stuck.id), what="the stuck run's lease to run out")
    enqueue_cycle(namespace)

    wait_for(finished_ok(database_url), timeout=60, what="a run to finish after the crash")
    statuses = [r.status for r in runs(database_url)]
    assert statuses[0] == "interrupted" and statuses[-1] == "ok"
    assert_mirror_equals(make_engine(database_url), simulator)


def test_redis_losing_everything_mid_cycle_converges_next_cycle(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, _config, worker = daemon_setup(invoices=450, threads=1)
    simulator.add_fault("slow", endpoint="fetch", delay=1.5)
    enqueue_cycle(namespace)
    # logged once all its batches are enqueued (the run's `batches` is set just before that)
    wait_for(
        lambda: any(line["event"] == "cycle planned" for line in logged(worker)),
        what="the cycle to plan",
    )

    held = held_batches(namespace)
    drop_namespace(namespace)  # FLUSHALL, as far as this deployment can see
    wait_for(
        lambda: held <= reported_batches(database_url),
        what="the batches the worker already held to finish",
    )
    enqueue_cycle(namespace)

    wait_for(finished_ok(database_url), timeout=60, what="the next cycle to finish")
    statuses = [r.status for r in runs(database_url)]
    assert statuses == ["interrupted", "ok"]
    assert_mirror_equals(make_engine(database_url), simulator)


def test_four_threads_share_one_rate_limit_and_never_see_a_429(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    """Four windows of their own would send 16 requests a window. The shared one allows 4 (one
    below the server's 5): the server stamps a request when its thread gets to it, and under
    the whole suite's load on two cores that came more than the limiter's 0.25 s margin after
    the send (two 429s in one run of the suite, never alone)."""
    simulator, _config, _worker = daemon_setup(
        invoices=1500,
        threads=4,
        sim={"rate_limit": 5, "rate_window": 1.0},
        rate_limit="4",
        rate_window='"1s"',
    )
    enqueue_cycle(namespace)

    wait_for(finished_ok(database_url), timeout=60, what="the rate-limited run")

    assert simulator.rate_limited == 0
    assert len(simulator.requests) == 1 + 15
    assert_mirror_equals(make_engine(database_url), simulator)


def test_ops_resync_from_the_cli_while_the_daemon_runs(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, config, _worker = daemon_setup()
    enqueue_cycle(namespace)
    wait_for(finished_ok(database_url), what="the first run")
    simulator.change_invoice(simulator.ids()[0], reference="edited before the resync")

    result = invoice_sync(config, "sync", "--full", "--wait", "--timeout", "60")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "acme: cycle enqueued, message" in result.stdout
    values = summary(result.stdout)
    assert (values["listed"], values["changed"], values["status"]) == ("120", "1", "ok")
    assert values["requests"] == "3", "a full resync refetches every invoice"
    assert TOKEN not in result.stdout + result.stderr
    assert_mirror_equals(make_engine(database_url), simulator)


def test_a_full_resync_sent_while_a_normal_cycle_runs_is_not_lost(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, config, _worker = daemon_setup()
    simulator.add_fault("slow", endpoint="fetch", delay=3.0)
    enqueue_cycle(namespace)
    wait_for(lambda: any(m == "POST" for m, _p, _n in simulator.requests), what="a batch in flight")

    result = invoice_sync(config, "sync", "--full", "--wait")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "acme: a normal cycle is running; the full resync runs when it ends" in result.stdout
    assert "no worker is running" not in result.stderr, "the worker's heartbeat is seen"
    normal, full = runs(database_url)
    assert (normal.status, normal.full_resync) == ("ok", False)
    assert (full.status, full.full_resync, full.requests) == ("ok", True, 3)
    values = summary(result.stdout)
    assert (values["listed"], values["requests"], values["status"]) == ("120", "3", "ok")
    assert_mirror_equals(make_engine(database_url), simulator)


def test_a_worker_mirrors_the_bank_stream_and_imports_the_inbox(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    from store.schema import bank_transactions

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "bankfiles" / "mt940_rabobank_iban.sta", inbox)
    simulator, config, _worker = daemon_setup(bank="true")
    config.write_text(f'bank_inbox = "{inbox}"\n' + config.read_text())
    enqueue_cycle(namespace, stream="financial_mutations")
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    broker.enqueue(
        dramatiq.Message(
            queue_name=QUEUE, actor_name="scan_bank_inbox", args=(), kwargs={}, options={}
        )
    )
    broker.close()

    wait_for(finished_ok(database_url), what="the bank stream's run")
    wait_for(lambda: (inbox / "processed").exists(), what="the inbox scan")

    (run,) = runs(database_url)
    mutations = len(simulator.mutation_ids())
    assert (run.stream, run.status, run.new) == ("financial_mutations", "ok", mutations)
    origins = query(
        database_url,
        sa.select(bank_transactions.c.origin, sa.func.count().label("n")).group_by(
            bank_transactions.c.origin
        ),
    )
    assert {row.origin: row.n for row in origins} == {
        "moneybird": mutations,
        "mt940": 4,
    }

    from store.schema import bank_transaction_reconciliation, reconciliation_runs

    def reconciled() -> bool:
        done = query(database_url, sa.select(reconciliation_runs.c.status))
        settled = query(
            database_url, sa.select(bank_transaction_reconciliation.c.bank_transaction_id)
        )
        return any(r.status == "ok" for r in done) and len(settled) == mutations + 4

    wait_for(reconciled, what="the reconciliation the run and the import ask for")


def test_workers_export_prometheus_metrics(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    simulator, _config, _worker = daemon_setup(metrics_port=port)
    enqueue_cycle(namespace)
    wait_for(finished_ok(database_url), what="the run to finish")

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()
        except OSError:
            return ""

    wait_for(
        lambda: 'invoice_sync_invoices_mirrored{source="acme"} 120.0' in scrape(), what="metrics"
    )
    text = scrape()
    assert 'invoice_sync_requests_total{source="acme"} 3.0' in text
    assert 'invoice_sync_rate_limited_total{source="acme"} 0.0' in text
    assert 'invoice_sync_invoices_quarantined{source="acme"} 0.0' in text
    assert 'invoice_sync_last_success_timestamp_seconds{source="acme"}' in text
    assert 'invoice_sync_cycle_duration_seconds_count{source="acme"} 1.0' in text
    assert 'dramatiq_messages_total{actor_name="sync_batch",queue_name="invoice-sync"} 2.0' in text


def test_a_refused_token_fails_the_run_once_without_retries(
    daemon_setup: Callable[..., tuple[MoneybirdSimulator, Path, Worker]],
    database_url: str,
    namespace: str,
) -> None:
    simulator, _config, worker = daemon_setup(sim={"token": "the-real-token-differs"})
    enqueue_cycle(namespace)

    wait_for(lambda: any(r.status == "failed" for r in runs(database_url)), what="the failed run")
    # dramatiq dead-letters a message it gives up on; one it retries is acked and sent again
    dead_letters = f"{namespace}:{QUEUE}.XQ"
    wait_for(
        lambda: zcard(dead_letters) == 1 or len(simulator.requests) > 1,
        what="the message to be given up on (or retried)",
    )
    assert zcard(dead_letters) == 1

    (run,) = runs(database_url)
    assert run.status == "failed" and "401" in run.error and run.finished_at is not None
    assert len(simulator.requests) == 1
    assert TOKEN not in run.error and TOKEN not in worker.log.read_text()
