"""The daemon for real: Redis at 127.0.0.1:6379, `dramatiq workers.actors` worker processes,
the simulator over loopback. Every test has its own Redis key namespace, so parallel runs and
other suites never share a queue, a mutex or a rate-limit window."""

from __future__ import annotations

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

import dramatiq
import pytest
import redis
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from dramatiq.brokers.redis import RedisBroker

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from store.db import make_engine
from store.schema import sync_runs
from tests.conftest import TOKEN, TOKEN_ENV
from tests.mirror_check import assert_mirror_equals
from workers.broker import QUEUE
from workers.config import load_config
from workers.scheduler import add_jobs

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def daemon_setup(
    tmp_path: Path, database_url: str, namespace: str, token: str
) -> Iterator[Callable[..., tuple[MoneybirdSimulator, Path, Worker]]]:
    servers: list[SimulatorServer] = []
    workers: list[Worker] = []

    def start(
        invoices: int = 120,
        threads: int = 2,
        sim: dict | None = None,
        metrics_port: int = 0,
        **source: str,
    ):
        simulator = MoneybirdSimulator(
            invoices=invoices, seed=11, **{"token": TOKEN, "rate_limit": None, **(sim or {})}
        )
        server = SimulatorServer(simulator).__enter__()
        servers.append(server)
        source.setdefault("interval", '"2s"')
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


def enqueue_cycle(namespace: str, full: bool = False) -> None:
    broker = RedisBroker(url=REDIS_URL, namespace=namespace)
    broker.enqueue(
        dramatiq.Message(
            queue_name=QUEUE, actor_name="sync_cycle", args=("acme", full), kwargs={}, options={}
        )
    )
    broker.close()


def runs(database_url: str) -> list[sa.Row]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(sync_runs).order_by(sync_runs.c.id)))
    except sa.exc.OperationalError:
        return []
    except sa.exc.ProgrammingError:
        return []
    finally:
        engine.dispose()


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
    add_jobs(scheduler, load_config(config_path), sent.append)
    scheduler.start()
    try:
        time.sleep(1.1)
    finally:
        scheduler.shutdown()
    assert sent.count("slow") == 1, "every source is triggered once at start"
    assert 4 <= sent.count("fast") <= 7
    job = scheduler.get_job("cycle:fast") if scheduler.running else None
    assert job is None


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

    import json

    wait_for(lambda: "run finished" in worker.log.read_text(), what="the last log line")
    lines = [
        json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")
    ]
    ours = [line for line in lines if line["event"] in ("cycle planned", "run finished")]
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
    simulator, _config, _worker = daemon_setup(threads=2)
    simulator.add_fault("slow", endpoint="list", delay=2.0)
    time.sleep(2.0)  # the worker is up and waiting, so both messages are taken at once
    enqueue_cycle(namespace)
    enqueue_cycle(namespace)

    wait_for(finished_ok(database_url), what="the run to finish")
    time.sleep(3.0)  # room for a second cycle, which must not appear

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
    time.sleep(6.5)  # three intervals without progress: the stuck run's lease runs out
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
    simulator, _config, _worker = daemon_setup(invoices=450, threads=1)
    simulator.add_fault("slow", endpoint="fetch", delay=1.5)
    enqueue_cycle(namespace)
    wait_for(lambda: any(r.batches for r in runs(database_url)), what="the cycle to plan")

    drop_namespace(namespace)  # FLUSHALL, as far as this deployment can see
    time.sleep(2.5)  # whatever batch the worker already held finishes
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
    simulator, _config, _worker = daemon_setup(
        invoices=1500,
        threads=4,
        sim={"rate_limit": 5, "rate_window": 1.0},
        rate_limit="5",
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

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers",
            "--config",
            str(config),
            "sync",
            "--full",
            "--wait",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env={**os.environ, TOKEN_ENV: TOKEN},
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "acme: cycle enqueued, message" in result.stdout
    header, row = result.stdout.splitlines()[1:3]
    values = dict(zip(header.split(), row.split(), strict=True))
    assert (values["listed"], values["changed"], values["status"]) == ("120", "1", "ok")
    assert values["requests"] == "3", "a full resync refetches every invoice"
    assert TOKEN not in result.stdout + result.stderr
    assert_mirror_equals(make_engine(database_url), simulator)


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
    time.sleep(3.0)  # a retry would show up as a second request

    (run,) = runs(database_url)
    assert run.status == "failed" and "401" in run.error and run.finished_at is not None
    assert len(simulator.requests) == 1
    assert TOKEN not in run.error and TOKEN not in worker.log.read_text()
