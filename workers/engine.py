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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from connectors.base import NO_HISTORY, NOTHING_LISTED, Listing, ListingHistory, RecordStream
from connectors.errors import ConnectorError
from connectors.records import RawJSON
from connectors.spool import SpooledRecords
from connectors.streams import INVOICES
from connectors.versions import is_change, older
from store.mirror import Mirror, Quarantined, Record, utcnow
from store.runs import RUN_COUNTERS, Runs
from workers.fetch_list import FetchList, Planned
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
    #: the ids to fetch with their listed versions (the daemon's batch messages carry them)
    to_fetch: FetchList = field(default_factory=FetchList)
    #: what a snapshot listing said of the ids to fetch (their complete records' text)
    records: dict[str, RawJSON] | SpooledRecords = field(default_factory=dict)
    #: mirrored ids the listing could not judge (no version): fetched, and a change if written
    refresh: set[str] = field(default_factory=set)
    #: whether the listing named every record (it could see deletions) or only changes
    complete: bool = True
    #: the listing's digest, when the mirror equals the listing once every id to fetch is
    #: written at its listed version (at once, when there is nothing to fetch); the run records
    #: it if that is how its batches land
    listing_digest: str | None = None

    def counts(self) -> dict[str, int]:
        """What the listing and diff found, as `sync_runs` records it."""
        return {name: getattr(self, name) for name in PLAN_COUNTERS}

    def batches(self, size: int) -> Iterator[list[Planned]]:
        return self.to_fetch.batches(size)


@dataclass(frozen=True, slots=True)
class BatchResult:
    requested: int
    written: int
    not_newer: int
    quarantined: int
    missing: int
    written_ids: frozenset[str] = frozenset()
    #: records written at another version than the listing named (changed since it was
    #: taken); only counted when the caller passes the listed versions
    off_listing: int = 0
    #: requests sent for the batch by a connector of another process (`workers.batch_processes`);
    #: the cycle's own connector counts those it sends itself
    requests: int = 0

    @property
    def as_listed(self) -> bool:
        """Every requested id was written, each at the version the listing named."""
        return self.written == self.requested and not (
            self.not_newer or self.quarantined or self.missing or self.off_listing
        )


@dataclass(slots=True)
class CycleResult:
    source: str
    run_id: int | None
    status: str
    stream: str = INVOICES
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
            stream=run["stream"],
            **{name: run[name] for name in RUN_COUNTERS},
            seconds=round((finished - started).total_seconds(), 3) if finished else 0.0,
            error=run["error"],
        )

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RUN_COUNTERS}


#: the mass-deletion guard never trips for fewer vanished invoices than this
MASS_DELETE_MIN = 100


class MassDeletionBlocked(Exception):
    """The listing lacks so many live invoices that it is more likely wrong than true."""


def check_mass_deletion(source: str, vanished: int, live: int, fraction: float | None) -> None:
    """Refuse to soft-delete more than `fraction` of a source's live invoices (and at least
    `MASS_DELETE_MIN`) on the word of one listing; `fraction=None` means ops allowed it."""
    if fraction is None or vanished < MASS_DELETE_MIN or vanished <= fraction * live:
        return
    raise MassDeletionBlocked(
        f"mass deletion guard: the listing lacks {vanished:,} of {live:,} live invoices "
        f"({vanished / live:.0%}, more than mass_delete_fraction = {fraction:g} allows); nothing "
        f"was marked deleted or fetched. If the source really deleted them, run "
        f"`invoice-sync sync --inline --source {source} --allow-mass-delete`"
    )


