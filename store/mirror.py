"""Reads and writes of the mirror: every write is one transaction and safe to repeat.

Upserts are keyed by (source, remote id) and guarded by the remote version, so a batch that
arrives late (two workers racing, a redelivered message) can never put an older invoice back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    Table,
    column,
    delete,
    event,
    func,
    literal,
    literal_column,
    select,
    table,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from connectors.records import Invoice, RemoteBankTransaction
from connectors.streams import INVOICES
from store.bulk import AlreadyThere, any_present, copy_dicts, copy_new, select_rows
from store.bulk import among as _among
from store.bulk import chunk_size as _chunk_size
from store.bulk import chunks as _chunks
from store.comparison import ListingComparison
from store.schema import invoice_lines, invoices, payments, sync_errors
from store.storable import may_be_unstorable, unstorable
from store.types import RawPayload

_STAGES = "invoice_sync_stages"  # connection.info key: stage tables this session has
#: a cycle that wrote fewer records than this never analyzes (`Mirror.analyze_if_grown`)
ANALYZE_AFTER = 1000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _refused(exc: BaseException) -> bool:
    """The database (or its driver) refused a value, as opposed to being unavailable."""
    if isinstance(exc, DataError | IntegrityError | UnicodeError | OverflowError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return isinstance(exc.orig, TypeError | ValueError | OverflowError)
    psycopg = sys.modules.get("psycopg")  # raised as-is by COPY, which bypasses SQLAlchemy
    return psycopg is not None and isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


def _refusal_text(exc: BaseException) -> str:
    """The driver's own words (they name the column), not SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return f"{type(orig).__name__}: {text[:500]}"


#: what a stream's `normalize` produces and its mirror writes
Record = Invoice | RemoteBankTransaction


def _quarantine_entry(record: Record, error: str) -> Quarantined:
    return Quarantined(record.remote_id, record.remote_version[:100], error, record.raw)


def _set_aside(
    records: list[Any], candidates: Sequence[Record], quarantined: list[Quarantined]
) -> list[Any]:
    """Move the candidates the database cannot hold into `quarantined`; return the rest."""
    bad: set[int] = set()
    for record in candidates:
        problem = unstorable(record)
        if problem is not None:
            bad.add(id(record))
            quarantined.append(_quarantine_entry(record, f"cannot be stored: {problem}"))
    return [r for r in records if id(r) not in bad] if bad else records


#: an upsert's update guard: (the stored version, the arriving row) -> SQL condition; None
#: (a full resync) writes whatever arrives
Guard = Callable[[Any, Any], Any] | None


def _newer(stored: Any, excluded: Any) -> Any:
    """Ordered versions are integers in text: compared as numbers, never as text."""
    return sa_cast(stored, BigInteger) < sa_cast(excluded.remote_version, BigInteger)


def _different(stored: Any, excluded: Any) -> Any:
    return stored.is_distinct_from(excluded.remote_version)


def _guarding(target: Table, guard: Guard) -> Callable[[Any], Any] | None:
    if guard is None:
        return None
    return lambda excluded: guard(target.c.remote_version, excluded)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record that failed validation, kept with its payload until it validates."""

    remote_id: str
    remote_version: str | None
    error: str
    raw: str | None


@dataclass(frozen=True, slots=True)
class BatchWrite:
    written: int
    not_newer: int
    quarantined: int
    #: the remote ids written (not those an older or equal version left alone)
    written_ids: frozenset[str] = frozenset()


def _update_by_ids(
    connection: Connection,
    id_column: Any,
    scope: Sequence[Any],
    remote_ids: Sequence[str],
    *conditions: Any,
    **values: Any,
) -> int:
    """UPDATE the rows in `scope` with these remote ids (and `conditions`); returns the count."""
    count = 0
    for chunk in _chunks(remote_ids, _chunk_size(connection)):
        count += connection.execute(
            update(id_column.table)
            .where(*scope, _among(connection, id_column, chunk), *conditions)
            .values(**values)
        ).rowcount
    return count


def _inserted_flag(connection: Connection) -> Any:
    """In an upsert's RETURNING: true for a row inserted rather than updated (PostgreSQL only)."""
    if connection.dialect.name == "postgresql":
        return literal_column("(xmax = 0)", Boolean())
    return literal(False)


