"""The reads behind `invoice-sync report`: live invoices with their reconciliation status, the
incoming money still waiting, and the status counts.

Money is only fetched here, never summed or compared: SQLite keeps it as text, so a SQL `SUM`
or `amount > 0` would go through a float (or compare strings). Only statuses, dates and ids are
filtered in SQL; the report module does the arithmetic with Decimals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine, func, or_, select

from store.schema import (
    bank_transaction_reconciliation,
    bank_transactions,
    invoice_reconciliation,
    invoices,
    reconciliation_runs,
)

#: invoice states that are no receivable at all (the engine ignores them too)
NOT_LIVE_STATES = ("draft", "cancelled")
#: transaction statuses with incoming money that nothing (or not everything) has claimed yet
WAITING = ("unmatched", "partially_allocated", "suggested")


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: int
    source: str
    number: str | None
    customer_remote_id: str | None
    customer_name: str | None
    invoice_date: dt.date | None
    due_date: dt.date | None
    currency: str
    total: Decimal
    total_paid: Decimal
    state: str
    #: the `invoice_reconciliation` row; all three are None before the engine's first run
    status: str | None
    bank_amount: Decimal | None
    open_amount: Decimal | None


@dataclass(frozen=True, slots=True)
class TransactionRow:
    id: int
    account_iban: str
    booking_date: dt.date
    amount: Decimal
    currency: str
    counterparty_name: str | None
    counterparty_iban: str | None
    description: str | None
    payment_reference: str | None
    status: str
    allocated: Decimal
    unallocated: Decimal


class ReportStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def invoices(self) -> list[InvoiceRow]:
        """Live invoices that can still be open or an exception. `reconciled` ones are left out
        in SQL by status (their open amount is zero by definition), which keeps the load to the
        unsettled part of the ledger; every other filter on money is the caller's."""
        c, r = invoices.c, invoice_reconciliation.c
        query = (
            select(
                c.id,
                c.source,
                c.number,
                c.customer_remote_id,
                c.customer_name,
                c.invoice_date,
                c.due_date,
                c.currency,
                c.total_incl_tax.label("total"),
                c.total_paid,
                c.state,
                r.status,
                r.bank_amount,
                r.open_amount,
            )
            .select_from(invoices.outerjoin(invoice_reconciliation, r.invoice_id == c.id))
            .where(
                c.deleted_at.is_(None),
                c.state.not_in(NOT_LIVE_STATES),
                or_(r.status.is_(None), r.status != "reconciled"),
            )
            .order_by(c.id)
        )
        with self.engine.connect() as connection:
            return [InvoiceRow(**row._asdict()) for row in connection.execute(query)]

    def waiting_money(self, booked_before: dt.date) -> list[TransactionRow]:
        """Transactions booked before the day whose money still waits for a person, in either
        direction: the sign is the caller's to judge, in Decimal."""
        t, s = bank_transactions.c, bank_transaction_reconciliation.c
        query = (
            select(
                t.id,
                t.account_iban,
                t.booking_date,
                t.amount,
                t.currency,
                t.counterparty_name,
                t.counterparty_iban,
                t.description,
                t.payment_reference,
                s.status,
                s.allocated,
                s.unallocated,
            )
            .join(bank_transaction_reconciliation, s.bank_transaction_id == t.id)
            .where(
                t.deleted_at.is_(None),
                s.status.in_(WAITING),
                t.booking_date < booked_before,
            )
            .order_by(t.booking_date, t.id)
        )
        with self.engine.connect() as connection:
            return [TransactionRow(**row._asdict()) for row in connection.execute(query)]

    def status_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per status, counting only what is live now: a status row can outlive its invoice's
        deletion until the next run, and must not be counted then."""
        c, r = invoices.c, invoice_reconciliation.c
        t, s = bank_transactions.c, bank_transaction_reconciliation.c
        with self.engine.connect() as connection:
            invoice_counts = {
                status: int(count)
                for status, count in connection.execute(
                    select(r.status, func.count())
                    .join(invoices, c.id == r.invoice_id)
                    .where(c.deleted_at.is_(None), c.state.not_in(NOT_LIVE_STATES))
                    .group_by(r.status)
                )
            }
            transaction_counts = {
                status: int(count)
                for status, count in connection.execute(
                    select(s.status, func.count())
                    .join(bank_transactions, t.id == s.bank_transaction_id)
                    .where(t.deleted_at.is_(None))
                    .group_by(s.status)
                )
            }
        return invoice_counts, transaction_counts

    def last_run_at(self) -> dt.datetime | None:
        """When the statuses were last brought up to date, so a reader knows how fresh they are."""
        runs = reconciliation_runs.c
        with self.engine.connect() as connection:
            value: dt.datetime | None = connection.execute(
                select(func.max(runs.finished_at)).where(runs.status.in_(("ok", "unchanged")))
            ).scalar()  # MAX keeps the column's type: UTC-aware on both databases
        return value