def plan_cycle(
    connector: RecordStream,
    mirror: Mirror,
    run_id: int,
    *,
    full: bool,
    mass_delete_fraction: float | None = None,
    history: ListingHistory = NO_HISTORY,
) -> CyclePlan:
    """List, diff and record deletions; returns the ids that must be fetched.

    The listing is compared with the mirror in the database (`Mirror.compare`), which hands
    back only what differs: memory does not grow with the number of records listed.
    Ids listed again after a deletion are made live again here without a fetch when their
    version is unchanged; a quarantined id is fetched again every cycle until it validates, and
    so is an id whose listed version is None (the listing cannot tell whether it changed).
    Only a complete listing marks what it lacks deleted, and only within the dates it covers;
    for such a windowed listing the connector confirms each absence first (an invoice whose
    date moved out of the window is fetched, not deleted).

    A listing byte for byte the one the previous run left the mirror equal to is not compared
    again (`ListingHistory.equal_to`) while nothing waits in quarantine: nothing has changed at
    the source, and only a run could have changed the mirror since, the last of which left it
    as that listing says (it found it so, or wrote every id it fetched at its listed version).
    """
    source = connector.name
    quarantined = mirror.quarantined(source)
    listing = connector.listing(history)
    plan = CyclePlan(source=source, run_id=run_id, full=full, complete=listing.complete)
    listed_before = _listed_before(listing, history, full)
    if listed_before is not None and not quarantined:
        plan.listed = plan.unchanged = listed_before
        plan.listing_digest = listing.digest
        get_logger(source=source, run_id=run_id).info(
            "listing unchanged since the previous cycle, which left the mirror equal to it"
        )
        return plan
    vanished: list[str] = []
    restore: list[str] = []
    went_back = judged = 0
    ordered = connector.ordered_versions
    seen_quarantined: set[str] = set()

    fetch = plan.to_fetch.append

    with mirror.compare(source, listing.chunks()) as compared:
        for remote_id, version, stored_id, stored, alive in compared.differences(everything=full):
            if remote_id is None:
                if listing.complete and stored_id is not None:
                    vanished.append(stored_id)
                continue
            judged += 1
            if remote_id in quarantined:
                seen_quarantined.add(remote_id)
            if stored is None:
                plan.new += 1
                fetch(remote_id, version)
                continue
            if not alive:
                plan.restored += 1
                if not full and version is not None and not is_change(version, stored, ordered):
                    restore.append(remote_id)
                    continue
            if version is not None and is_change(version, stored, ordered):
                plan.changed += 1
                fetch(remote_id, version)
                continue
            plan.unchanged += 1
            if version is not None and version != stored:
                went_back += older(version, stored)  # only an ordered version gets here
            if version is None:
                plan.refresh.add(remote_id)
            if full or version is None or remote_id in quarantined:
                fetch(remote_id, version)
        plan.listed = compared.listed
        plan.unchanged += plan.listed - judged  # the pairs the database found equal
        unseen = [i for i in quarantined if i not in seen_quarantined]
        listed_quarantined = compared.versions_of(unseen) if unseen else {}
    for remote_id, version in listed_quarantined.items():  # listed unchanged: fetched again
        fetch(remote_id, version)
    if vanished and listing.dated is not None:
        vanished = mirror.dated_within(source, vanished, *listing.dated)
    if mass_delete_fraction is not None and len(vanished) >= MASS_DELETE_MIN:
        check_mass_deletion(source, len(vanished), mirror.live(source), mass_delete_fraction)
    if vanished and listing.dated is not None:
        gone = set(connector.confirm_gone(vanished))
        moved = [remote_id for remote_id in vanished if remote_id not in gone]
        vanished = [remote_id for remote_id in vanished if remote_id in gone]
        # dated out of the window since the last fetch: fetched to learn the new date, and
        # counted as any id listed without a version (changed once written)
        plan.unchanged += len(moved)
        plan.refresh.update(moved)
        for remote_id in moved:
            fetch(remote_id, None)
    if listing.records:
        wanted = set(plan.to_fetch.ids())
        if isinstance(listing.records, SpooledRecords):
            plan.records = listing.records.keep(wanted)  # read from disk as batches start
        else:
            plan.records = {i: raw for i, raw in listing.records.items() if i in wanted}
    if went_back and not full:
        get_logger(source=source, run_id=run_id).warning(
            "listed versions older than the mirror's were kept; `sync --full` takes the source's",
            invoices=went_back,
        )
    if vanished:
        plan.deleted = mirror.mark_deleted(source, vanished, utcnow())
    if restore:
        mirror.restore(source, restore)
    gone_from_quarantine: list[str] = []
    if listing.complete:
        gone_from_quarantine = [
            i for i in quarantined if i not in seen_quarantined and i not in listed_quarantined
        ]
        if gone_from_quarantine:
            mirror.release_quarantine(source, gone_from_quarantine, utcnow())
    if listing.complete and not (full or went_back or plan.refresh):
        plan.listing_digest = listing.digest
    return plan


def _listed_before(listing: Listing, history: ListingHistory, full: bool) -> int | None:
    """How many records the previous run listed, when this listing is the one that run left
    the mirror equal to; else None."""
    if full or not listing.complete or history.equal_to is None:
        return None
    digest, listed = history.equal_to
    return listed if digest == listing.digest else None


