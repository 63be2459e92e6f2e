"""The reconciliation engine's view of the data: invoices with what the bank has paid on them,
transactions with what of them is allocated, and the matches between the two.

Amounts are compared by direction: an invoice and the money paying it have the same sign (an
incoming payment for an invoice, an outgoing refund for a credit note), so `remaining` is what is
still to come, in the invoice's own sign.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)

#: match statuses (`reconciliation_matches.status`)
AUTO, SUGGESTED, CONFIRMED, REJECTED = "auto", "suggested", "confirmed", "rejected"
#: the statuses whose amount counts as allocated
ACTIVE = frozenset({AUTO, CONFIRMED})

#: rules (`reconciliation_matches.rule`), in the order of the ladder
REFERENCE = "reference"
INVOICE_NUMBER = "invoice_number"
IBAN_AMOUNT = "iban_amount"
SEVERAL_NUMBERS = "several_numbers"
BATCH_SUM = "batch_sum"
PARTIAL_PAYMENT = "partial_payment"
NAME_AMOUNT = "name_amount"
RETURNED = "returned"
MANUAL = "manual"
#: rules whose matches teach which IBAN pays for which customer (a match by account or amount
#: alone would only confirm itself)
TEACHING_RULES = frozenset({REFERENCE, INVOICE_NUMBER, SEVERAL_NUMBERS, PARTIAL_PAYMENT, MANUAL})
RULES = (
    REFERENCE,
    INVOICE_NUMBER,
    IBAN_AMOUNT,
    SEVERAL_NUMBERS,
    BATCH_SUM,
    PARTIAL_PAYMENT,
    NAME_AMOUNT,
    RETURNED,
    MANUAL,
)


@dataclass(slots=True)
class OpenInvoice:
    id: int
    source: str
    number: str | None
    customer: str | None  # "source/customer_remote_id": customers are per source
    customer_name: str | None
    customer_iban: str | None
    invoice_date: dt.date | None
    due_date: dt.date | None
    currency: str
    total: Decimal
    total_paid: Decimal  # what the source says has been paid
    state: str
    payment_reference: str | None
    #: what the bank has paid on it so far (active matches), in the invoice's sign
    allocated: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.total - self.allocated

    @property
    def sign(self) -> int:
        return -1 if self.total < 0 else 1


@dataclass(slots=True)
class Transaction:
    id: int
    account_iban: str
    booking_date: dt.date
    amount: Decimal
    currency: str
    counterparty_name: str | None
    counterparty_iban: str | None
    description: str | None
    payment_reference: str | None
    end_to_end_id: str | None
    reversal: bool
    return_reason: str | None
    #: what of it is already allocated to invoices (active matches), in its own sign
    allocated: Decimal = ZERO
    #: the bank's own id of it (`bank_transactions.bank_reference`)
    bank_reference: str | None = None

    @property
    def unallocated(self) -> Decimal:
        return self.amount - self.allocated

    @property
    def is_return(self) -> bool:
        return self.reversal or bool(self.return_reason)


@dataclass(slots=True)
class Match:
    """A proposed or made allocation of (part of) a transaction to an invoice."""

    transaction_id: int
    invoice_id: int
    amount: Decimal
    rule: str
    confidence: float
    status: str
    reason: str
    payment_id: int | None = None


@dataclass(slots=True)
class Decisions:
    """What is already settled about pairs: active matches, and pairs a person rejected."""

    matched: set[tuple[int, int]] = field(default_factory=set)
    rejected: set[tuple[int, int]] = field(default_factory=set)

    def allows(self, transaction_id: int, invoice_id: int) -> bool:
        pair = (transaction_id, invoice_id)
        return pair not in self.matched and pair not in self.rejected
