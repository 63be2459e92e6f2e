"""The fields of a Moneybird sales invoice that `MoneybirdConnector.normalize` reads, and only
those: a batch answer is decoded into them (`connectors.http.json_shape`), the rest of each
invoice skipped. A field read in `normalize` must be named here (a test compares the two
readings over the simulator's invoices). Every value is `Any`: `normalize` judges types, and an
invoice whose structure does not fit is decoded whole and judged there."""

from __future__ import annotations

from typing import Any, TypedDict

from connectors.http import json_shape


class _Contact(TypedDict, total=False):
    company_name: Any
    firstname: Any
    lastname: Any
    sepa_iban: Any
    bank_account: Any


class _TaxTotal(TypedDict, total=False):
    tax_rate_id: Any
    taxable_amount: Any
    tax_amount: Any


class _Detail(TypedDict, total=False):
    id: Any
    amount_decimal: Any
    amount: Any
    row_order: Any
    tax_rate_id: Any
    description: Any
    price: Any
    total_price_excl_tax_with_discount: Any


class _Payment(TypedDict, total=False):
    id: Any
    price: Any
    payment_date: Any
    manual_payment_action: Any
    financial_mutation_id: Any
    payment_transaction_id: Any
    transaction_identifier: Any
    updated_at: Any


class SalesInvoiceFields(TypedDict, total=False):
    id: Any
    version: Any
    state: Any
    invoice_id: Any
    contact_id: Any
    contact: _Contact | None
    invoice_date: Any
    due_date: Any
    currency: Any
    total_price_excl_tax: Any
    total_price_incl_tax: Any
    total_paid: Any
    total_unpaid: Any
    payment_reference: Any
    updated_at: Any
    tax_totals: list[_TaxTotal] | None
    details: list[_Detail] | None
    payments: list[_Payment] | None


SALES_INVOICE = json_shape(SalesInvoiceFields)