def _insert(connection: Connection, table: object) -> postgresql.Insert | sqlite.Insert:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)  # type: ignore[arg-type]
    if dialect == "sqlite":
        return sqlite.insert(table)  # type: ignore[arg-type]
    raise NotImplementedError(f"database {dialect!r} is not supported (use PostgreSQL or SQLite)")


def _copy_to_stage(
    connection: Connection, target: Table, columns: list[str], rows: list[dict[str, Any]]
) -> None:
    """COPY rows into a per-session temp table shaped like `target`, emptied at commit."""
    name = f"stage_{target.name}"
    created = connection.connection.info.setdefault(_STAGES, set())
    if name not in created:
        names = ", ".join(f'"{c}"' for c in columns)
        connection.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{name}" ON COMMIT DELETE ROWS AS '
            f'SELECT {names} FROM "{target.name}" WITH NO DATA'
        )
        # Staged rows live for one transaction: spend no CPU compressing them.
        for col in target.columns:
            if col.name in columns and isinstance(col.type, RawPayload):
                connection.exec_driver_sql(
                    f'ALTER TABLE "{name}" ALTER COLUMN "{col.name}" SET STORAGE EXTERNAL'
                )
        created.add(name)
    copy_dicts(connection, name, target, columns, rows)


def _forget_stages(connection: Connection) -> None:
    """A rolled-back transaction may have rolled back the creation of the stage tables too."""
    connection.connection.info.pop(_STAGES, None)


def _upsert(
    connection: Connection,
    target: Table,
    rows: list[dict[str, Any]],
    *,
    keys: tuple[str, ...],
    keep: tuple[str, ...] = (),
    overrides: Callable[[Any], dict[str, Any]] | None = None,
    guard: Guard = None,
    returning: tuple[Any, ...] = (),
) -> CursorResult[Any]:
    """INSERT .. ON CONFLICT DO UPDATE for both backends; PostgreSQL stages the rows with COPY.

    `keep` columns are written on insert only; `guard` guards the update (the version check).
    """
    columns = tuple(rows[0])
    staged = connection.dialect.name == "postgresql"
    if staged:
        _copy_to_stage(connection, target, list(columns), rows)
    key = (staged, target, columns, keys, keep, guard, tuple(map(str, returning)))
    stmt = None if overrides else _UPSERTS.get(key)
    if stmt is None:
        stmt = _upsert_statement(connection, target, columns, staged, keys, keep, overrides, guard)
        if returning:
            stmt = stmt.returning(*returning)
        if overrides is None:
            _UPSERTS[key] = stmt
    return connection.execute(stmt, None if staged else rows)


#: upsert statements by what shapes them: built once, not for every batch (building one, with
#: its `excluded` alias, cost more CPU than its COPY)
_UPSERTS: dict[tuple[Any, ...], Any] = {}


def _upsert_statement(
    connection: Connection,
    target: Table,
    columns: tuple[str, ...],
    staged: bool,
    keys: tuple[str, ...],
    keep: tuple[str, ...],
    overrides: Callable[[Any], dict[str, Any]] | None,
    guard: Guard,
) -> Any:
    stmt = _insert(connection, target)
    if staged:
        stage = table(f"stage_{target.name}", *(column(c) for c in columns))
        stmt = stmt.from_select(list(columns), select(*stage.c))
    excluded = stmt.excluded
    set_ = {name: excluded[name] for name in columns if name not in keys and name not in keep}
    if overrides:
        set_.update(overrides(excluded))
    where = _guarding(target, guard)
    return stmt.on_conflict_do_update(
        index_elements=[target.c[k] for k in keys],
        set_=set_,
        where=where(excluded) if where is not None else None,
    )


