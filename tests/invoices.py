"""An `Invoice` record built in a test, for store tests that need no connector."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from connectors.records import Invoice, InvoiceLine, Payment, RawJSON


def an_invoice(**changes: object) -> Invoice:
    """An open invoice of 12.10 with one line and one payment, with `changes` applied."""
    invoice = Invoice(
        remote_id="1",
        remote_version="1",
        number="2026-0001",
        state="open",
        state_raw="open",
        customer_remote_id="9",
        customer_name="Acme",
        invoice_date=dt.date(2026, 1, 1),
        due_date=None,
        currency="EUR",
        total_excl_tax=Decimal("10"),
        total_tax=Decimal("2.10"),
        total_incl_tax=Decimal("12.10"),
        total_paid=Decimal(0),
        total_unpaid=Decimal("12.10"),
        payment_reference="RF18",
        remote_updated_at=None,
        raw=RawJSON("{}"),
        lines=(InvoiceLine("7", 1, "work", Decimal(1), Decimal(10), None, Decimal(10)),),
        payments=(Payment("8", Decimal(1), None, "x" * 10_000, None, None),),
    )
    return dataclasses.replace(invoice, **changes)  # type: ignore[arg-type]
