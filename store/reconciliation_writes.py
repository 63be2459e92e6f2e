"""A reconciliation run's writes, all in one database transaction, streamed to the database
while the engine still matches (see `RunWriter`), and the status upsert they share with a
person's decisions."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Table, bindparam, delete, update
from sqlalchemy.engine import Connection

from store.bulk import delete_keys, insert_rows
from store.schema import (
    bank_transaction_reconciliation,
    invoice_reconciliation,
    reconciliation_matches,
)
from workers.reconciliation.model import AUTO, SUGGESTED, Match

MATCH_COLUMNS = (
    "bank_transaction_id",
    "invoice_id",
    "payment_id",
    "amount",
    "rule",
    "confidence",
    "status",
    "reason",
    "decided_by",
    "created_at",
    "decided_at",
)
TRANSACTION_STATUS_COLUMNS = (
    "bank_transaction_id",
    "status",
    "allocated",
    "unallocated",
    "updated_at",
)
INVOICE_STATUS_COLUMNS = ("invoice_id", "status", "bank_amount", "open_amount", "updated_at")
_Chunk = tuple[Table, Sequence[str], list[tuple[Any, ...]]]


class RunWriter:
    """One run's writes, all in one database transaction: the engine's old suggestions for the
    transactions looked at (under `full` all its rows) and those transactions' stored statuses
    go first, then the matches and the transactions' statuses as the engine settles each, then
    the invoices' statuses.

    On PostgreSQL a thread streams the rows through COPY (a statement per chunk) while the
    engine is still matching, so the server's index and foreign-key work runs on the other core;
    SQLite takes them in chunks. A failure anywhere rolls the whole run back.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        full: bool,
        looked_at: Sequence[int],
        gone: Sequence[tuple[int, int]] = (),
        stored_transactions: Collection[int] | None = None,
        when: dt.datetime,
    ) -> None:
        self.engine = engine
        self.full = full
        self.looked_at = looked_at
        self.gone = gone
        self.stored_transactions = stored_transactions
        self.when = when
        self._matches: list[tuple[Any, ...]] = []
        self._statuses: list[tuple[Any, ...]] = []
        self._updates: list[dict[str, Any]] = []
        self._dropped: list[int] = []
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def __enter__(self) -> RunWriter:
        self._connection = self.engine.connect()
        self._transaction = self._connection.begin()
        m = reconciliation_matches.c
        if self.full:
            self._connection.execute(
                delete(reconciliation_matches).where(m.status.in_((AUTO, SUGGESTED)))
            )
        for tx_id, invoice_id in self.gone:  # few: deletions at the source
            self._connection.execute(
                delete(reconciliation_matches).where(
                    m.bank_transaction_id == tx_id,
                    m.invoice_id == invoice_id,
                    m.status.in_((AUTO, SUGGESTED)),
                )
            )
        stored = self.stored_transactions
        delete_keys(
            self._connection,
            bank_transaction_reconciliation,
            "bank_transaction_id",
            [k for k in self.looked_at if stored is None or k in stored],
        )
        if self._connection.dialect.name == "postgresql":
            self._thread = threading.Thread(target=self._stream, name="reconcile-writer")
            self._thread.start()
        return self

    def add(self, match: Match) -> None:
        self._matches.append(
            (
                match.transaction_id,
                match.invoice_id,
                match.payment_id,
                match.amount,
                match.rule,
                match.confidence,
                match.status,
                match.reason,
                "engine",
                self.when,
                None,
            )
        )
        if len(self._matches) >= 2000:
            self._flush_matches()

    def update(self, match_id: int, match: Match) -> None:
        """The engine's row for this pair stays (with its id) and says what the run says now."""
        self._updates.append(
            {
                "match_id": match_id,
                "payment_id": match.payment_id,
                "amount": match.amount,
                "rule": match.rule,
                "confidence": match.confidence,
                "status": match.status,
                "reason": match.reason,
            }
        )

    def drop(self, match_ids: Iterable[int]) -> None:
        """Suggestions the run no longer makes."""
        self._dropped.extend(match_ids)

    def settle(
        self, transaction_id: int, status: str, allocated: Decimal, unallocated: Decimal
    ) -> None:
        """The transaction's status, final once the engine has matched it."""
        self._statuses.append((transaction_id, status, allocated, unallocated, self.when))
        if len(self._statuses) >= 2000:
            self._flush_statuses()

    def _flush_matches(self) -> None:
        chunk, self._matches = self._matches, []
        self._send((reconciliation_matches, MATCH_COLUMNS, chunk))

    def _flush_statuses(self) -> None:
        chunk, self._statuses = self._statuses, []
        self._send((bank_transaction_reconciliation, TRANSACTION_STATUS_COLUMNS, chunk))

    def _send(self, item: _Chunk) -> None:
        if not item[2]:
            return
        if self._thread is None:
            insert_rows(self._connection, *item)
            return
        while True:
            if self._failure is not None:
                raise self._failure
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _stream(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                insert_rows(self._connection, *item)
        except BaseException as exc:  # handed to the engine's thread, which raises it
            self._failure = exc
            while self._queue.get() is not None:  # let the producer finish putting
                pass

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            if self._failure is not None:
                raise self._failure

    def finish(
        self,
        invoice_statuses: dict[int, tuple[str, Decimal, Decimal]],
        stored_invoices: Collection[int] | None = None,
    ) -> None:
        """`stored_invoices`: the invoices that have a status row now (the rest need no delete
        before their insert); None when unknown."""
        self._flush_matches()
        self._flush_statuses()
        self._join()
        m = reconciliation_matches.c
        if self._dropped:
            delete_keys(self._connection, reconciliation_matches, "id", self._dropped)
        if self._updates:
            self._connection.execute(
                update(reconciliation_matches)
                .where(m.id == bindparam("match_id"))
                .values(
                    payment_id=bindparam("payment_id"),
                    amount=bindparam("amount"),
                    rule=bindparam("rule"),
                    confidence=bindparam("confidence"),
                    status=bindparam("status"),
                    reason=bindparam("reason"),
                ),
                self._updates,
            )
        replace_rows(
            self._connection,
            invoice_reconciliation,
            INVOICE_STATUS_COLUMNS,
            [(key, *values, self.when) for key, values in invoice_statuses.items()],
            stored_invoices,
        )
        self._transaction.commit()

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        try:
            if self._thread is not None:
                self._failure = self._failure or RuntimeError("the run stopped")
                self._queue.put(None)
                self._thread.join()
            if self._transaction.is_active:
                self._transaction.rollback()
        finally:
            self._connection.close()


def replace_rows(
    connection: Connection,
    table: Any,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    stored: Collection[int] | None = None,
) -> None:
    """Delete the rows with these keys (the first column), then insert them anew. Keys known
    not to be `stored` need no delete (a first run writes every row new)."""
    keys = [row[0] for row in rows]
    if stored is not None:
        keys = [key for key in keys if key in stored]
    delete_keys(connection, table, columns[0], keys)
    insert_rows(connection, table, columns, rows)