def sync_batch(
    connector: RecordStream,
    mirror: Mirror,
    remote_ids: Sequence[str],
    *,
    run_id: int | None,
    full: bool,
    listed: Mapping[str, RawJSON] = NOTHING_LISTED,
    versions: Mapping[str, str | None] | None = None,
) -> BatchResult:
    """Fetch, normalize and write one batch (the unit a batch message carries); a bad record
    is quarantined and the rest of the batch lands in one transaction. `listed` is what a
    snapshot listing already said of these ids; `versions`, the versions the listing named
    (the result then counts what was written at another)."""
    log = get_logger(source=connector.name, run_id=run_id)
    by_id: dict[str, Record] = {}
    quarantined: list[Quarantined] = []
    ordered = connector.ordered_versions
    for record, raw in connector.fetch_batch(remote_ids, listed):
        try:
            normalized: Record = connector.normalize(record, raw)
        except (ValueError, TypeError, ArithmeticError) as exc:
            remote_id, version = connector.identify(record)
            if remote_id is None:
                remote_id = "unidentified-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
            error = f"{type(exc).__name__}: {exc}"
            log.warning("record quarantined", remote_id=remote_id, version=version, error=error)
            quarantined.append(Quarantined(remote_id, version, error, raw))
            continue
        current = by_id.get(normalized.remote_id)
        if (
            current is None
            or not ordered
            or older(current.remote_version, normalized.remote_version)
        ):
            by_id[normalized.remote_id] = normalized
    write = mirror.write_batch(
        connector.name,
        list(by_id.values()),
        quarantined,
        run_id=run_id,
        full=full,
        ordered=ordered,
    )
    returned = set(by_id) | {q.remote_id for q in quarantined}
    off_listing = 0
    if versions is not None:
        off_listing = sum(
            1 for i in write.written_ids if by_id[i].remote_version != versions.get(i)
        )
    return BatchResult(
        requested=len(remote_ids),
        written=write.written,
        not_newer=write.not_newer,
        quarantined=write.quarantined,
        missing=sum(1 for remote_id in remote_ids if remote_id not in returned),
        written_ids=write.written_ids,
        off_listing=off_listing,
    )


def refresh_statistics(mirror: Mirror, written: int, listed: int, log: Any) -> None:
    """After a cycle that grew the mirror (`Mirror.analyze_if_grown`); a failure only logs."""
    try:
        if mirror.analyze_if_grown(written, listed):
            log.info("mirror tables analyzed: the cycle wrote a tenth or more of them")
    except SQLAlchemyError as exc:
        log.warning("could not analyze the mirror's tables", error=str(exc))


class WorkerProcessError(RuntimeError):
    """A batch failed in or with a worker process (`workers.batch_processes`); the message
    says what happened."""


class CycleTimeout(Exception):
    """An inline cycle reached its time limit (`sync --inline --timeout`)."""


@dataclass(frozen=True, slots=True)
class BatchJob:
    """One batch of a cycle, as whoever runs it needs it (see `sync_batch`)."""

    remote_ids: list[str]
    run_id: int
    full: bool
    listed: dict[str, RawJSON]
    versions: dict[str, str | None]

    def run(self, connector: RecordStream, mirror: Mirror) -> BatchResult:
        return sync_batch(
            connector,
            mirror,
            self.remote_ids,
            run_id=self.run_id,
            full=self.full,
            listed=self.listed,
            versions=self.versions,
        )


class Batches(Protocol):
    """Where a cycle's batches are fetched, normalized and written: threads of this process
    (`InThreads`) or worker processes (`workers.batch_processes.BatchProcesses`)."""

    #: batches worth having under way at once
    in_flight: int

    def submit(self, job: BatchJob) -> Future[BatchResult]: ...


#: what offers a cycle worker processes: called with the number of ids to fetch once the cycle
#: is planned, it returns the processes to use, or None to keep the batches in this process
ProcessesFor = Callable[[int], AbstractContextManager[Batches] | None]


class InThreads:
    """Batches in threads of this process: the network, the database server and this process
    then work at the same time, though only one thread runs Python at a time."""

    def __init__(self, connector: RecordStream, mirror: Mirror) -> None:
        self.connector, self.mirror = connector, mirror
        self.in_flight = mirror.write_concurrency
        self._pool = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="batch")

    def __enter__(self) -> InThreads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        return self._pool.submit(job.run, self.connector, self.mirror)


