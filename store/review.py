"""What a person reads and decides about reconciliation: the review list, one transaction or
invoice, the statuses a decision brings up to date, and the summary `status` prints."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select

from store.bulk import among, chunk_size, chunks, select_rows
from store.reconciliation import UNSETTLED, ReconciliationStore
from store.reconciliation_writes import (
    replace_rows,
)
from store.schema import (
    bank_transaction_reconciliation,
    bank_transactions,
    invoice_reconciliation,
    invoices,
    reconciliation_matches,
    reconciliation_runs,
)
from workers.reconciliation.model import ACTIVE, SUGGESTED, ZERO, OpenInvoice, Transaction


@dataclass(frozen=True, slots=True)
class ReviewRow:
    transaction: dict[str, Any]
    status: str
    suggestions: list[dict[str, Any]]


class ReviewStore:
    """What a person reads and decides: the review list, and one transaction or invoice."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def review(self) -> list[ReviewRow]:
        """Transactions waiting for a person, with their suggestions (invoice fields joined)."""
        t, s = bank_transactions.c, bank_transaction_reconciliation.c
        m, i = reconciliation_matches.c, invoices.c
        with self.engine.connect() as connection:
            waiting = connection.execute(
                select(bank_transactions, s.status, s.allocated, s.unallocated)
                .join(bank_transaction_reconciliation, s.bank_transaction_id == t.id)
                .where(s.status.in_(UNSETTLED), t.deleted_at.is_(None))
            ).all()
            ids = [row.id for row in waiting]
            suggestions: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for chunk in chunks(ids, chunk_size(connection)):
                for row in connection.execute(
                    select(
                        m.id,
                        m.bank_transaction_id,
                        m.invoice_id,
                        m.rule,
                        m.confidence,
                        m.reason,
                        i.number,
                        i.source,
                        i.customer_name,
                        i.total_incl_tax,
                        invoice_reconciliation.c.open_amount,
                    )
                    .join(invoices, i.id == m.invoice_id)
                    .outerjoin(invoice_reconciliation, invoice_reconciliation.c.invoice_id == i.id)
                    .where(
                        m.status == SUGGESTED,
                        among(connection, m.bank_transaction_id, chunk),
                    )
                ):
                    suggestions[row.bank_transaction_id].append(dict(row._mapping))
        rows = []
        for row in waiting:
            mapping = dict(row._mapping)
            found = sorted(suggestions.get(row.id, []), key=lambda x: -x["confidence"])
            if not found and mapping["amount"] <= 0:
                continue  # outgoing money with nothing to suggest is not receivable
            rows.append(ReviewRow(mapping, mapping["status"], found))
        return rows

    def transaction(self, transaction_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(bank_transactions).where(bank_transactions.c.id == transaction_id)
            ).first()
            return dict(row._mapping) if row else None

    def invoices_named(self, name: str) -> list[dict[str, Any]]:
        """An invoice by local id, else by number (all sources)."""
        with self.engine.connect() as connection:
            query = select(invoices).where(invoices.c.deleted_at.is_(None))
            if name.isdigit():
                rows = connection.execute(query.where(invoices.c.id == int(name))).all()
                if rows:
                    return [dict(r._mapping) for r in rows]
            rows = connection.execute(query.where(invoices.c.number == name)).all()
            return [dict(r._mapping) for r in rows]

    def match(self, match_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(reconciliation_matches).where(reconciliation_matches.c.id == match_id)
            ).first()
            return dict(row._mapping) if row else None

    def allocated(self, transaction_id: int, invoice_id: int) -> tuple[Decimal, Decimal]:
        """What is allocated of the transaction, and paid on the invoice, by active matches
        other than this pair's."""
        m = reconciliation_matches.c
        tx_total = invoice_total = ZERO
        with self.engine.connect() as connection:
            for tx_id, inv_id, amount in connection.execute(
                select(m.bank_transaction_id, m.invoice_id, m.amount).where(
                    m.status.in_(ACTIVE),
                    or_(m.bank_transaction_id == transaction_id, m.invoice_id == invoice_id),
                )
            ):
                if (tx_id, inv_id) == (transaction_id, invoice_id):
                    continue
                if tx_id == transaction_id:
                    tx_total += amount
                if inv_id == invoice_id:
                    invoice_total += amount
        return tx_total, invoice_total


