"""A Recras invoice (factuur) with its lines (regels) and payments (betalingen) as the normalized
`Invoice` every source produces.

Why these rules:
- Recras has no invoice totals to trust and no currency: totals are the exact sums of the lines'
  `totaal_inc_btw` / `totaal_exc_btw`, the tax their difference, the currency EUR (Recras serves
  Dutch venues and prices in euros).
- Amounts arrive as JSON numbers; the decoder hands them over as exact `Decimal`s (never float),
  and `parse_decimal` refuses anything else with the field named.
- States: `concept` -> draft, `verzonden` -> open (late once the due date, `datum` plus
  `betalingstermijn` days, has passed), `deels_betaald` -> partially_paid, `betaald` -> paid; the
  status as sent stays in `state_raw`. An unknown status is refused, so the record is quarantined
  rather than guessed.
- A payment's `wanneer` is a local timestamp with its offset; the payment date is its date in
  Europe/Amsterdam, as the venue booked it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from connectors.parsing import (
    parse_date,
    parse_decimal,
    parse_id,
    parse_optional_decimal,
    parse_optional_id,
    parse_timestamp,
)
from connectors.records import Invoice, InvoiceLine, Payment, RawJSON

_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")
STATES = {
    "concept": "draft",
    "verzonden": "open",
    "deels_betaald": "partially_paid",
    "betaald": "paid",
}


def normalize_invoice(
    record: dict[str, Any],
    payments: Sequence[dict[str, Any]],
    raw: RawJSON,
    *,
    version: str,
    today: dt.date,
) -> Invoice:
    """`record` as `GET /api2/facturen?embed=regels,Klant` gives it; `payments` as
    `GET /api2/facturen/{id}/betalingen`; `raw` the exact text to keep."""
    if not isinstance(record, dict):
        raise ValueError("factuur: expected an object")
    remote_id = parse_id(record.get("id"), "id")
    status = record.get("status")
    if status not in STATES:
        raise ValueError(f"status: {status!r} is not one of {sorted(STATES)}")
    lines = record.get("regels")
    if not isinstance(lines, list):
        raise ValueError("regels: expected the invoice's lines (embed=regels)")
    invoice_date = parse_date(record.get("datum"), "datum")
    term = record.get("betalingstermijn")
    if term is not None and (isinstance(term, bool) or not isinstance(term, int)):
        raise ValueError(f"betalingstermijn: {term!r} is not a number of days")
    due = invoice_date + dt.timedelta(days=term) if invoice_date and term is not None else None
    parsed_lines = tuple(_line(line, index) for index, line in enumerate(lines, start=1))
    incl = sum((_amount(line, "totaal_inc_btw", i) for i, line in enumerate(lines)), Decimal(0))
    excl = sum((_amount(line, "totaal_exc_btw", i) for i, line in enumerate(lines)), Decimal(0))
    parsed_payments = tuple(_payment(p, index) for index, p in enumerate(payments))
    paid = sum((p.amount for p in parsed_payments), Decimal(0))
    state = STATES[status]
    if state == "open" and due is not None and due < today:
        state = "late"
    customer = record.get("Klant")
    return Invoice(
        remote_id=remote_id,
        remote_version=version,
        number=record.get("factuur_nummer") or None,
        state=state,
        state_raw=status,
        customer_remote_id=parse_optional_id(record.get("klant_id"), "klant_id"),
        customer_name=(customer.get("naam") or None) if isinstance(customer, dict) else None,
        invoice_date=invoice_date,
        due_date=due,
        currency="EUR",
        total_excl_tax=excl,
        total_tax=incl - excl,
        total_incl_tax=incl,
        total_paid=paid,
        total_unpaid=incl - paid,
        payment_reference=None,
        remote_updated_at=None,
        raw=raw,
        lines=parsed_lines,
        payments=parsed_payments,
    )


def _amount(line: Any, key: str, index: int) -> Decimal:
    if not isinstance(line, dict):
        raise ValueError(f"regels[{index}]: expected an object")
    return parse_decimal(line.get(key), f"regels[{index}].{key}")


def _line(line: Any, position: int) -> InvoiceLine:
    where = f"regels[{position - 1}]"
    if not isinstance(line, dict):
        raise ValueError(f"{where}: expected an object")
    name = line.get("naam") or None
    discount = line.get("kortingomschrijving") or None
    description = f"{name} ({discount})" if name and discount else name or discount
    return InvoiceLine(
        remote_id=parse_optional_id(line.get("id"), f"{where}.id"),
        position=position,
        description=description,
        quantity=parse_optional_decimal(line.get("aantal"), f"{where}.aantal"),
        unit_price=parse_optional_decimal(line.get("bedrag"), f"{where}.bedrag"),
        tax_rate=parse_optional_decimal(line.get("btw_percentage"), f"{where}.btw_percentage"),
        amount_excl_tax=parse_optional_decimal(
            line.get("totaal_exc_btw"), f"{where}.totaal_exc_btw"
        ),
    )


def _payment(payment: Any, index: int) -> Payment:
    where = f"betalingen[{index}]"
    if not isinstance(payment, dict):
        raise ValueError(f"{where}: expected an object")
    when = parse_timestamp(payment.get("wanneer"), f"{where}.wanneer")
    method = payment.get("betaalmethode_id")
    remark = payment.get("opmerking")
    return Payment(
        remote_id=parse_id(payment.get("id"), f"{where}.id"),
        amount=parse_decimal(payment.get("bedrag"), f"{where}.bedrag"),
        paid_on=when.astimezone(_AMSTERDAM).date() if when else None,
        method=None if method is None else f"betaalmethode {method}",
        # the remark is where write-back leaves its marker (and where people note a reference)
        transaction_reference=remark.strip() or None if isinstance(remark, str) else None,
        remote_updated_at=None,
    )