def _in_parallel(
    batches_to: Batches, plan: CyclePlan, run_id: int, batch_size: int, deadline: float | None
) -> Iterator[tuple[int, BatchResult]]:
    """Keep `batches_to.in_flight` batches under way; at most that many are held in memory."""
    batches = iter(plan.batches(batch_size))
    done = 0

    def submit(planned: list[Planned]) -> Future[BatchResult]:
        ids = [remote_id for remote_id, _version in planned]
        listed = {i: plan.records.pop(i) for i in ids if i in plan.records}
        return batches_to.submit(BatchJob(ids, run_id, plan.full, listed, dict(planned)))

    def in_time() -> bool:
        return deadline is None or time.monotonic() < deadline

    first = itertools.islice(batches, batches_to.in_flight if in_time() else 0)
    running = {submit(ids) for ids in first}
    while running:
        finished, running = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            outcome = future.result()
            done += outcome.requested
            yield done, outcome
            if not in_time():
                continue  # let the running batches land, start no more
            following = next(batches, None)
            if following is not None:
                running.add(submit(following))
    if done < len(plan.to_fetch):
        raise CycleTimeout(
            f"stopped at the time limit after {done:,} of {len(plan.to_fetch):,} invoices to "
            "fetch; what was written stays, and the next cycle fetches the rest"
        )


#: run status for failures that are not plain failures
_FAILED_AS = {MassDeletionBlocked: "blocked", CycleTimeout: "interrupted"}


def _expected(exc: BaseException) -> bool:
    """Failures whose message says it all; anything else is logged with its traceback."""
    return isinstance(
        exc, (ConnectorError, SQLAlchemyError, OSError, WorkerProcessError, *_FAILED_AS)
    )


def run_cycle(
    connector: RecordStream,
    mirror: Mirror,
    runs: Runs,
    *,
    full: bool = False,
    mass_delete_fraction: float | None = None,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    processes: ProcessesFor | None = None,
) -> CycleResult:
    """One whole cycle run from this process, recorded in `sync_runs` whatever happens.

    `timeout` (seconds) stops starting batches once it has passed; the run is `interrupted`.
    `processes` may take the batches of a large cycle to worker processes (the listing, the
    diff and the run's record stay here).
    """
    started = time.perf_counter()
    deadline = time.monotonic() + timeout if timeout is not None else None
    run_id = runs.start(connector.name, full=full, when=utcnow(), stream=mirror.stream)
    result = CycleResult(
        source=connector.name, run_id=run_id, status="running", stream=mirror.stream
    )
    log = get_logger(source=connector.name, run_id=run_id)
    requests_before = connector.requests
    requests_elsewhere = 0
    complete_listing: bool | None = None
    listing_digest: str | None = None
    try:
        plan = plan_cycle(
            connector,
            mirror,
            run_id,
            full=full,
            mass_delete_fraction=mass_delete_fraction,
            history=NO_HISTORY
            if full
            else runs.listing_history(connector.name, mirror.stream, before=run_id),
        )
        complete_listing = plan.complete
        for name, value in plan.counts().items():
            setattr(result, name, value)
        if on_progress:
            on_progress(0, len(plan.to_fetch))
        as_listed = True
        elsewhere = processes(len(plan.to_fetch)) if processes is not None else None
        with elsewhere or InThreads(connector, mirror) as batches_to:
            for done, outcome in _in_parallel(
                batches_to, plan, run_id, connector.batch_size, deadline
            ):
                as_listed = as_listed and outcome.as_listed
                result.quarantined += outcome.quarantined
                requests_elsewhere += outcome.requests
                if plan.refresh and not full:
                    seen_changed = len(plan.refresh.intersection(outcome.written_ids))
                    result.changed += seen_changed
                    result.unchanged -= seen_changed
                if on_progress:
                    on_progress(done, len(plan.to_fetch))
        plan.to_fetch.close()
        listing_digest = plan.listing_digest if as_listed else None
        refresh_statistics(mirror, result.new + result.changed, result.listed, log)
        result.status = "ok"
    except Exception as exc:  # whatever it was, the run records it and the source goes on
        result.status = _FAILED_AS.get(type(exc), "failed")
        result.error = describe_error(exc)
        log.error("sync cycle failed", error=result.error)
        if not _expected(exc):
            log.debug("sync cycle failure traceback", exc_info=True)
    finally:
        result.requests = connector.requests - requests_before + requests_elsewhere
        result.seconds = round(time.perf_counter() - started, 3)
        if result.status == "running":  # KeyboardInterrupt, SystemExit
            result.status, result.error = "interrupted", "the process was stopped mid-cycle"
        try:
            runs.finish(
                run_id,
                status=result.status,
                when=utcnow(),
                counts=result.counts(),
                error=result.error,
                complete_listing=complete_listing,
                listing_digest=listing_digest,
            )
        except SQLAlchemyError as exc:
            log.error("could not record the end of the sync run", error=str(exc))
    log.info("sync cycle finished", **{k: v for k, v in result.as_dict().items() if k != "source"})
    return result
