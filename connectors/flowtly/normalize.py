"""A Flowtly invoice snapshot (the invoice, its rows, its transactions) as the normalized
`Invoice` every source produces.

Why these rules:
- Totals are the invoice's own `totalNet`, `totalVat`, `totalGross` (decimal strings); what was
  paid is the sum of its transactions' `amount` (a null amount counts as nothing).
- Rows are flattened in order: each top-level row, then the children it lists in
  `invoiceChildrenRows`. A parent is priced at the sum of its children, so its line keeps its
  name but no quantity, price or total: the children carry the amounts, counted once.
- A row's total excluding VAT is `quantity x netPrice - netDiscountAmount` rounded half up to
  the cent (Flowtly sends no row total; its invoice totals are sums of cent amounts, so the lines
  add up to `totalNet`); its unit goes into the description (`Consultancy (uur)`).
- States: `draft` -> draft, `sent` -> open (late once `dueDate` has passed), `partially_paid`,
  `paid`, `cancelled`; the status as sent stays in `state_raw`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.parsing import (
    parse_date,
    parse_decimal,
    parse_id,
    parse_optional_decimal,
    parse_timestamp,
)
from connectors.records import Invoice, InvoiceLine, Payment, RawJSON

_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")
_CENT = Decimal("0.01")
STATES = {
    "draft": "draft",
    "sent": "open",
    "partially_paid": "partially_paid",
    "paid": "paid",
    "cancelled": "cancelled",
}


def _iri_id(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: {value!r} is not an IRI")
    return value.rstrip("/").rsplit("/", 1)[-1] or None


def normalize_invoice(record: Any, raw: RawJSON, *, version: str, today: dt.date) -> Invoice:
    if not isinstance(record, dict) or not isinstance(record.get("invoice"), dict):
        raise ValueError("invoice: expected an object")
    invoice: dict[str, Any] = record["invoice"]
    rows, transactions = record.get("rows") or [], record.get("transactions") or []
    if not isinstance(rows, list) or not isinstance(transactions, list):
        raise ValueError("rows/transactions: expected arrays")
    status = invoice.get("status")
    if status not in STATES:
        raise ValueError(f"status: {status!r} is not one of {sorted(STATES)}")
    due = parse_date(invoice.get("dueDate"), "dueDate")
    state = STATES[status]
    if state == "open" and due is not None and due < today:
        state = "late"
    net = parse_decimal(invoice.get("totalNet"), "totalNet")
    vat = parse_decimal(invoice.get("totalVat"), "totalVat")
    gross = parse_decimal(invoice.get("totalGross"), "totalGross")
    payments = tuple(_payment(t, i) for i, t in enumerate(transactions))
    paid = sum((p.amount for p in payments), Decimal(0))
    currency = invoice.get("currency") or "EUR"
    if not isinstance(currency, str) or len(currency) != 3:
        raise ValueError(f"currency: {currency!r} is not an ISO 4217 code")
    return Invoice(
        remote_id=parse_id(invoice.get("id"), "id"),
        remote_version=version,
        number=invoice.get("number") or None,
        state=state,
        state_raw=status,
        customer_remote_id=_iri_id(invoice.get("contact"), "contact"),
        customer_name=invoice.get("contactName") or None,
        invoice_date=parse_date(invoice.get("issueDate"), "issueDate"),
        due_date=due,
        currency=currency,
        total_excl_tax=net,
        total_tax=vat,
        total_incl_tax=gross,
        total_paid=paid,
        total_unpaid=gross - paid,
        payment_reference=None,
        remote_updated_at=parse_timestamp(invoice.get("updatedAt"), "updatedAt"),
        raw=raw,
        lines=_lines(rows),
        payments=payments,
    )


def _lines(rows: list[Any]) -> tuple[InvoiceLine, ...]:
    by_iri: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"rows[{index}]: expected an object")
        by_iri[str(row.get("@id") or f"/invoice-rows/{row.get('id')}")] = row
    ordered: list[tuple[dict[str, Any], bool]] = []
    placed: set[str] = set()
    for iri, row in by_iri.items():
        if row.get("parentInvoiceRow") or iri in placed:
            continue
        children = row.get("invoiceChildrenRows") or []
        ordered.append((row, bool(children)))
        placed.add(iri)
        for child in children:
            child_iri = child if isinstance(child, str) else (child or {}).get("@id")
            if child_iri in by_iri and child_iri not in placed:
                ordered.append((by_iri[child_iri], False))
                placed.add(child_iri)
    for iri, row in by_iri.items():  # a child whose parent is not on this invoice
        if iri not in placed:
            ordered.append((row, False))
    return tuple(_line(row, position, parent) for position, (row, parent) in enumerate(ordered, 1))


def _line(row: dict[str, Any], position: int, parent: bool) -> InvoiceLine:
    where = f"rows[{row.get('id')}]"
    name = str(row.get("productName") or "").strip() or None
    unit = str(row.get("unit") or "").strip()
    description = f"{name} ({unit})" if name and unit else name
    vat = parse_optional_decimal(row.get("vatRate"), f"{where}.vatRate")
    quantity = price = amount = None
    if not parent:  # a parent row's quantity and price only restate its children
        quantity = parse_decimal(row.get("quantity"), f"{where}.quantity")
        price = parse_decimal(row.get("netPrice"), f"{where}.netPrice")
        discount = parse_optional_decimal(
            row.get("netDiscountAmount"), f"{where}.netDiscountAmount"
        )
        amount = (quantity * price - (discount or Decimal(0))).quantize(
            _CENT, rounding=ROUND_HALF_UP
        )
    return InvoiceLine(
        remote_id=parse_id(row.get("id"), f"{where}.id"),
        position=position,
        description=description,
        quantity=quantity,
        unit_price=price,
        tax_rate=vat,
        amount_excl_tax=amount,
    )


def _payment(transaction: Any, index: int) -> Payment:
    where = f"transactions[{index}]"
    if not isinstance(transaction, dict):
        raise ValueError(f"{where}: expected an object")
    when = parse_timestamp(transaction.get("date"), f"{where}.date")
    amount = parse_optional_decimal(transaction.get("amount"), f"{where}.amount")
    return Payment(
        remote_id=parse_id(transaction.get("id"), f"{where}.id"),
        amount=amount if amount is not None else Decimal(0),
        paid_on=when.astimezone(_AMSTERDAM).date() if when else None,
        method=None,
        transaction_reference=_iri_id(transaction.get("transaction"), f"{where}.transaction"),
        remote_updated_at=parse_timestamp(transaction.get("updatedAt"), f"{where}.updatedAt"),
    )
