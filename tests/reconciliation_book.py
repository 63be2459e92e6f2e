"""A hand-written ledger for reconciliation tests: invoices and bank transactions inserted as
rows, with only what a case cares about spelled out."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from store.db import make_engine, upgrade
from store.schema import (
    bank_transaction_reconciliation,
    bank_transactions,
    invoice_reconciliation,
    invoices,
    payments,
    reconciliation_matches,
)

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
ACCOUNT = "NL91ABNA0417164300"


class Book:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        self._ids = itertools.count(1)

    def invoice(
        self,
        number: str,
        total: str,
        *,
        customer: str = "c1",
        name: str = "Bakkerij Jansen B.V.",
        iban: str | None = None,
        reference: str | None = None,
        state: str = "open",
        paid: str = "0",
        due: dt.date = dt.date(2026, 5, 1),
        source: str = "acme",
    ) -> int:
        total_d, paid_d = Decimal(total), Decimal(paid)
        with self.engine.begin() as c:
            return int(
                c.execute(
                    sa.insert(invoices)
                    .values(
                        source=source,
                        remote_id=str(next(self._ids)),
                        remote_version="1",
                        number=number,
                        state=state,
                        customer_remote_id=customer,
                        customer_name=name,
                        customer_iban=iban,
                        invoice_date=due - dt.timedelta(days=14),
                        due_date=due,
                        currency="EUR",
                        total_excl_tax=total_d,
                        total_tax=Decimal(0),
                        total_incl_tax=total_d,
                        total_paid=paid_d,
                        total_unpaid=total_d - paid_d,
                        payment_reference=reference,
                        synced_at=NOW,
                        raw="{}",
                    )
                    .returning(invoices.c.id)
                ).scalar_one()
            )

    def payment(
        self, invoice_id: int, amount: str, paid_on: dt.date, reference: str | None = None
    ) -> int:
        with self.engine.begin() as c:
            return int(
                c.execute(
                    sa.insert(payments)
                    .values(
                        source="acme",
                        remote_id=str(next(self._ids)),
                        invoice_id=invoice_id,
                        amount=Decimal(amount),
                        paid_on=paid_on,
                        transaction_reference=reference,
                    )
                    .returning(payments.c.id)
                ).scalar_one()
            )

    def tx(
        self,
        amount: str,
        *,
        text: str | None = None,
        reference: str | None = None,
        name: str | None = "Bakkerij Jansen",
        iban: str | None = "NL18INGB1095513148",
        e2e: str | None = None,
        booked: dt.date = dt.date(2026, 5, 10),
        return_reason: str | None = None,
        account: str = ACCOUNT,
        origin: str = "camt053",
    ) -> int:
        n = next(self._ids)
        with self.engine.begin() as c:
            return int(
                c.execute(
                    sa.insert(bank_transactions)
                    .values(
                        account_iban=account,
                        booking_date=booked,
                        amount=Decimal(amount),
                        currency="EUR",
                        counterparty_name=name,
                        counterparty_iban=iban,
                        description=text,
                        payment_reference=reference,
                        end_to_end_id=e2e,
                        bank_reference=f"B{n}",
                        reversal=False,
                        return_reason=return_reason,
                        origin=origin,
                        dedup_key=f"ref:B{n}",
                        raw="<Ntry/>",
                        imported_at=NOW,
                    )
                    .returning(bank_transactions.c.id)
                ).scalar_one()
            )

    def matches(self, tx_id: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(reconciliation_matches).order_by(reconciliation_matches.c.id)
        if tx_id is not None:
            query = query.where(reconciliation_matches.c.bank_transaction_id == tx_id)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    def allocations(self, tx_id: int) -> dict[int, Decimal]:
        return {
            m["invoice_id"]: m["amount"]
            for m in self.matches(tx_id)
            if m["status"] in ("auto", "confirmed")
        }

    def suggested(self, tx_id: int) -> list[int]:
        return [m["invoice_id"] for m in self.matches(tx_id) if m["status"] == "suggested"]

    def invoice_status(self, invoice_id: int) -> tuple[str, Decimal]:
        t = invoice_reconciliation.c
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(t.status, t.bank_amount).where(t.invoice_id == invoice_id)
            ).one()
        return row[0], row[1]

    def tx_status(self, tx_id: int) -> str:
        t = bank_transaction_reconciliation.c
        with self.engine.connect() as c:
            return str(
                c.execute(sa.select(t.status).where(t.bank_transaction_id == tx_id)).scalar_one()
            )
