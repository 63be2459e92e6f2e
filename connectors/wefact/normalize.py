"""A WeFact invoice (`invoice show`) as the normalized `Invoice` every source produces.

Why these rules:
- Amounts arrive as JSON numbers or as text with a decimal point, a decimal comma, or Dutch
  thousands dots (`"1.329,64"`): `wefact_amount` reads them explicitly. One separator is the
  decimal separator; a separator that repeats, or stands before the other one, groups thousands,
  so a thousands separator never becomes a decimal point. Anything else is refused by name.
- WeFact keeps payments on the invoice (`AmountPaid`, `PayDate`, `TransactionID`), not as a list.
  The mirror shows them as one payment per invoice, remote id `<Identifier>:paid`, carrying the
  amount paid so far: its id is the same every cycle and under `--full`, so a change of
  `AmountPaid` changes that payment's amount and nothing else moves (its local id stays).
- Status codes: 0 draft, 2 open (late once `PayBefore` has passed), 3 partially_paid, 4 paid,
  8 credit invoice (`credit_note` true, negative amounts, open until settled), 9 cancelled; the
  code stays in `state_raw`.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from connectors.parsing import parse_date, parse_id
from connectors.records import Invoice, InvoiceLine, Payment, RawJSON

_PLAIN = re.compile(r"-?\d+")
_ONE_SEPARATOR = re.compile(r"(-?\d+)[.,](\d+)")
_DOT_GROUPS = re.compile(r"(-?\d{1,3}(?:\.\d{3})+)(?:,(\d+))?")
_COMMA_GROUPS = re.compile(r"(-?\d{1,3}(?:,\d{3})+)(?:\.(\d+))?")
_STATES = {0: "draft", 2: "open", 3: "partially_paid", 4: "paid", 9: "cancelled"}
CREDIT_INVOICE = 8


def wefact_amount(value: Any, field: str) -> Decimal:
    """An amount as WeFact spells it, exactly (see the module's rules)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{field}: expected an amount, got {value!r}")
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the decoder's exact fast path (see connectors.http)
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected an amount, got {type(value).__name__}")
    text = value.strip().replace("\u2212", "-")
    if _PLAIN.fullmatch(text):
        return Decimal(text)
    if match := _ONE_SEPARATOR.fullmatch(text):
        return Decimal(f"{match[1]}.{match[2]}")
    for groups, separator in ((_DOT_GROUPS, "."), (_COMMA_GROUPS, ",")):
        if match := groups.fullmatch(text):
            whole = match[1].replace(separator, "")
            return Decimal(f"{whole}.{match[2]}" if match[2] else whole)
    raise ValueError(f"{field}: {value!r} is not an amount")


def _optional_amount(value: Any, field: str) -> Decimal | None:
    return None if value is None or value == "" else wefact_amount(value, field)


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("Status: expected a status code")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or (value not in _STATES and value != CREDIT_INVOICE):
        raise ValueError(f"Status: {value!r} is not a WeFact invoice status code")
    return value


def normalize_invoice(record: Any, raw: RawJSON, *, version: str, today: dt.date) -> Invoice:
    if not isinstance(record, dict):
        raise ValueError("invoice: expected an object")
    remote_id = parse_id(record.get("Identifier"), "Identifier")
    status = _status(record.get("Status"))
    excl = wefact_amount(record.get("AmountExcl"), "AmountExcl")
    tax = wefact_amount(record.get("AmountTax"), "AmountTax")
    incl = wefact_amount(record.get("AmountIncl"), "AmountIncl")
    paid = _optional_amount(record.get("AmountPaid"), "AmountPaid") or Decimal(0)
    outstanding = _optional_amount(record.get("AmountOutstanding"), "AmountOutstanding")
    unpaid = incl - paid if outstanding is None else outstanding
    due = parse_date(record.get("PayBefore"), "PayBefore")
    if status == CREDIT_INVOICE:
        state = "paid" if unpaid == 0 else "open"
    else:
        state = _STATES[status]
        if state == "open" and due is not None and due < today:
            state = "late"
    lines = record.get("InvoiceLines") or []
    if not isinstance(lines, list):
        raise ValueError("InvoiceLines: expected an array")
    code = record.get("InvoiceCode")
    return Invoice(
        remote_id=remote_id,
        remote_version=version,
        number=None if not code or str(code).startswith("[concept]") else str(code),
        state=state,
        state_raw=str(status),
        customer_remote_id=parse_id(record["Debtor"], "Debtor") if record.get("Debtor") else None,
        customer_name=_debtor_name(record),
        invoice_date=parse_date(record.get("Date"), "Date"),
        due_date=due,
        currency=str(record.get("Currency") or "EUR"),
        total_excl_tax=excl,
        total_tax=tax,
        total_incl_tax=incl,
        total_paid=paid,
        total_unpaid=unpaid,
        payment_reference=str(record.get("ReferenceNumber") or "") or None,
        remote_updated_at=None,
        raw=raw,
        lines=tuple(_line(line, index) for index, line in enumerate(lines)),
        payments=_payments(remote_id, paid, record),
        credit_note=status == CREDIT_INVOICE,
    )


def _debtor_name(record: dict[str, Any]) -> str | None:
    company = str(record.get("CompanyName") or "").strip()
    if company:
        return company
    person = " ".join(
        str(part).strip() for part in (record.get("Initials"), record.get("SurName")) if part
    )
    return person or None


def _line(line: Any, index: int) -> InvoiceLine:
    where = f"InvoiceLines[{index}]"
    if not isinstance(line, dict):
        raise ValueError(f"{where}: expected an object")
    quantity = _optional_amount(line.get("Number"), f"{where}.Number")
    price = _optional_amount(line.get("PriceExcl"), f"{where}.PriceExcl")
    discount = _optional_amount(line.get("DiscountPercentage"), f"{where}.DiscountPercentage")
    amount = None
    if quantity is not None and price is not None:
        amount = quantity * price * (1 - (discount or Decimal(0)) / 100)
    suffix = str(line.get("NumberSuffix") or "").strip()
    description = str(line.get("Description") or "").strip() or None
    if description and suffix:
        description = f"{description} ({suffix})"
    identifier = line.get("Identifier")
    return InvoiceLine(
        remote_id=None if identifier in (None, "") else parse_id(identifier, f"{where}.Identifier"),
        position=index + 1,
        description=description,
        quantity=quantity,
        unit_price=price,
        tax_rate=_optional_amount(line.get("TaxPercentage"), f"{where}.TaxPercentage"),
        amount_excl_tax=amount,
    )


def _payments(remote_id: str, paid: Decimal, record: dict[str, Any]) -> tuple[Payment, ...]:
    if paid == 0:
        return ()
    transaction = str(record.get("TransactionID") or "").strip() or None
    method = str(record.get("PaymentMethod") or "").strip() or None
    return (
        Payment(
            remote_id=f"{remote_id}:paid",
            amount=paid,
            paid_on=parse_date(record.get("PayDate"), "PayDate"),
            method=method,
            transaction_reference=transaction,
            remote_updated_at=None,
        ),
    )
