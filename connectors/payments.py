"""Write-back: what a connector is asked to register at its source, and what it reads back.

The sync engine only reads; registering a bank payment is the one write. The worker side
(`workers.write_back`) decides what to send and keeps the outbox; a connector only knows its API:
how to look at invoices as they are now, and how to book one payment carrying a marker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import httpx

from connectors.errors import PermanentError, TransientError
from connectors.http import decode_json
from connectors.parsing import parse_id
from connectors.records import Invoice


class WriteBackUnsupported(PermanentError):
    """This kind of source cannot register payments (or not this one, e.g. a credit note)."""


@dataclass(frozen=True, slots=True)
class PaymentPush:
    """One payment to register on one invoice at the source."""

    invoice_remote_id: str
    #: exact, in the invoice's currency, positive for an invoice
    amount: Decimal
    #: the bank booking date
    paid_on: dt.date
    #: the push's idempotency key, stored with the payment where the API keeps a text for it,
    #: so a push whose outcome is unknown can be found before it is sent again
    marker: str
    #: the source's own id of the bank transaction, when it came from that source (Moneybird's
    #: financial mutations): the payment is then linked to it
    bank_transaction_remote_id: str | None = None
    #: the amount is all that is open at the source (an API with a "mark as paid" uses it)
    settles: bool = False


def marked(invoice: Invoice, marker: str) -> str | None:
    """The remote id of the invoice's payment carrying `marker`, if it has one."""
    for payment in invoice.payments:
        if payment.transaction_reference and payment.transaction_reference.strip() == marker:
            return payment.remote_id
    return None


def created_id(response: httpx.Response, what: str) -> str:
    """The id of what a write created, from its answer's `id`. An answer without one leaves the
    outcome unknown (`ApiClient.write` makes this TransientError an `UncertainOutcome`): the
    payment is looked for before anything is sent again."""
    body = decode_json(response.content, what)
    try:
        return parse_id(body.get("id") if isinstance(body, dict) else None, "id")
    except ValueError as exc:
        raise TransientError(f"{what}: the answer names nothing created ({exc})") from None
