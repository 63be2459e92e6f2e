"""What a bookkeeper reads per invoice and per bank transaction, from what the bank paid and
what the invoicing system says (`invoice_reconciliation.status`,
`bank_transaction_reconciliation.status`).
"""

from __future__ import annotations

import datetime as dt

from workers.reconciliation.model import ZERO, OpenInvoice, Transaction

INVOICE_STATUSES = (
    "reconciled",
    "partially_paid",
    "overpaid",
    "paid_without_bank_evidence",
    "bank_payment_not_recorded",
    "open",
    "not_due",
)
TRANSACTION_STATUSES = (
    "matched",
    "partially_allocated",
    "suggested",
    "unmatched",
    "not_receivable",
    "duplicate",
)


def invoice_status(invoice: OpenInvoice, today: dt.date) -> str:
    """Compared in the invoice's own sign, so a credit note reads like an invoice."""
    sign = invoice.sign
    total, bank, paid = invoice.total * sign, invoice.allocated * sign, invoice.total_paid * sign
    paid_at_source = invoice.state == "paid" or (total > 0 and paid >= total)
    if total == 0:
        return "reconciled"
    if bank > total:
        return "overpaid"
    if bank == total:
        return "reconciled" if paid_at_source else "bank_payment_not_recorded"
    if bank > 0:
        return "bank_payment_not_recorded" if paid < bank else "partially_paid"
    if paid_at_source or paid > 0:
        return "paid_without_bank_evidence"
    if invoice.due_date is not None and invoice.due_date > today:
        return "not_due"
    return "open"


def transaction_status(tx: Transaction, suggested: bool) -> str:
    if tx.allocated and not tx.unallocated:
        return "matched"
    if tx.allocated * tx.amount > 0:
        return "partially_allocated"
    if suggested:
        return "suggested"
    if tx.amount > 0 or (tx.amount == ZERO and not tx.is_return):
        return "unmatched"
    return "not_receivable"