def _invoice_row(source: str, r: Invoice, now: dt.datetime) -> dict[str, Any]:
    return {
        "source": source,
        "remote_id": r.remote_id,
        "remote_version": r.remote_version,
        "number": r.number,
        "state": r.state,
        "state_raw": r.state_raw,
        "customer_remote_id": r.customer_remote_id,
        "customer_name": r.customer_name,
        "customer_iban": r.customer_iban,
        "credit_note": r.credit_note,
        "invoice_date": r.invoice_date,
        "due_date": r.due_date,
        "currency": r.currency,
        "total_excl_tax": r.total_excl_tax,
        "total_tax": r.total_tax,
        "total_incl_tax": r.total_incl_tax,
        "total_paid": r.total_paid,
        "total_unpaid": r.total_unpaid,
        "payment_reference": r.payment_reference,
        "remote_updated_at": r.remote_updated_at,
        "synced_at": now,
        "deleted_at": None,
        "raw": r.raw,
    }


class Mirror:
    """The store's public surface for the sync engine: the invoice stream's mirror.

    Another record kind (`BankMirror`) names its table, id column and scope, and writes its own
    rows; diffing state, deletion marking and the quarantine are shared.
    """

    stream: ClassVar[str] = INVOICES
    #: the tables a cycle of this stream writes, analyzed after it grew them (`analyze_if_grown`)
    tables: ClassVar[tuple[Table, ...]] = (invoices, invoice_lines, payments)

    def _id_column(self) -> Any:
        return invoices.c.remote_id

    def _scope(self, source: str) -> list[Any]:
        return [invoices.c.source == source]

    def _errors(self, source: str) -> list[Any]:
        return [sync_errors.c.source == source, sync_errors.c.stream == self.stream]

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        if not event.contains(engine, "rollback", _forget_stages):
            event.listen(engine, "rollback", _forget_stages)

    @property
    def write_concurrency(self) -> int:
        """Batches worth running at once (measured on 2 cores): PostgreSQL overlaps several
        writers; SQLite has one writer, so a second batch only overlaps its fetch."""
        return 3 if self.engine.dialect.name == "postgresql" else 2

    @contextlib.contextmanager
    def compare(
        self, source: str, listing: Iterable[Sequence[tuple[str, str | None]]]
    ) -> Iterator[ListingComparison]:
        """The listing loaded into the database beside this source's mirrored rows, for as
        long as the `with` block lasts (one transaction; nothing in it is written)."""
        with self.engine.begin() as connection:
            comparison = ListingComparison(connection, self._id_column(), self._scope(source))
            try:
                comparison.load(listing)
                yield comparison
            finally:
                comparison.close()

    def analyze_if_grown(self, written: int, listed: int) -> bool:
        """PostgreSQL: ANALYZE the stream's tables after a cycle that wrote a tenth or more of
        what it listed (the initial mirror), as autovacuum would a while later, and as it never
        does on a server that runs without it. Until then the planner takes the freshly loaded
        tables for nearly empty, and the next cycle's deletes of replaced lines scanned all of
        them (measured after a first mirror of 100,000: 25-45 ms a batch, 1 % changed 0.96-1.17 s
        against 0.89-0.96 s analyzed; the ANALYZE itself 0.9 s)."""
        if self.engine.dialect.name != "postgresql" or written < ANALYZE_AFTER:
            return False
        if written * 10 < listed:
            return False
        with self.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE " + ", ".join(f'"{t.name}"' for t in self.tables))
        return True

    def live(self, source: str) -> int:
        """How many of the source's mirrored records are not deleted."""
        table = self._id_column().table
        query = select(func.count()).where(*self._scope(source), table.c.deleted_at.is_(None))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def quarantined(self, source: str) -> frozenset[str]:
        """The ids whose last fetch failed validation (fetched again every cycle)."""
        query = select(sync_errors.c.remote_id).where(
            *self._errors(source), sync_errors.c.resolved_at.is_(None)
        )
        with self.engine.connect() as connection:
            return frozenset(remote_id for (remote_id,) in select_rows(connection, query))

    def stored_versions(self, source: str, remote_ids: Sequence[str]) -> dict[str, str]:
        """The mirrored version of each of these ids the mirror holds (live or deleted)."""
        column = self._id_column()
        with self.engine.connect() as connection:
            return dict(
                connection.execute(
                    select(column, column.table.c.remote_version).where(
                        *self._scope(source), _among(connection, column, remote_ids)
                    )
                ).all()
            )

    def _date_column(self) -> Any:
        return invoices.c.invoice_date

    def dated_within(
        self, source: str, remote_ids: Sequence[str], first: dt.date, last: dt.date
    ) -> list[str]:
        """Of these ids, those whose date lies in [first, last] or is unknown: what a listing of
        that window judges. The others left the window; they are not deleted."""
        column = self._id_column()
        date = self._date_column()
        found: list[str] = []
        with self.engine.connect() as connection:
            for chunk in _chunks(remote_ids, _chunk_size(connection)):
                found.extend(
                    connection.execute(
                        select(column).where(
                            *self._scope(source),
                            _among(connection, column, chunk),
                            date.is_(None) | date.between(first, last),
                        )
                    ).scalars()
                )
        return found

    def release_quarantine(self, source: str, remote_ids: Sequence[str], when: dt.datetime) -> None:
        """A quarantined record deleted at the remote end will never validate: stop counting it."""
        with self.engine.begin() as connection:
            _update_by_ids(
                connection,
                sync_errors.c.remote_id,
                self._errors(source),
                remote_ids,
                sync_errors.c.resolved_at.is_(None),
                resolved_at=when,
            )

    def mark_deleted(self, source: str, remote_ids: Sequence[str], when: dt.datetime) -> int:
        """Soft-delete: the row and its lines stay for history; only `deleted_at` is set."""
        return self._set_deleted_at(source, remote_ids, when)

    def restore(self, source: str, remote_ids: Sequence[str]) -> int:
        return self._set_deleted_at(source, remote_ids, None)

    def _set_deleted_at(
        self, source: str, remote_ids: Sequence[str], when: dt.datetime | None
    ) -> int:
        """Only rows whose state actually flips are touched, so the count is what changed."""
        column = self._id_column()
        deleted_at = column.table.c.deleted_at
        flips = deleted_at.is_(None) if when else deleted_at.is_not(None)
        with self.engine.begin() as connection:
            return _update_by_ids(
                connection, column, self._scope(source), remote_ids, flips, deleted_at=when
            )

    def write_batch(
        self,
        source: str,
        records: Sequence[Any],
        quarantined: Sequence[Quarantined],
        *,
        run_id: int | None = None,
        full: bool = False,
        ordered: bool = True,
    ) -> BatchWrite:
        """Write one fetched batch in a single transaction; a record the database cannot hold is
        quarantined by name and the rest lands.

        `full` is the ops resync: what the source returns now replaces what the mirror holds,
        even the same or an older version. Otherwise an ordered source's older version never
        replaces a newer one, and a source without ordered versions writes what differs.
        """
        guard: Guard = None if full else (_newer if ordered else _different)
        quarantined = list(quarantined)
        records = _set_aside(
            list(records), [r for r in records if may_be_unstorable(r)], quarantined
        )
        written, _ = self._try_write(source, records, quarantined, run_id, guard)
        if written is None:
            # The database refused a value the cheap filter did not foresee: name it, retry.
            records = _set_aside(records, records, quarantined)
            written, _ = self._try_write(source, records, quarantined, run_id, guard)
        if written is None:
            # Still refused and no check can say why: one record per transaction finds it.
            written = self._write_one_by_one(source, records, quarantined, run_id, guard)
        return written

    def _try_write(
        self,
        source: str,
        records: Sequence[Any],
        quarantined: Sequence[Quarantined],
        run_id: int | None,
        guard: Guard,
    ) -> tuple[BatchWrite | None, str]:
        """`_write`, or (None, the database's words) when it refused a value."""
        try:
            return self._write(source, records, quarantined, run_id, guard), ""
        except Exception as exc:
            if not _refused(exc):
                raise
            return None, _refusal_text(exc)

    def _write_one_by_one(
        self,
        source: str,
        records: Sequence[Any],
        quarantined: list[Quarantined],
        run_id: int | None,
        guard: Guard,
    ) -> BatchWrite:
        written = not_newer = 0
        ids: set[str] = set()
        for record in records:
            part, refusal = self._try_write(source, [record], [], run_id, guard)
            if part is None:
                quarantined.append(_quarantine_entry(record, f"the database refused it: {refusal}"))
            else:
                written, not_newer = written + part.written, not_newer + part.not_newer
                ids |= part.written_ids
        if quarantined:
            self._write(source, [], quarantined, run_id, guard)
        return BatchWrite(written, not_newer, len(quarantined), frozenset(ids))

    def _write(
        self,
        source: str,
        records: Sequence[Any],
        quarantined: Sequence[Quarantined],
        run_id: int | None,
        guard: Guard,
    ) -> BatchWrite:
        """One transaction. On PostgreSQL a batch of new invoices is COPYed straight into the
        tables (`_insert_if_all_new`); if one was there after all, it is written again, upserted."""
        write = functools.partial(self._write_invoices, source, records, quarantined, run_id, guard)
        try:
            return write(direct=True)
        except AlreadyThere:
            return write(direct=False)

    def _write_invoices(
        self,
        source: str,
        records: Sequence[Invoice],
        quarantined: Sequence[Quarantined],
        run_id: int | None,
        guard: Guard,
        *,
        direct: bool,
    ) -> BatchWrite:
        now = utcnow()
        with self.engine.begin() as connection:
            written_ids: dict[str, int] | None = None
            fresh: set[int] = set()
            if connection.dialect.name == "postgresql":
                # Safe for a mirror: a commit lost in a crash left no version behind, so
                # the next cycle fetches that batch again.
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                if direct and records:
                    written_ids = self._insert_if_all_new(connection, source, records, now)
            copied = written_ids is not None
            if written_ids is not None:
                fresh.update(written_ids.values())
            else:
                written_ids = self._upsert_invoices(connection, source, records, now, guard, fresh)
            if written_ids:
                self._replace_children(connection, source, records, written_ids, fresh, copied)
                self._resolve_errors(connection, source, list(written_ids), now)
            if quarantined:
                self._quarantine(connection, source, quarantined, run_id, now)
        return BatchWrite(
            written=len(written_ids),
            not_newer=len(records) - len(written_ids),
            quarantined=len(quarantined),
            written_ids=frozenset(written_ids),
        )

    def _insert_if_all_new(
        self, connection: Connection, source: str, records: Sequence[Invoice], now: dt.datetime
    ) -> dict[str, int] | None:
        """PostgreSQL, a batch of invoices the mirror has none of (the initial mirror, new
        invoices): COPY straight into the table with ids drawn from its sequence; None when
        one is already there (the upsert then decides). Staging and upserting such a batch
        cost the server about as much again as the COPY, and its stage emptied at commit."""
        keys = [(source, r.remote_id) for r in records]
        if any_present(connection, invoices, ("source", "remote_id"), keys):
            return None
        local_ids = (
            connection.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('invoices', 'id')) "
                "FROM generate_series(1, %(n)s)",
                {"n": len(records)},
            )
            .scalars()
            .all()
        )
        rows = [
            dict(_invoice_row(source, r, now), id=i)
            for r, i in zip(records, local_ids, strict=True)
        ]
        copy_new(connection, invoices, list(rows[0]), rows)
        return {row["remote_id"]: row["id"] for row in rows}

    def _upsert_invoices(
        self,
        connection: Connection,
        source: str,
        records: Sequence[Invoice],
        now: dt.datetime,
        guard: Guard,
        fresh: set[int],
    ) -> dict[str, int]:
        """Remote id -> local id of the rows written; newly inserted ones are added to `fresh`."""
        if not records:
            return {}
        rows = [_invoice_row(source, r, now) for r in records]
        result = _upsert(
            connection,
            invoices,
            rows,
            keys=("source", "remote_id"),
            guard=guard,
            returning=(invoices.c.remote_id, invoices.c.id, _inserted_flag(connection)),
        )
        written: dict[str, int] = {}
        for remote_id, local_id, inserted in cast(list[tuple[str, int, bool]], result.all()):
            written[remote_id] = local_id
            if inserted:
                fresh.add(local_id)
        return written

    def _replace_children(
        self,
        connection: Connection,
        source: str,
        records: Sequence[Invoice],
        written_ids: dict[str, int],
        fresh: set[int],
        copied: bool = False,
    ) -> None:
        """Lines are replaced wholesale; payments keep their local id (reconciliation uses it).

        A freshly inserted invoice has no children yet, so the first sync skips the lookups;
        `copied` (the invoices were new, see `_insert_if_all_new`): nor are their payments known.
        """
        local_ids = [local_id for local_id in written_ids.values() if local_id not in fresh]
        if local_ids:
            connection.execute(
                delete(invoice_lines).where(
                    _among(connection, invoice_lines.c.invoice_id, local_ids)
                )
            )
        line_rows = []
        #: by remote id: two invoices of one batch naming the same payment (odd data) must not
        #: fail the batch (one upsert cannot touch a row twice); the later one gets it
        payment_rows: dict[str, dict[str, Any]] = {}
        keep: set[str] = set()
        for record in records:
            invoice_id = written_ids.get(record.remote_id)
            if invoice_id is None:
                continue
            for line in record.lines:
                line_rows.append(
                    {
                        "invoice_id": invoice_id,
                        "remote_id": line.remote_id,
                        "position": line.position,
                        "description": line.description,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                        "tax_rate": line.tax_rate,
                        "amount_excl_tax": line.amount_excl_tax,
                    }
                )
            for payment in record.payments:
                keep.add(payment.remote_id)
                payment_rows[payment.remote_id] = {
                    "source": source,
                    "remote_id": payment.remote_id,
                    "invoice_id": invoice_id,
                    "amount": payment.amount,
                    "paid_on": payment.paid_on,
                    "method": payment.method,
                    "transaction_reference": payment.transaction_reference,
                    "remote_updated_at": payment.remote_updated_at,
                }
        if line_rows and connection.dialect.name == "postgresql":
            copy_dicts(connection, invoice_lines.name, invoice_lines, list(line_rows[0]), line_rows)
        elif line_rows:
            connection.execute(invoice_lines.insert(), line_rows)
        existing = (
            connection.execute(
                select(payments.c.id, payments.c.remote_id).where(
                    _among(connection, payments.c.invoice_id, local_ids)
                )
            ).all()
            if local_ids
            else []
        )
        vanished = [pid for pid, remote_id in existing if remote_id not in keep]
        if vanished:
            connection.execute(delete(payments).where(_among(connection, payments.c.id, vanished)))
        rows = list(payment_rows.values())
        if rows and copied:
            copy_new(connection, payments, list(rows[0]), rows)
        elif rows:
            _upsert(connection, payments, rows, keys=("source", "remote_id"))

    def _resolve_errors(
        self, connection: Connection, source: str, remote_ids: list[str], now: dt.datetime
    ) -> None:
        """Mostly there is nothing in quarantine: look first, update only what is there."""
        open_errors = connection.execute(
            select(sync_errors.c.remote_id).where(
                *self._errors(source), sync_errors.c.resolved_at.is_(None)
            )
        ).scalars()
        resolved = set(open_errors).intersection(remote_ids)
        if resolved:
            _update_by_ids(
                connection,
                sync_errors.c.remote_id,
                self._errors(source),
                sorted(resolved),
                resolved_at=now,
            )

    def _quarantine(
        self,
        connection: Connection,
        source: str,
        entries: Sequence[Quarantined],
        run_id: int | None,
        now: dt.datetime,
    ) -> None:
        _upsert(
            connection,
            sync_errors,
            [
                {
                    "source": source,
                    "stream": self.stream,
                    "remote_id": e.remote_id,
                    "remote_version": e.remote_version,
                    "error": e.error,
                    "raw": e.raw,
                    "sync_run_id": run_id,
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "attempts": 1,
                    "resolved_at": None,
                }
                for e in entries
            ],
            keys=("source", "stream", "remote_id"),
            keep=("first_seen_at",),
            overrides=lambda excluded: {"attempts": sync_errors.c.attempts + 1},
        )