def pair_state(
    engine: Engine, transaction_id: int, invoice_id: int
) -> tuple[Transaction | None, bool, OpenInvoice | None]:
    """One transaction and one invoice as the engine would load them, with what their active
    matches allocate, and whether the transaction has suggestions waiting."""
    store = ReconciliationStore(engine)
    m = reconciliation_matches.c
    with engine.connect() as connection:
        rows = list(
            select_rows(
                connection,
                select(m.bank_transaction_id, m.invoice_id, m.amount, m.status).where(
                    or_(m.bank_transaction_id == transaction_id, m.invoice_id == invoice_id)
                ),
            )
        )
        paid_by_tx = sum((r[2] for r in rows if r[0] == transaction_id and r[3] in ACTIVE), ZERO)
        paid_on_invoice = sum((r[2] for r in rows if r[1] == invoice_id and r[3] in ACTIVE), ZERO)
        suggested = any(r[0] == transaction_id and r[3] == SUGGESTED for r in rows)
        txs = store._transactions(
            connection, True, {transaction_id: paid_by_tx}, only=transaction_id
        )
        found = store._invoices(connection, {invoice_id: paid_on_invoice}, only=invoice_id)
    return (txs[0] if txs else None), suggested, (found[0] if found else None)


def drop_suggestions(engine: Engine, transaction_id: int) -> None:
    """A transaction now fully allocated has nothing left to suggest."""
    m = reconciliation_matches.c
    with engine.begin() as connection:
        connection.execute(
            delete(reconciliation_matches).where(
                m.bank_transaction_id == transaction_id, m.status == SUGGESTED
            )
        )


def write_statuses(
    engine: Engine,
    invoice_statuses: dict[int, tuple[str, Decimal, Decimal]],
    transaction_statuses: dict[int, tuple[str, Decimal, Decimal]],
    when: dt.datetime,
) -> None:
    with engine.begin() as connection:
        replace_rows(
            connection,
            invoice_reconciliation,
            ("invoice_id", "status", "bank_amount", "open_amount", "updated_at"),
            [(key, *values, when) for key, values in invoice_statuses.items()],
        )
        replace_rows(
            connection,
            bank_transaction_reconciliation,
            ("bank_transaction_id", "status", "allocated", "unallocated", "updated_at"),
            [(key, *values, when) for key, values in transaction_statuses.items()],
        )


def status_counts(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """Invoices and transactions per reconciliation status, as last written."""
    with engine.connect() as connection:
        invoice_counts = {
            status: int(count)
            for status, count in connection.execute(
                select(invoice_reconciliation.c.status, func.count()).group_by(
                    invoice_reconciliation.c.status
                )
            )
        }
        transaction_counts = {
            status: int(count)
            for status, count in connection.execute(
                select(bank_transaction_reconciliation.c.status, func.count()).group_by(
                    bank_transaction_reconciliation.c.status
                )
            )
        }
    return invoice_counts, transaction_counts


@dataclass(frozen=True, slots=True)
class ReconciliationSummary:
    last_run_at: dt.datetime | None
    last_status: str | None
    last_error: str | None
    invoices: dict[str, int]
    transactions: dict[str, int]

    @property
    def to_review(self) -> int:
        return sum(self.transactions.get(status, 0) for status in UNSETTLED)


def summary(engine: Engine) -> ReconciliationSummary:
    """What `status` shows of reconciliation: the last run that did something (or failed) and
    the counts per status."""
    r = reconciliation_runs.c
    with engine.connect() as connection:
        last = connection.execute(
            select(r.finished_at, r.started_at, r.status, r.error)
            .where(r.status != "unchanged")
            .order_by(r.id.desc())
            .limit(1)
        ).first()
    invoice_counts, transaction_counts = status_counts(engine)
    return ReconciliationSummary(
        last_run_at=(last[0] or last[1]) if last else None,
        last_status=last[2] if last else None,
        last_error=last[3] if last else None,
        invoices=invoice_counts,
        transactions=transaction_counts,
    )
