"""The scheduler process: one APScheduler job per source that only enqueues a cycle message.

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


def add_jobs(
    scheduler: BaseScheduler,
    config: AppConfig,
    enqueue: Callable[[str, str], object],
    enqueue_inbox: Callable[[], object] | None = None,
) -> None:
    """One job per source (a cycle of each of its streams) and the inbox scan, if any."""
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
) -> None:
    scheduler = BlockingScheduler(timezone=dt.UTC)
    add_jobs(scheduler, config, enqueue, enqueue_inbox)
    get_logger().info("scheduler started", sources=[s.name for s in config.sources])
    scheduler.start()
