"""A person's side of reconciliation: the review list, and the decisions `match`, `reject` and
`confirm`, which the engine never overrides."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from store.reconciliation import ReconciliationStore
from store.review import (
    ReviewRow,
    ReviewStore,
    drop_suggestions,
    pair_state,
    write_statuses,
)
from workers.reconciliation.model import CONFIRMED, REJECTED, ZERO
from workers.reconciliation.status import invoice_status, transaction_status


class DecisionError(ValueError):
    """A decision that cannot be recorded, said in the person's terms."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def review_list(engine: Engine) -> list[ReviewRow]:
    """Best first: transactions with a strong suggestion, then the largest unmatched money."""
    rows = ReviewStore(engine).review()
    return sorted(
        rows,
        key=lambda r: (
            -(r.suggestions[0]["confidence"] if r.suggestions else 0.0),
            -abs(r.transaction["amount"]),
            r.transaction["id"],
        ),
    )


def format_review(rows: list[ReviewRow]) -> str:
    if not rows:
        return "nothing to review"
    lines = []
    for row in rows:
        tx = row.transaction
        who = tx["counterparty_name"] or "?"
        if tx["counterparty_iban"]:
            who += f" ({tx['counterparty_iban']})"
        text = tx["description"] or tx["payment_reference"] or ""
        lines.append(
            f"TX {tx['id']}  {tx['booking_date']}  {tx['currency']} {tx['amount']}  {who}  "
            f"[{row.status}]"
        )
        if text:
            lines.append(f"    {text[:120]}")
        if not row.suggestions:
            lines.append("    no candidates")
        for s in row.suggestions:
            open_ = s["open_amount"] if s["open_amount"] is not None else s["total_incl_tax"]
            lines.append(
                f"    -> invoice {s['invoice_id']} {s['number'] or '(no number)'} "
                f"({s['source']}, {s['customer_name'] or '?'}, open {open_}) "
                f"{s['confidence']:.0%} {s['rule']}: {s['reason']}  [match {s['id']}]"
            )
    return "\n".join(lines)


def _invoice(store: ReviewStore, name: str) -> dict[str, Any]:
    found = store.invoices_named(name)
    if not found:
        raise DecisionError(f"no invoice with id or number {name!r}")
    if len(found) > 1:
        ids = ", ".join(str(f["id"]) for f in found)
        raise DecisionError(f"invoice number {name!r} is on several invoices ({ids}): use the id")
    return found[0]


def _transaction(store: ReviewStore, transaction_id: int) -> dict[str, Any]:
    tx = store.transaction(transaction_id)
    if tx is None:
        raise DecisionError(f"no bank transaction {transaction_id}")
    return tx


def _default_amount(
    store: ReviewStore, tx: dict[str, Any], invoice: dict[str, Any], amount: Decimal | None
) -> Decimal:
    used, paid = store.allocated(tx["id"], invoice["id"])
    free = tx["amount"] - used
    if amount is None:
        open_ = invoice["total_incl_tax"] - paid
        if open_ * free <= 0:
            amount = free
        else:
            amount = free if abs(free) <= abs(open_) else open_
    if amount == ZERO or amount * tx["amount"] < 0:
        raise DecisionError(
            f"amount {amount} must be non-zero, with the sign of the transaction ({tx['amount']})"
        )
    if abs(amount) > abs(free):
        raise DecisionError(
            f"amount {amount} is more than the {free} of transaction {tx['id']} not yet allocated"
        )
    return amount


def match(
    engine: Engine, transaction_id: int, invoice_name: str, amount: Decimal | None, by: str
) -> int:
    store = ReviewStore(engine)
    tx = _transaction(store, transaction_id)
    invoice = _invoice(store, invoice_name)
    if tx["currency"] != invoice["currency"]:
        raise DecisionError(
            f"transaction {tx['id']} is in {tx['currency']}, invoice {invoice['id']} in "
            f"{invoice['currency']}"
        )
    amount = _default_amount(store, tx, invoice, amount)
    return ReconciliationStore(engine).decide(
        tx["id"], invoice["id"], status=CONFIRMED, amount=amount, by=by, when=_now()
    )


def reject(engine: Engine, transaction_id: int, invoice_name: str, by: str) -> int:
    store = ReviewStore(engine)
    tx = _transaction(store, transaction_id)
    invoice = _invoice(store, invoice_name)
    return ReconciliationStore(engine).decide(
        tx["id"], invoice["id"], status=REJECTED, amount=None, by=by, when=_now()
    )


def confirm(engine: Engine, match_id: int, by: str) -> int:
    store = ReviewStore(engine)
    found = store.match(match_id)
    if found is None:
        raise DecisionError(f"no match {match_id}")
    tx = _transaction(store, found["bank_transaction_id"])
    invoice = _invoice(store, str(found["invoice_id"]))
    amount = found["amount"] if found["amount"] else None
    amount = _default_amount(store, tx, invoice, amount)
    return ReconciliationStore(engine).decide(
        tx["id"], invoice["id"], status=CONFIRMED, amount=amount, by=by, when=_now()
    )


def refresh(engine: Engine, transaction_id: int, invoice_id: int, today: dt.date) -> str:
    """The statuses of the transaction and the invoice a decision touched, written now (the
    next run re-matches whatever the decision freed); returns them in words."""
    tx, suggested, invoice = pair_state(engine, transaction_id, invoice_id)
    tx_statuses, invoice_statuses = {}, {}
    words = []
    if tx is not None:
        if tx.allocated and not tx.unallocated and suggested:
            drop_suggestions(engine, tx.id)
            suggested = False
        status = transaction_status(tx, suggested)
        tx_statuses[tx.id] = (status, tx.allocated, tx.unallocated)
        words.append(f"transaction {tx.id}: {status}, {tx.allocated} of {tx.amount} allocated")
    if invoice is not None:
        status = invoice_status(invoice, today)
        invoice_statuses[invoice.id] = (status, invoice.allocated, invoice.remaining)
        words.append(
            f"invoice {invoice.id} ({invoice.number or 'no number'}): {status}, "
            f"{invoice.allocated} of {invoice.total} paid by the bank"
        )
    write_statuses(engine, invoice_statuses, tx_statuses, _now())
    return "; ".join(words)
