"""Moneybird sales invoices through the synchronization endpoint pair.

`GET sales_invoices/synchronization.json` lists every id and version in one request;
`POST` the same path with up to 100 ids returns the full invoices. No per-invoice GETs, ever
(Moneybird asks integrators not to loop over them, and the rate limit is 150 per 5 minutes).

Assumptions written down here because the API does not say them:
- Moneybird has no `partially_paid` or `cancelled` state. An open/pending/reminded invoice with
  both something paid and something unpaid is normalized to `partially_paid`; `late` stays `late`
  even when partly paid (overdue is what a bookkeeper acts on); `scheduled` is a `draft` that
  will be sent later.
- Lines carry a `tax_rate_id`, not a percentage. The percentage is derived from the invoice's
  `tax_totals` (tax amount / taxable amount) and accepted only when exactly one whole or one-decimal
  percentage fits the cent rounding; otherwise it stays NULL rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from connectors.base import NO_HISTORY, NOTHING_LISTED, Connector, RecordStream
from connectors.http import ApiClient
from connectors.listing import Listing, ListingHistory
from connectors.moneybird.config import MoneybirdSource
from connectors.moneybird.fields import SALES_INVOICE
from connectors.moneybird.listing import VersionList, parse_listing
from connectors.parsing import (
    parse_date,
    parse_decimal,
    parse_id,
    parse_optional_decimal,
    parse_optional_id,
    parse_timestamp,
)
from connectors.payments import PaymentPush, created_id
from connectors.ratelimit import Limiter
from connectors.records import Invoice, InvoiceLine, Payment, RawJSON
from connectors.source import SourceConfig
from connectors.streams import FINANCIAL_MUTATIONS
from connectors.versions import ordered_version

_STATES = {
    "draft": "draft",
    "scheduled": "draft",
    "open": "open",
    "pending_payment": "open",
    "reminded": "open",
    "late": "late",
    "paid": "paid",
    "uncollectible": "uncollectible",
}
_OPEN_LIKE = frozenset({"open", "pending_payment", "reminded"})
_AMOUNT_TEXT = re.compile(r"^\s*(-?\d+(?:[.,]\d+)?)")
_HALF_CENT = Decimal("0.005")
_HUNDRED = Decimal(100)


class MoneybirdConnector(Connector):
    kind = "moneybird"
    batch_size = 100
    writes_payments = True

    def __init__(
        self,
        name: str,
        client: ApiClient,
        *,
        administration_id: str,
        since: dt.date,
        financial_account_id: str | None = None,
    ):
        super().__init__(name, client)
        self.administration_id = administration_id
        self.since = since
        self.financial_account_id = financial_account_id
        self._path = f"{administration_id}/sales_invoices/synchronization.json"

    @classmethod
    def from_config(
        cls, source: SourceConfig, token: str, limiter: Limiter | None = None
    ) -> MoneybirdConnector:
        """`limiter` defaults to an in-process window; the daemon passes one shared in Redis."""
        if not isinstance(source, MoneybirdSource):
            raise TypeError(f"source {source.name!r} is not a Moneybird source")
        client = cls.http_client(source, token, limiter, ApiClient)
        return cls(
            source.name,
            client,
            administration_id=source.administration_id,
            since=source.since,
            financial_account_id=source.financial_account_id,
        )

    def stream(self, kind: str) -> RecordStream:
        from connectors.moneybird.financial_mutations import FinancialMutations

        if kind == FINANCIAL_MUTATIONS:
            return FinancialMutations(self)
        return super().stream(kind)

    def period_filter(self, today: dt.date | None = None) -> str:
        """An explicit period: any filter replaces Moneybird's default `period:this_year`."""
        today = today or dt.date.today()
        until = dt.date(today.year + 10, 12, 31)
        return f"period:{self.since:%Y%m%d}..{until:%Y%m%d},state:all"

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
        pairs = self.version_list()
        return Listing(streamed=pairs, digest=pairs.digest)

    def list_versions(self) -> dict[str, str]:
        return self.version_list().as_dict()

    def version_list(self) -> VersionList:
        """Every invoice in scope and its version, in one request, read as it is used."""
        return self.client.download(
            "GET", self._path, parse_listing, params={"filter": self.period_filter()}
        )

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        self.check_batch(remote_ids)
        return self.client.request_json_array(
            "POST", self._path, SALES_INVOICE, json={"ids": [str(i) for i in remote_ids]}
        )

    def register_payment(self, push: PaymentPush) -> str:
        """`POST sales_invoices/{id}/payments` with the marker as `transaction_identifier`;
        money from Moneybird's own bank feed is linked to its financial mutation instead of
        booked on an account. Optional fields are left out, never sent as null."""
        payment: dict[str, str] = {
            "payment_date": push.paid_on.isoformat(),
            "price": format(push.amount, "f"),
            "transaction_identifier": push.marker,
        }
        if push.bank_transaction_remote_id is not None:
            payment["financial_mutation_id"] = push.bank_transaction_remote_id
            payment["manual_payment_action"] = "bank_transfer"
        elif self.financial_account_id is not None:
            payment["financial_account_id"] = self.financial_account_id
        path = f"{self.administration_id}/sales_invoices/{push.invoice_remote_id}/payments.json"
        return self.client.write("POST", path, created_id, json={"payment": payment})

    def undo_payment(self, invoice_remote_id: str, payment_remote_id: str) -> None:
        path = (
            f"{self.administration_id}/sales_invoices/{invoice_remote_id}/payments/"
            f"{payment_remote_id}.json"
        )
        self.client.delete(path)

    def normalize(self, record: Any, raw: RawJSON) -> Invoice:
        if not isinstance(record, dict):
            raise ValueError(f"expected an invoice object, got {type(record).__name__}")
        remote_id = parse_id(record.get("id"), "id")
        state_raw = record.get("state")
        if state_raw not in _STATES:
            raise ValueError(f"state: {state_raw!r} is not a known Moneybird state")
        total_excl = parse_decimal(record.get("total_price_excl_tax"), "total_price_excl_tax")
        total_incl = parse_decimal(record.get("total_price_incl_tax"), "total_price_incl_tax")
        total_paid = parse_decimal(record.get("total_paid", "0"), "total_paid")
        total_unpaid = parse_decimal(record.get("total_unpaid", "0"), "total_unpaid")
        state = _STATES[state_raw]
        if state_raw in _OPEN_LIKE and total_paid != 0 and total_unpaid != 0:
            state = "partially_paid"
        contact = record.get("contact") or {}
        if not isinstance(contact, dict):
            raise ValueError("contact: expected an object")
        tax_rates = _tax_rates(record.get("tax_totals") or [])
        details = record.get("details") or []
        payments = record.get("payments") or []
        if not isinstance(details, list) or not isinstance(payments, list):
            raise ValueError("details/payments: expected arrays")
        return Invoice(
            remote_id=remote_id,
            remote_version=_version(record.get("version")),
            number=record.get("invoice_id"),
            state=state,
            state_raw=state_raw,
            customer_remote_id=parse_optional_id(record.get("contact_id"), "contact_id"),
            customer_name=_customer_name(contact),
            invoice_date=parse_date(record.get("invoice_date"), "invoice_date"),
            due_date=parse_date(record.get("due_date"), "due_date"),
            currency=_currency(record.get("currency")),
            total_excl_tax=total_excl,
            total_tax=total_incl - total_excl,
            total_incl_tax=total_incl,
            total_paid=total_paid,
            total_unpaid=total_unpaid,
            payment_reference=record.get("payment_reference") or None,
            remote_updated_at=parse_timestamp(record.get("updated_at"), "updated_at"),
            raw=raw,
            lines=tuple(
                _line(detail, index, tax_rates) for index, detail in enumerate(details, start=1)
            ),
            payments=tuple(_payment(payment, index) for index, payment in enumerate(payments)),
            customer_iban=_customer_iban(contact),
        )


