"""What the daemon's two actors do, kept apart from dramatiq so it reads (and tests) plainly.

A cycle plans (lists, diffs, marks deletions) under a per-source Redis mutex and enqueues one
batch message per <= 100 ids; batch messages fetch and write exactly as the inline path does
(`workers.engine`). Durable state is the database: a run is finished when as many batches have
reported in `sync_run_batches` as it enqueued. Redis only holds triggers, the mutex, the shared
rate-limit window and a marker saying the run's batches are still queued; if Redis loses them,
the next cycle sees the marker gone, closes the run as interrupted and re-derives the work from
the versions in the mirror.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import redis
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from connectors.base import NO_HISTORY
from connectors.errors import PermanentError
from connectors.ratelimit import Limiter
from connectors.records import RawJSON
from connectors.source import SourceConfig
from connectors.streams import INVOICES
from connectors.versions import behind
from store.mirror import utcnow
from store.pushes import PushStore
from workers.app import App
from workers.config import ConfigError
from workers.engine import MassDeletionBlocked, plan_cycle, refresh_statistics, sync_batch
from workers.limiter import RedisWindowLimiter, account_key
from workers.logs import describe_error, get_logger
from workers.metrics import Metrics, NoMetrics
from workers.write_back import SourcePush, plan, push_source

MARKER_TTL = dt.timedelta(hours=6)
#: a write-back message begins no push after this long (well inside the actor's time limit);
#: what is left goes to a new message
PUSH_RUN_SECONDS = 5 * 60
CYCLE_LOCK_TTL_MS = 15 * 60 * 1000

#: (source, run id, batch no, ids, versions, full, stream, listed records): send one batch message
EnqueueBatch = Callable[
    [str, int, int, list[str], list[str | None], bool, str, dict[str, str] | None], None
]
#: (source, full, delay in ms, stream): send a cycle message again later
Retrigger = Callable[[str, bool, int, str], None]


SendReconcile = Callable[[bool, int], None]
#: (source): send a write-back message for a source
SendPush = Callable[[str], None]
#: how long a reconciliation asked for waits for a running one to end before it asks again
RECONCILE_RETRY_MS = 5_000
#: a lost request flag (Redis restarted, a message dropped) stops coalescing for at most this
RECONCILE_WANTED_TTL = 15 * 60


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    run_id: int | None
    batches: int
    coalesced: bool
    reason: str = ""


class Daemon:
    """Shared by the actors of one worker process: one App, one Redis client."""

    def __init__(
        self,
        app: App,
        client: redis.Redis,
        metrics: Metrics | NoMetrics | None = None,
        send_reconcile: SendReconcile | None = None,
        send_push: SendPush | None = None,
    ) -> None:
        self.app = app
        self.redis = client
        self.metrics = metrics or NoMetrics()
        self.namespace = app.config.redis_namespace
        self._mutex_backend = RedisBackend(client=client)
        #: puts a reconciliation message on the queue: (full, delay in ms)
        self.send_reconcile = send_reconcile
        #: puts a write-back message for a source on the queue
        self.send_push = send_push

    def limiter(self, source: SourceConfig) -> Limiter | None:
        if not source.rate_limit:
            return None
        key = account_key(self.namespace, source.kind, self.app.config.token(source))
        return RedisWindowLimiter(self.redis, key, source.rate_limit, source.rate_window)

    def _marker(self, run_id: int) -> str:
        return f"{self.namespace}:run:{run_id}:queued"

    def cycle(
        self,
        source_name: str,
        full: bool,
        enqueue: EnqueueBatch,
        retrigger: Retrigger | None = None,
        stream: str = INVOICES,
    ) -> CycleOutcome:
        """Plan one cycle and enqueue its batches; a trigger while one runs is coalesced.

        A full resync is never coalesced into a normal cycle: it is recorded as a `pending`
        run and `retrigger` sends it again later; whichever cycle of the source starts next
        (this message again, or a scheduled one if Redis lost it) runs it.
        """
        source = self.app.config.source(source_name)
        log = get_logger(source=source_name, stream=stream)
        runs = self.app.runs
        mutex = ConcurrentRateLimiter(
            self._mutex_backend,
            f"{self.namespace}:cycle:{source_name}" + ("" if stream == INVOICES else f":{stream}"),
            limit=1,
            ttl=CYCLE_LOCK_TTL_MS,
        )
        with mutex.acquire(raise_on_failure=False) as acquired:
            if not acquired:
                if full and not self._full_in_progress(source_name, stream):
                    return self._defer_full(source, retrigger, stream)
                log.info("cycle coalesced: another cycle of this source is listing")
                return CycleOutcome(None, 0, True, "listing")
            previous = runs.running(source_name, stream)
            if previous is not None:
                lease = dt.timedelta(seconds=3 * source.interval)
                alive = utcnow() - runs.last_progress(previous["id"]) < lease
                if alive and self.redis.exists(self._marker(previous["id"])):
                    if full and not previous["full_resync"]:
                        return self._defer_full(source, retrigger, stream)
                    log.info(
                        "cycle coalesced: the previous run's batches are in flight",
                        previous_run_id=previous["id"],
                    )
                    return CycleOutcome(None, 0, True, "batches in flight")
                runs.interrupt_running(
                    source_name,
                    utcnow(),
                    "its batches stopped reporting (Redis flushed or restarted, or a worker "
                    "died); a new cycle re-derived the work",
                    stream,
                )
            pending = runs.pending_full(source_name, stream)
            if pending is not None and runs.promote(pending, utcnow()):
                log.info("running the full resync that waited", run_id=pending)
                return self._plan(source, True, enqueue, stream, run_id=pending)
            return self._plan(source, full, enqueue, stream)

    def _full_in_progress(self, source_name: str, stream: str) -> bool:
        running = self.app.runs.running(source_name, stream)
        return running is not None and bool(running["full_resync"])

    def _defer_full(
        self, source: SourceConfig, retrigger: Retrigger | None, stream: str
    ) -> CycleOutcome:
        """Record the full resync durably and come back when the running cycle may be done."""
        runs = self.app.runs
        pending = runs.pending_full(source.name, stream)
        if pending is None:
            pending = runs.start(
                source.name, full=True, when=utcnow(), status="pending", stream=stream
            )
        delay = min(max(source.interval / 4, 1.0), 30.0)
        if retrigger is not None:
            retrigger(source.name, True, int(delay * 1000), stream)
        get_logger(source=source.name, run_id=pending).info(
            "full resync deferred: a normal cycle is running; it runs when that one ends",
            retry_in_seconds=delay,
        )
        return CycleOutcome(pending, 0, False, "full resync deferred")

    def _plan(
        self,
        source: SourceConfig,
        full: bool,
        enqueue: EnqueueBatch,
        stream: str,
        run_id: int | None = None,
    ) -> CycleOutcome:
        runs = self.app.runs
        if run_id is None:
            run_id = runs.start(source.name, full=full, when=utcnow(), stream=stream)
        try:
            with self.app.connector(source, self.limiter(source)) as connector:
                try:
                    plan = plan_cycle(
                        connector.stream(stream),
                        self.app.mirror_of(stream),
                        run_id,
                        full=full,
                        mass_delete_fraction=source.mass_delete_fraction,
                        history=NO_HISTORY
                        if full
                        else runs.listing_history(source.name, stream, before=run_id),
                    )
                finally:
                    self.metrics.batch(
                        source.name,
                        requests=connector.requests,
                        throttled=connector.throttled,
                        written=0,
                    )
                requests = connector.requests
                batch_size = connector.batch_size
        except MassDeletionBlocked as exc:
            self._fail(run_id, exc, status="blocked")
            raise
        except Exception as exc:  # recorded, then retried by dramatiq as a new run
            self._fail(run_id, exc)
            raise
        counts = plan.counts()
        batches = plan.to_fetch.batch_count(batch_size)
        if batches:
            self.redis.set(self._marker(run_id), "1", ex=MARKER_TTL)
        runs.expect_batches(
            run_id,
            batches,
            {**counts, "requests": requests},
            plan.complete,
            None if batches else plan.listing_digest,  # batches land later, each on its own
        )
        for batch_no, planned in enumerate(plan.batches(batch_size)):
            ids = [remote_id for remote_id, _version in planned]
            versions = [version for _remote_id, version in planned]
            # A snapshot's records travel in the message: the batch needs no request for them.
            listed: dict[str, str] = {i: plan.records[i] for i in ids if i in plan.records}
            enqueue(source.name, run_id, batch_no, ids, versions, full, stream, listed or None)
        plan.to_fetch.close()
        if runs.complete_if_done(run_id, utcnow()):
            self._finished(source.name, run_id)
        get_logger(source=source.name, run_id=run_id).info(
            "cycle planned", batches=batches, **counts
        )
        return CycleOutcome(run_id, batches, False)

    def batch(
        self,
        source_name: str,
        run_id: int,
        batch_no: int,
        ids: list[str],
        versions: list[str | None] | list[int],
        full: bool,
        stream: str = INVOICES,
        listed: dict[str, str] | None = None,
    ) -> None:
        """Fetch and write one batch, then report it; safe to run twice.

        Ids the mirror already holds at the planned version (another delivery of this message,
        or a superseded cycle's twin) are not fetched again, unless this is a full resync.
        `listed` holds a snapshot listing's records of these ids.
        """
        source = self.app.config.source(source_name)
        runs = self.app.runs
        # str(): a message queued before versions became text carries integers
        planned = {i: None if v is None else str(v) for i, v in zip(ids, versions, strict=True)}
        mirror = self.app.mirror_of(stream)
        from connectors.registry import ordered_versions

        ordered = ordered_versions(source.kind)
        needed, refresh = ids, set()
        if not full:
            stored = mirror.stored_versions(source_name, ids)
            needed = behind(planned, stored, ordered)
            # mirrored ids listed without a version count as unchanged until a batch writes them
            refresh = {i for i in needed if planned[i] is None and i in stored}
        written = quarantined = requests = changed = 0
        try:
            if needed:
                with self.app.connector(source, self.limiter(source)) as connector:
                    result = sync_batch(
                        connector.stream(stream),
                        mirror,
                        needed,
                        run_id=run_id,
                        full=full,
                        listed={i: RawJSON(t) for i, t in (listed or {}).items()},
                    )
                    written, quarantined = result.written, result.quarantined
                    requests = connector.requests
                    changed = len(refresh.intersection(result.written_ids))
                    self.metrics.batch(
                        source_name,
                        requests=requests,
                        throttled=connector.throttled,
                        written=written,
                    )
        except (PermanentError, ConfigError) as exc:
            self._fail(run_id, exc)
            raise
        runs.batch_done(
            run_id,
            batch_no,
            requested=len(ids),
            written=written,
            quarantined=quarantined,
            requests=requests,
            when=utcnow(),
            changed=changed,
        )
        if runs.complete_if_done(run_id, utcnow()):
            self._finished(source_name, run_id)

    def scan_inbox(self) -> int:
        """Import what settled in the bank inbox; one scan at a time per deployment."""
        from workers.inbox import scan_inbox

        inbox = self.app.config.bank_inbox
        if inbox is None:
            return 0
        if not inbox.is_dir():
            raise ConfigError(f"{self.app.config.path}: bank_inbox: {inbox} is not a directory")
        mutex = ConcurrentRateLimiter(
            self._mutex_backend, f"{self.namespace}:bank-inbox", limit=1, ttl=CYCLE_LOCK_TTL_MS
        )
        with mutex.acquire(raise_on_failure=False) as acquired:
            if not acquired:
                return 0
            imported = scan_inbox(self.app.bank, inbox)
        if any(result.status == "ok" and result.new for result in imported):
            self.request_reconcile()
        return len(imported)

    # -- reconciliation -------------------------------------------------------------------------

    def _reconcile_wanted(self) -> str:
        return f"{self.namespace}:reconcile:wanted"

    def request_reconcile(self) -> bool:
        """Ask for a reconciliation after new data. Coalesced: while one request waits in the
        queue, more add nothing; one made during a run causes exactly one more run after it.
        Returns whether a message was sent."""
        if self.send_reconcile is None:
            return False
        if not self.redis.set(self._reconcile_wanted(), "1", nx=True, ex=RECONCILE_WANTED_TTL):
            return False
        self.send_reconcile(False, 0)
        return True

    def reconcile(self, full: bool = False) -> str:
        """One run at a time per deployment; a message that finds one running comes back after
        it. Returns the run's status, or `deferred`."""
        from workers.reconciliation.engine import reconcile

        mutex = ConcurrentRateLimiter(
            self._mutex_backend, f"{self.namespace}:reconcile", limit=1, ttl=CYCLE_LOCK_TTL_MS
        )
        with mutex.acquire(raise_on_failure=False) as acquired:
            if not acquired:
                if self.send_reconcile is not None:
                    self.send_reconcile(full, RECONCILE_RETRY_MS)
                return "deferred"
            self.redis.delete(self._reconcile_wanted())
            result = reconcile(self.app.engine, full=full)
        get_logger(run_id=result.run_id).info(
            "reconciliation finished",
            status=result.status,
            transactions=result.transactions,
            automatic=sum(result.rules.values()),
            suggestions=result.suggestions,
            seconds=result.seconds,
        )
        if self.send_push is not None:  # also after an unchanged run: a push may be due again
            for source in self.app.config.sources:
                if source.write_back == "apply":
                    self.send_push(source.name)
        return result.status

    def push_payments(self, source_name: str) -> SourcePush | None:
        """Write-back for one source (`write_back = "apply"`), paced by the account's shared
        rate limiter; one at a time per source (None: another is running, or it is not on)."""
        source = self.app.config.source(source_name)
        if source.write_back != "apply":
            return None
        store = PushStore(self.app.engine)
        mutex = ConcurrentRateLimiter(
            self._mutex_backend,
            f"{self.namespace}:push:{source_name}",
            limit=1,
            ttl=CYCLE_LOCK_TTL_MS,
        )
        with mutex.acquire(raise_on_failure=False) as acquired:
            if not acquired:
                return None
            plan(store, [source_name])
            with self.app.connector(source, self.limiter(source)) as connector:
                result = push_source(store, connector, source_name, seconds=PUSH_RUN_SECONDS)
        if result.more and self.send_push is not None:
            self.send_push(source_name)
        get_logger(source=source_name).info(
            "payment pushes finished",
            **Counter(o.outcome.replace(" ", "_") for o in result.outcomes),
            in_flight=result.in_flight,
            stopped=result.stopped,
        )
        return result

    def batch_failed(self, run_id: int, exc: BaseException, *, final: bool) -> None:
        """A batch failed transiently: its run shows the error now, and fails with it once
        dramatiq has no retries left (the run would otherwise wait for the lease to expire)."""
        error = describe_error(exc)
        get_logger(run_id=run_id).warning("batch failed", error=error, final=final)
        if final:
            self._fail(run_id, exc)
        else:
            self.app.runs.note_error(run_id, error)

    def _fail(self, run_id: int, exc: BaseException, status: str = "failed") -> None:
        self.app.runs.finish(
            run_id, status=status, when=utcnow(), counts={}, error=describe_error(exc)
        )
        self.redis.delete(self._marker(run_id))

    def _finished(self, source_name: str, run_id: int) -> None:
        self.redis.delete(self._marker(run_id))
        self.request_reconcile()
        run = self.app.runs.get(run_id)
        log = get_logger(source=source_name, run_id=run_id)
        written = (run["new"] or 0) + (run["changed"] or 0)
        refresh_statistics(self.app.mirror_of(run["stream"]), written, run["listed"] or 0, log)
        self.metrics.run_finished(source_name, run, lambda: self.app.runs.status([source_name])[0])
        log.info("run finished", requests=run["requests"], quarantined=run["quarantined"])
