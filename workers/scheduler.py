"""The scheduler process: APScheduler jobs that only enqueue messages: a cycle per source on its
interval, the bank inbox scan every minute, a reconciliation every 15 minutes.

Run exactly one scheduler per deployment: two would double every trigger (harmless, since a
second trigger is coalesced, but wasteful). Missed runs (the process was down or busy) are
coalesced into one and run late within one interval, never replayed in a burst.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from workers.config import AppConfig
from workers.logs import get_logger

#: how often the bank inbox is scanned (`bank_inbox` in the config)
INBOX_INTERVAL = 60.0
#: how often a reconciliation is asked for besides after each sync run and import: a safety net
#: for a request lost with Redis, or money imported with `import-bank` on the command line (a
#: run with nothing new ends at its watermark)
RECONCILE_INTERVAL = 900.0


def add_jobs(
    scheduler: BaseScheduler,
    config: AppConfig,
    enqueue: Callable[[str, str], object],
    enqueue_inbox: Callable[[], object] | None = None,
    enqueue_reconcile: Callable[[], object] | None = None,
) -> None:
    """One job per source (a cycle of each of its streams), the inbox scan if there is an
    inbox, and a periodic reconciliation."""
    if enqueue_reconcile is not None:
        scheduler.add_job(
            enqueue_reconcile,
            IntervalTrigger(seconds=RECONCILE_INTERVAL),
            id="reconcile",
            name="reconciliation",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(RECONCILE_INTERVAL),
            replace_existing=True,
        )
    if config.bank_inbox is not None and enqueue_inbox is not None:
        scheduler.add_job(
            enqueue_inbox,
            IntervalTrigger(seconds=INBOX_INTERVAL),
            id="bank-inbox",
            name="bank inbox scan",
            next_run_time=dt.datetime.now(dt.UTC),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(INBOX_INTERVAL),
            replace_existing=True,
        )
    for source in config.sources:
        scheduler.add_job(
            _trigger,
            IntervalTrigger(seconds=source.interval),
            args=(source.name, source.streams, enqueue),
            id=f"cycle:{source.name}",
            name=f"sync cycle of {source.name}",
            next_run_time=dt.datetime.now(dt.UTC),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(source.interval)),
            replace_existing=True,
        )


def _trigger(source: str, streams: tuple[str, ...], enqueue: Callable[[str, str], object]) -> None:
    for stream in streams:
        message = enqueue(source, stream)
        get_logger(source=source, stream=stream).info(
            "cycle enqueued", message_id=getattr(message, "message_id", None)
        )


def run_scheduler(
    config: AppConfig,
    enqueue: Callable[[str, str], object],
    enqueue_inbox: Callable[[], object] | None = None,
    enqueue_reconcile: Callable[[], object] | None = None,
) -> None:
    scheduler = BlockingScheduler(timezone=dt.UTC)
    add_jobs(scheduler, config, enqueue, enqueue_inbox, enqueue_reconcile)
    get_logger().info("scheduler started", sources=[s.name for s in config.sources])
    scheduler.start()