def _version(value: Any) -> str:
    return ordered_version(value)


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(f"currency: {value!r} is not an ISO 4217 code")
    return value


def _customer_iban(contact: dict[str, Any]) -> str | None:
    """The mandate's IBAN, else the contact's bank account: where the customer's money comes
    from, which reconciliation uses to recognise a payment without a reference."""
    for key in ("sepa_iban", "bank_account"):
        value = contact.get(key)
        if isinstance(value, str) and value.strip():
            return "".join(value.split()).upper()
    return None


def _customer_name(contact: dict[str, Any]) -> str | None:
    if contact.get("company_name"):
        return str(contact["company_name"])
    person = " ".join(p for p in (contact.get("firstname"), contact.get("lastname")) if p)
    return person or None


def _tax_rates(tax_totals: list[Any]) -> dict[str, Decimal]:
    rates: dict[str, Decimal] = {}
    for index, total in enumerate(tax_totals):
        field = f"tax_totals[{index}]"
        if not isinstance(total, dict):
            raise ValueError(f"{field}: expected an object")
        rate_id = parse_optional_id(total.get("tax_rate_id"), f"{field}.tax_rate_id")
        taxable = parse_optional_decimal(total.get("taxable_amount"), f"{field}.taxable_amount")
        tax = parse_optional_decimal(total.get("tax_amount"), f"{field}.tax_amount")
        if rate_id is None or taxable is None or tax is None:
            continue
        rate = derive_tax_rate(taxable, tax)
        if rate is not None:
            rates[rate_id] = rate
    return rates


