"""The normalized shape every connector produces and the store persists.

Connectors turn vendor payloads into these plain records so the sync engine and the store never
need to know which API an invoice came from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from connectors.bank.records import BankTransaction

#: The normalized invoice states, a contract with the reporting database.
INVOICE_STATES = frozenset(
    {"draft", "open", "partially_paid", "late", "paid", "uncollectible", "cancelled"}
)


class RawJSON(str):
    """JSON text exactly as the API sent it, stored verbatim so no spelling of a number is lost."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    remote_id: str | None
    position: int
    description: str | None
    quantity: Decimal | None
    unit_price: Decimal | None
    tax_rate: Decimal | None
    amount_excl_tax: Decimal | None


@dataclass(frozen=True, slots=True)
class Payment:
    remote_id: str
    amount: Decimal
    paid_on: dt.date | None
    method: str | None
    transaction_reference: str | None
    remote_updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Invoice:
    remote_id: str
    #: opaque text; for a source with ordered versions the decimal text of an integer
    remote_version: str
    number: str | None
    state: str
    state_raw: str | None
    customer_remote_id: str | None
    customer_name: str | None
    invoice_date: dt.date | None
    due_date: dt.date | None
    currency: str
    total_excl_tax: Decimal
    total_tax: Decimal
    total_incl_tax: Decimal
    total_paid: Decimal
    total_unpaid: Decimal
    payment_reference: str | None
    remote_updated_at: dt.datetime | None
    raw: RawJSON
    lines: tuple[InvoiceLine, ...] = field(default=())
    payments: tuple[Payment, ...] = field(default=())
    #: the IBAN the customer pays from, as the invoicing system knows it (upper case, no spaces)
    customer_iban: str | None = None
    #: a credit invoice (its amounts are negative: money owed to the customer)
    credit_note: bool = False

    def __post_init__(self) -> None:
        if self.state not in INVOICE_STATES:
            raise ValueError(f"state {self.state!r} is not one of {sorted(INVOICE_STATES)}")


@dataclass(frozen=True, slots=True)
class RemoteBankTransaction:
    """A bank transaction an invoicing platform holds (Moneybird's financial mutations), with the
    remote id and version the sync engine diffs on."""

    remote_id: str
    remote_version: str
    raw: RawJSON
    transaction: BankTransaction
