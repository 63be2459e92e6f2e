"""Bookkeeping of sync cycles (`sync_runs`) and the per-source status ops read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connectors.listing import ListingHistory
from connectors.streams import INVOICES
from store.schema import invoices, sync_errors, sync_run_batches, sync_runs

RUN_COUNTERS = (
    "listed",
    "new",
    "changed",
    "unchanged",
    "deleted",
    "restored",
    "quarantined",
    "requests",
)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    source: str
    last_success_at: dt.datetime | None
    mirrored: int
    deleted: int
    quarantined: int
    last_error: str | None
    last_error_at: dt.datetime | None
    last_status: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "mirrored": self.mirrored,
            "deleted": self.deleted,
            "quarantined": self.quarantined,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
        }


def _of(source: str, stream: str) -> list[Any]:
    return [sync_runs.c.source == source, sync_runs.c.stream == stream]


class Runs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        source: str,
        *,
        full: bool,
        when: dt.datetime,
        status: str = "running",
        stream: str = INVOICES,
    ) -> int:
        with self.engine.begin() as connection:
            return int(
                connection.execute(
                    insert(sync_runs)
                    .values(
                        source=source,
                        started_at=when,
                        status=status,
                        stream=stream,
                        full_resync=full,
                        **{name: 0 for name in RUN_COUNTERS},
                    )
                    .returning(sync_runs.c.id)
                ).scalar_one()
            )

    def pending_full(self, source: str, stream: str = INVOICES) -> int | None:
        """The full resync that waits for the running cycle to end, if one does."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.min(sync_runs.c.id)).where(
                    *_of(source, stream), sync_runs.c.status == "pending"
                )
            ).scalar()

    def promote(self, run_id: int, when: dt.datetime) -> bool:
        """A pending full resync starts now; False if another cycle promoted it first."""
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(sync_runs)
                    .where(sync_runs.c.id == run_id, sync_runs.c.status == "pending")
                    .values(status="running", started_at=when)
                ).rowcount
            )

    def finish(
        self,
        run_id: int,
        *,
        status: str,
        when: dt.datetime,
        counts: dict[str, int],
        error: str | None = None,
        complete_listing: bool | None = None,
        listing_digest: str | None = None,
    ) -> None:
        """`complete_listing`: whether the run's listing named every record (None: it did
        not get that far, and the column stays as it was). `listing_digest`: the digest of
        the listing the run left the mirror equal to, if it did."""
        listing: dict[str, Any] = {"listing_digest": listing_digest}
        if complete_listing is not None:
            listing["complete_listing"] = complete_listing
        with self.engine.begin() as connection:
            connection.execute(
                update(sync_runs)
                .where(sync_runs.c.id == run_id)
                .values(status=status, finished_at=when, error=error, **counts, **listing)
            )

    def listing_history(
        self, source: str, stream: str = INVOICES, *, before: int | None = None
    ) -> ListingHistory:
        """When the last successful run started, and the last whose listing was complete;
        with `before` (the run asking), whether the run just before it left the mirror equal
        to a listing (`ListingHistory.equal_to`). Only the run just before counts: any other
        run in between (failed, interrupted, still running, or one that wrote something else
        than its listing said) may have changed the mirror since."""
        started = sync_runs.c.started_at
        with self.engine.connect() as connection:
            last, complete = connection.execute(
                select(
                    func.max(started),
                    func.max(case((sync_runs.c.complete_listing.is_(True), started))),
                ).where(*_of(source, stream), sync_runs.c.status == "ok")
            ).one()
            previous = None
            if before is not None:
                previous = connection.execute(
                    select(sync_runs.c.status, sync_runs.c.listing_digest, sync_runs.c.listed)
                    .where(*_of(source, stream), sync_runs.c.id < before)
                    .order_by(sync_runs.c.id.desc())
                    .limit(1)
                ).first()
        equal_to = None
        if previous is not None and previous.status == "ok" and previous.listing_digest:
            equal_to = (previous.listing_digest, previous.listed)
        return ListingHistory(last_success=last, last_complete=complete, equal_to=equal_to)

    def note_error(self, run_id: int, error: str) -> None:
        """The latest trouble of a run still in progress (a batch that will be retried)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(sync_runs).where(sync_runs.c.id == run_id).values(error=error)
            )

    def expect_batches(
        self,
        run_id: int,
        batches: int,
        counts: dict[str, int],
        complete_listing: bool,
        listing_digest: str | None = None,
    ) -> None:
        """A daemon cycle has planned: record its counts, whether its listing was complete,
        the digest of a listing it found the mirror equal to (with nothing to fetch), and how
        many batches will report."""
        with self.engine.begin() as connection:
            connection.execute(
                update(sync_runs)
                .where(sync_runs.c.id == run_id)
                .values(
                    batches=batches,
                    complete_listing=complete_listing,
                    listing_digest=listing_digest,
                    **counts,
                )
            )

    def batch_done(
        self,
        run_id: int,
        batch_no: int,
        *,
        requested: int,
        written: int,
        quarantined: int,
        requests: int,
        when: dt.datetime,
        changed: int = 0,
    ) -> bool:
        """Record one finished batch (once, however often it is delivered); True if it was new.
        `changed`: of its ids listed without a version, those it wrote."""
        stmt = (
            (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(
                sync_run_batches
            )
            .values(
                run_id=run_id,
                batch_no=batch_no,
                requested=requested,
                written=written,
                quarantined=quarantined,
                requests=requests,
                finished_at=when,
                changed=changed,
            )
            .on_conflict_do_nothing()
        )
        with self.engine.begin() as connection:
            return bool(connection.execute(stmt).rowcount)

    def complete_if_done(self, run_id: int, when: dt.datetime) -> bool:
        """Finish a daemon run once all its batches reported; run after the batch committed,
        so of two batches finishing together the later one always sees both."""
        done = select(func.count()).where(sync_run_batches.c.run_id == run_id).scalar_subquery()
        totals = {
            name: select(func.coalesce(func.sum(sync_run_batches.c[name]), 0))
            .where(sync_run_batches.c.run_id == run_id)
            .scalar_subquery()
            for name in ("quarantined", "requests", "changed")
        }
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(sync_runs)
                    .where(
                        sync_runs.c.id == run_id,
                        sync_runs.c.status == "running",
                        sync_runs.c.batches.is_not(None),
                        done >= sync_runs.c.batches,
                    )
                    .values(
                        status="ok",
                        error=None,  # a batch's trouble that a retry overcame
                        finished_at=when,
                        quarantined=totals["quarantined"],
                        requests=sync_runs.c.requests + totals["requests"],
                        changed=sync_runs.c.changed + totals["changed"],
                        unchanged=sync_runs.c.unchanged - totals["changed"],
                    )
                ).rowcount
            )

    def latest_id(self, source: str, stream: str = INVOICES) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.coalesce(func.max(sync_runs.c.id), 0)).where(*_of(source, stream))
                ).scalar_one()
            )

    def followed_run(
        self,
        source: str,
        after_id: int,
        absorbing_id: int | None,
        *,
        full: bool = False,
        stream: str = INVOICES,
    ) -> dict[str, Any] | None:
        """For `sync --wait`: the first finished run that answers a trigger sent when `after_id`
        was the newest run; `absorbing_id` is the run that was running then, which absorbs a
        coalesced trigger. A full resync is answered only by a full run."""
        covers = sync_runs.c.id > after_id
        if absorbing_id is not None:
            covers = covers | (sync_runs.c.id == absorbing_id)
        conditions = [
            *_of(source, stream),
            sync_runs.c.status.not_in(("running", "pending")),
            covers,
        ]
        if full:
            conditions.append(sync_runs.c.full_resync.is_(True))
        with self.engine.connect() as connection:
            row = connection.execute(
                select(sync_runs).where(*conditions).order_by(sync_runs.c.id).limit(1)
            ).first()
        return dict(row._mapping) if row else None

    def running(self, source: str, stream: str = INVOICES) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(sync_runs)
                .where(*_of(source, stream), sync_runs.c.status == "running")
                .order_by(sync_runs.c.id.desc())
                .limit(1)
            ).first()
        return dict(row._mapping) if row else None

    def last_progress(self, run_id: int) -> dt.datetime:
        """When a run last showed life: its newest finished batch, else its start."""
        with self.engine.connect() as connection:
            started = connection.execute(
                select(sync_runs.c.started_at).where(sync_runs.c.id == run_id)
            ).scalar_one()
            latest = connection.execute(
                select(func.max(sync_run_batches.c.finished_at)).where(
                    sync_run_batches.c.run_id == run_id
                )
            ).scalar()
        return max(started, latest) if latest is not None else started

    def interrupt_running(
        self, source: str, when: dt.datetime, reason: str, stream: str = INVOICES
    ) -> int:
        """Close runs whose batches will never all report (lost with Redis, say)."""
        with self.engine.begin() as connection:
            return connection.execute(
                update(sync_runs)
                .where(*_of(source, stream), sync_runs.c.status == "running")
                .values(status="interrupted", finished_at=when, error=reason)
            ).rowcount

    def get(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(select(sync_runs).where(sync_runs.c.id == run_id)).one()
        return dict(row._mapping)

    def last_status(self, source: str, stream: str = INVOICES) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(sync_runs.c.status)
                .where(*_of(source, stream), sync_runs.c.status != "pending")
                .order_by(sync_runs.c.id.desc())
                .limit(1)
            ).scalar()

    def last_success(self, source: str, stream: str = INVOICES) -> dt.datetime | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.max(sync_runs.c.finished_at)).where(
                    *_of(source, stream), sync_runs.c.status == "ok"
                )
            ).scalar()

    def status(self, sources: list[str]) -> list[SourceStatus]:
        """Per source, its invoice stream (the other streams: `last_success`, `running`)."""
        result = []
        with self.engine.connect() as connection:
            for source in sources:
                last_success = connection.execute(
                    select(func.max(sync_runs.c.finished_at)).where(
                        *_of(source, INVOICES), sync_runs.c.status == "ok"
                    )
                ).scalar()
                mirrored, deleted = connection.execute(
                    select(
                        func.count(invoices.c.id) - func.count(invoices.c.deleted_at),
                        func.count(invoices.c.deleted_at),
                    ).where(invoices.c.source == source)
                ).one()
                quarantined = connection.execute(
                    select(func.count()).where(
                        sync_errors.c.source == source, sync_errors.c.resolved_at.is_(None)
                    )
                ).scalar_one()
                last = connection.execute(
                    select(sync_runs.c.status)
                    .where(*_of(source, INVOICES))
                    .order_by(sync_runs.c.id.desc())
                    .limit(1)
                ).scalar()
                error_row = connection.execute(
                    select(sync_runs.c.error, sync_runs.c.finished_at)
                    .where(sync_runs.c.source == source, sync_runs.c.error.is_not(None))
                    .order_by(sync_runs.c.id.desc())
                    .limit(1)
                ).first()
                result.append(
                    SourceStatus(
                        source=source,
                        last_success_at=last_success,
                        mirrored=int(mirrored or 0),
                        deleted=int(deleted or 0),
                        quarantined=int(quarantined),
                        last_error=error_row[0] if error_row else None,
                        last_error_at=error_row[1] if error_row else None,
                        last_status=last,
                    )
                )
        return result
