"""The daemon's dramatiq actors: `dramatiq workers.actors` (or `invoice-sync worker`) runs them.

Worker processes read the config named by `$INVOICE_SYNC_CONFIG` (else ./invoice-sync.toml).
Transient failures (network, 5xx, 429 after the client's own retries, database unavailable) are
retried by dramatiq with jittered exponential backoff; permanent ones (bad token, config) are not.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from connectors.errors import PermanentError
from connectors.streams import INVOICES
from workers import broker as broker_module
from workers.app import App
from workers.config import ConfigError, load_config
from workers.daemon import Daemon
from workers.engine import MassDeletionBlocked
from workers.logs import configure as configure_logging
from workers.metrics import Metrics, NoMetrics

if broker_module._broker is None:  # a worker process: configure from the environment
    configure_logging()
    broker_module.configure(load_config(None), worker=True)

CYCLE_TIME_LIMIT_MS = 10 * 60 * 1000
BATCH_TIME_LIMIT_MS = 10 * 60 * 1000
PERMANENT = (PermanentError, ConfigError, MassDeletionBlocked)
#: the actors that run one step for the deployment or a source after a sync (reconciliation,
#: write-back)
RUN_OPTIONS: dict[str, Any] = {
    "queue_name": broker_module.QUEUE,
    "max_retries": 5,
    "min_backoff": 5_000,
    "max_backoff": 120_000,
    "time_limit": CYCLE_TIME_LIMIT_MS,
    "throws": PERMANENT,
}


_daemon: Daemon | None = None
_daemon_lock = threading.Lock()


def daemon() -> Daemon:
    """One per worker process, made by whichever thread gets the first message."""
    global _daemon
    with _daemon_lock:
        if _daemon is None:
            config = broker_module.current_config()
            metrics = Metrics() if config.metrics_port else NoMetrics()
            _daemon = Daemon(
                App.open(config),
                broker_module.redis_client(config),
                metrics,
                send_reconcile=_send_reconcile,
                send_push=_send_push,
            )
        return _daemon


@dramatiq.actor(
    queue_name=broker_module.QUEUE,
    max_retries=5,
    min_backoff=2_000,
    max_backoff=120_000,
    time_limit=CYCLE_TIME_LIMIT_MS,
    throws=PERMANENT,
)
def sync_cycle(source: str, full: bool = False, stream: str = INVOICES) -> None:
    daemon().cycle(source, full, _enqueue_batch, _retrigger, stream)


@dramatiq.actor(
    queue_name=broker_module.QUEUE,
    max_retries=8,
    min_backoff=2_000,
    max_backoff=300_000,
    time_limit=BATCH_TIME_LIMIT_MS,
    throws=PERMANENT,
)
def sync_batch(
    source: str,
    run_id: int,
    batch_no: int,
    ids: list[str],
    versions: list[str | None],
    full: bool,
    stream: str = INVOICES,
    listed: dict[str, str] | None = None,
) -> None:
    try:
        daemon().batch(source, run_id, batch_no, ids, versions, full, stream, listed)
    except PERMANENT:
        raise
    except Exception as exc:
        daemon().batch_failed(run_id, exc, final=_last_attempt(sync_batch))
        raise


def _last_attempt(actor: dramatiq.Actor[..., None]) -> bool:
    """True when dramatiq will not retry the current message if it fails now."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    retries = message.options.get("retries", 0)
    return bool(retries >= message.options.get("max_retries", actor.options["max_retries"]))


@dramatiq.actor(
    queue_name=broker_module.QUEUE,
    max_retries=3,
    min_backoff=5_000,
    max_backoff=60_000,
    time_limit=BATCH_TIME_LIMIT_MS,
    throws=PERMANENT,
)
def scan_bank_inbox() -> None:
    daemon().scan_inbox()


@dramatiq.actor(**RUN_OPTIONS)
def reconcile_run(full: bool = False) -> None:
    """Match bank transactions to invoices: after every sync run and bank import, coalesced."""
    daemon().reconcile(full)


@dramatiq.actor(**RUN_OPTIONS)
def push_payments(source: str) -> None:
    """Write-back after a reconciliation run, for a source with `write_back = "apply"`. A retry
    is safe: every push is claimed in the database and looked for at the source before it is
    sent again."""
    daemon().push_payments(source)


def _send_push(source: str) -> None:
    push_payments.send(source)


def _send_reconcile(full: bool, delay_ms: int) -> None:
    reconcile_run.send_with_options(args=(full,), delay=delay_ms or None)


def _retrigger(source: str, full: bool, delay_ms: int, stream: str) -> None:
    sync_cycle.send_with_options(args=(source, full, stream), delay=delay_ms)


def _enqueue_batch(
    source: str,
    run_id: int,
    batch_no: int,
    ids: list[str],
    versions: list[str | None],
    full: bool,
    stream: str,
    listed: dict[str, str] | None,
) -> None:
    sync_batch.send(source, run_id, batch_no, ids, versions, full, stream, listed)
