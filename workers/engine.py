"""The sync engine, shared by every connector and by both the inline CLI and the daemon.

A cycle is: list ids and versions -> diff against the mirror -> soft-delete what vanished ->
fetch and write what is new or changed, in batches, one transaction each. `plan_cycle` and
`sync_batch` are the two units the daemon's actors run; `run_cycle` strings them together
in-process for `invoice-sync sync --inline`.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Connector
from connectors.errors import ConnectorError
from connectors.records import Invoice
from store.mirror import Mirror, Quarantined, utcnow
from store.runs import RUN_COUNTERS, Runs
from workers.logs import describe_error, get_logger

PLAN_COUNTERS = ("listed", "new", "changed", "unchanged", "deleted", "restored")


@dataclass(slots=True)
class CyclePlan:
    source: str
    run_id: int
    full: bool
    listed: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    restored: int = 0
    to_fetch: list[str] = field(default_factory=list)
    #: the listed version of every id (the listing itself, not a copy)
    versions: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """What the listing and diff found, as `sync_runs` records it."""
        return {name: getattr(self, name) for name in PLAN_COUNTERS}

    def batches(self, size: int) -> list[list[str]]:
        return [self.to_fetch[i : i + size] for i in range(0, len(self.to_fetch), size)]


@dataclass(frozen=True, slots=True)
class BatchResult:
    requested: int
    written: int
    not_newer: int
    quarantined: int
    missing: int


@dataclass(slots=True)
class CycleResult:
    source: str
    run_id: int | None
    status: str
    listed: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    restored: int = 0
    quarantined: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> CycleResult:
        """Rebuild the summary of a run the daemon did, from its `sync_runs` row."""
        finished, started = run["finished_at"], run["started_at"]
        return cls(
            source=run["source"],
            run_id=run["id"],
            status=run["status"],
            **{name: run[name] for name in RUN_COUNTERS},
            seconds=round((finished - started).total_seconds(), 3) if finished else 0.0,
            error=run["error"],
        )

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RUN_COUNTERS}


def plan_cycle(connector: Connector, mirror: Mirror, run_id: int, *, full: bool) -> CyclePlan:
    """List, diff and record deletions; returns the ids that must be fetched.

    Ids listed again after a deletion are made live again here without a fetch when their
    version is unchanged; a quarantined id is fetched again every cycle until it validates.
    """
    source = connector.name
    listing = connector.list_versions()
    state = mirror.state(source)
    plan = CyclePlan(source=source, run_id=run_id, full=full, listed=len(listing), versions=listing)
    restore: list[str] = []
    for remote_id, version in listing.items():
        stored = state.live.get(remote_id)
        if stored is None:
            stored = state.deleted.get(remote_id)
            if stored is None:
                plan.new += 1
                plan.to_fetch.append(remote_id)
                continue
            plan.restored += 1
            if version <= stored and not full:
                restore.append(remote_id)
                continue
        if version > stored:
            plan.changed += 1
            plan.to_fetch.append(remote_id)
            continue
        plan.unchanged += 1
        if full or remote_id in state.quarantined:
            plan.to_fetch.append(remote_id)
    vanished = [remote_id for remote_id in state.live if remote_id not in listing]
    if vanished:
        plan.deleted = mirror.mark_deleted(source, vanished, utcnow())
    if restore:
        mirror.restore(source, restore)
    gone_from_quarantine = [i for i in state.quarantined if i not in listing]
    if gone_from_quarantine:
        mirror.release_quarantine(source, gone_from_quarantine, utcnow())
    return plan


def sync_batch(
    connector: Connector,
    mirror: Mirror,
    remote_ids: Sequence[str],
    *,
    run_id: int | None,
    full: bool,
) -> BatchResult:
    """Fetch, normalize and write one batch (the unit a batch message carries); a bad record
    is quarantined and the rest of the batch lands in one transaction."""
    log = get_logger(source=connector.name, run_id=run_id)
    by_id: dict[str, Invoice] = {}
    quarantined: list[Quarantined] = []
    for record, raw in connector.fetch_batch(remote_ids):
        try:
            invoice = connector.normalize(record, raw)
        except (ValueError, TypeError, ArithmeticError) as exc:
            remote_id, version = connector.identify(record)
            if remote_id is None:
                remote_id = "unidentified-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
            error = f"{type(exc).__name__}: {exc}"
            log.warning("record quarantined", remote_id=remote_id, version=version, error=error)
            quarantined.append(Quarantined(remote_id, version, error, raw))
            continue
        current = by_id.get(invoice.remote_id)
        if current is None or invoice.remote_version > current.remote_version:
            by_id[invoice.remote_id] = invoice
    write = mirror.write_batch(
        connector.name, list(by_id.values()), quarantined, run_id=run_id, rewrite_same_version=full
    )
    returned = set(by_id) | {q.remote_id for q in quarantined}
    return BatchResult(
        requested=len(remote_ids),
        written=write.written,
        not_newer=write.not_newer,
        quarantined=write.quarantined,
        missing=sum(1 for remote_id in remote_ids if remote_id not in returned),
    )


def _in_parallel(
    connector: Connector, mirror: Mirror, plan: CyclePlan, run_id: int, workers: int
) -> Iterator[tuple[int, BatchResult]]:
    """Run up to `workers` batches at once, each fetched and written by one thread: the
    network, the database server and this process then work at the same time. At most
    `workers` batches are held in memory."""
    batches = iter(plan.batches(connector.batch_size))
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch") as pool:

        def submit(ids: list[str]) -> Future[BatchResult]:
            return pool.submit(sync_batch, connector, mirror, ids, run_id=run_id, full=plan.full)

        running = {submit(ids) for ids in itertools.islice(batches, workers)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()
                done += outcome.requested
                yield done, outcome
                following = next(batches, None)
                if following is not None:
                    running.add(submit(following))


def run_cycle(
    connector: Connector,
    mirror: Mirror,
    runs: Runs,
    *,
    full: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> CycleResult:
    """One whole cycle in this process, recorded in `sync_runs` whatever happens."""
    started = time.perf_counter()
    run_id = runs.start(connector.name, full=full, when=utcnow())
    result = CycleResult(source=connector.name, run_id=run_id, status="running")
    log = get_logger(source=connector.name, run_id=run_id)
    requests_before = connector.requests
    try:
        plan = plan_cycle(connector, mirror, run_id, full=full)
        plan.versions = {}  # only the daemon's batch messages need them; free the memory now
        for name, value in plan.counts().items():
            setattr(result, name, value)
        if on_progress:
            on_progress(0, len(plan.to_fetch))
        workers = mirror.write_concurrency
        for done, outcome in _in_parallel(connector, mirror, plan, run_id, workers):
            result.quarantined += outcome.quarantined
            if on_progress:
                on_progress(done, len(plan.to_fetch))
        result.status = "ok"
    except (ConnectorError, SQLAlchemyError, OSError) as exc:
        result.status = "failed"
        result.error = describe_error(exc)
        log.error("sync cycle failed", error=result.error)
    finally:
        result.requests = connector.requests - requests_before
        result.seconds = round(time.perf_counter() - started, 3)
        try:
            runs.finish(
                run_id,
                status=result.status if result.status != "running" else "failed",
                when=utcnow(),
                counts=result.counts(),
                error=result.error,
            )
        except SQLAlchemyError as exc:
            log.error("could not record the end of the sync run", error=str(exc))
    log.info("sync cycle finished", **{k: v for k, v in result.as_dict().items() if k != "source"})
    return result