def derive_tax_rate(taxable: Decimal, tax: Decimal) -> Decimal | None:
    """The one plausible percentage (whole, else one decimal) consistent with cent rounding."""
    if taxable == 0:
        return Decimal(0) if tax == 0 else None
    low = (tax - _HALF_CENT) / taxable * _HUNDRED
    high = (tax + _HALF_CENT) / taxable * _HUNDRED
    low, high = min(low, high), max(low, high)
    for step in (Decimal(1), Decimal("0.1")):
        first = (low / step).to_integral_value(rounding="ROUND_CEILING")
        last = (high / step).to_integral_value(rounding="ROUND_FLOOR")
        if first == last:
            return (first * step).quantize(step).normalize() + 0
        if first < last:
            return None
    return None


def _line(detail: Any, position: int, tax_rates: dict[str, Decimal]) -> InvoiceLine:
    field = f"details[{position - 1}]"
    if not isinstance(detail, dict):
        raise ValueError(f"{field}: expected an object")
    quantity = parse_optional_decimal(detail.get("amount_decimal"), f"{field}.amount_decimal")
    if quantity is None and isinstance(detail.get("amount"), str):
        match = _AMOUNT_TEXT.match(detail["amount"])
        quantity = parse_decimal(match.group(1), f"{field}.amount") if match else None
    row_order = detail.get("row_order")
    tax_rate_id = parse_optional_id(detail.get("tax_rate_id"), f"{field}.tax_rate_id")
    return InvoiceLine(
        remote_id=parse_optional_id(detail.get("id"), f"{field}.id"),
        position=row_order
        if isinstance(row_order, int) and not isinstance(row_order, bool)
        else position,
        description=detail.get("description"),
        quantity=quantity,
        unit_price=parse_optional_decimal(detail.get("price"), f"{field}.price"),
        tax_rate=tax_rates.get(tax_rate_id) if tax_rate_id else None,
        amount_excl_tax=parse_optional_decimal(
            detail.get("total_price_excl_tax_with_discount"),
            f"{field}.total_price_excl_tax_with_discount",
        ),
    )


def _payment(payment: Any, index: int) -> Payment:
    field = f"payments[{index}]"
    if not isinstance(payment, dict):
        raise ValueError(f"{field}: expected an object")
    if payment.get("manual_payment_action"):
        method = str(payment["manual_payment_action"])
    elif payment.get("financial_mutation_id"):
        method = "bank_transfer"
    elif payment.get("payment_transaction_id"):
        method = "moneybird_payments"
    else:
        method = None
    return Payment(
        remote_id=parse_id(payment.get("id"), f"{field}.id"),
        amount=parse_decimal(payment.get("price"), f"{field}.price"),
        paid_on=parse_date(payment.get("payment_date"), f"{field}.payment_date"),
        method=method,
        transaction_reference=payment.get("transaction_identifier") or None,
        remote_updated_at=parse_timestamp(payment.get("updated_at"), f"{field}.updated_at"),
    )
