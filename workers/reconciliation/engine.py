"""One reconciliation run: load what is unsettled, climb the ladder for each transaction, link
the payments the source registered, and write matches and statuses in one transaction.

How a run knows what changed: a watermark of the newest invoice write and deletion, the highest
bank transaction id and deletion, the newest decision by a person and the day. When it equals
the last run's, nothing can have changed and the run ends at once (`unchanged`). Otherwise the
run looks at every transaction not yet settled (no status yet, `unmatched`, `suggested` or
`partially_allocated`) against all live invoices, since a new invoice can settle an old
transaction; settled transactions are not looked at again unless `--full`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine

from store.reconciliation import ReconciliationStore
from workers.reconciliation.model import AUTO, SUGGESTED, Match, OpenInvoice
from workers.reconciliation.rules import Ladder
from workers.reconciliation.status import invoice_status, transaction_status

#: a registered payment is taken to be the bank money when its date is this close
PAYMENT_WINDOW = dt.timedelta(days=10)


@dataclass
class RunResult:
    run_id: int
    status: str
    transactions: int = 0
    invoices: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    suggestions: int = 0
    invoice_statuses: Counter[str] = field(default_factory=Counter)
    transaction_statuses: Counter[str] = field(default_factory=Counter)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def reconcile(engine: Engine, *, full: bool = False, today: dt.date | None = None) -> RunResult:
    store = ReconciliationStore(engine)
    today = today or dt.date.today()
    watermark = store.watermark(today)
    run_id = store.start_run(full, _now())
    if not full and watermark == store.last_watermark():
        store.finish_run(run_id, _now(), status="unchanged", watermark=watermark)
        return RunResult(run_id, "unchanged")
    try:
        result = _run(store, run_id, full, today)
    except Exception as exc:
        store.finish_run(run_id, _now(), status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    store.finish_run(
        run_id,
        _now(),
        status="ok",
        watermark=watermark,
        transactions=result.transactions,
        invoices=result.invoices,
        auto_matches=sum(result.rules.values()),
        suggestions=result.suggestions,
    )
    return result


def _run(store: ReconciliationStore, run_id: int, full: bool, today: dt.date) -> RunResult:
    loaded = store.load(full)
    by_id = {invoice.id: invoice for invoice in loaded.invoices}
    returned = {
        tx_id: [(by_id[i], amount) for i, amount in pairs if i in by_id]
        for tx_id, pairs in loaded.returned.items()
    }
    ladder = Ladder(loaded.invoices, loaded.decisions, loaded.customers_by_iban, returned)
    result = RunResult(run_id, "ok", len(loaded.transactions), len(loaded.invoices))
    matches: list[Match] = []
    suggested: set[int] = set()
    for tx in loaded.transactions:
        outcome = ladder.match(tx)
        for allocation in outcome.allocations:
            matches.append(
                Match(
                    tx.id,
                    allocation.invoice.id,
                    allocation.amount,
                    allocation.rule,
                    allocation.confidence,
                    AUTO,
                    allocation.reason,
                )
            )
            result.rules[allocation.rule] += 1
        for suggestion in outcome.suggestions:
            matches.append(
                Match(
                    tx.id,
                    suggestion.invoice.id,
                    Decimal(0),
                    suggestion.rule,
                    suggestion.confidence,
                    SUGGESTED,
                    suggestion.reason,
                )
            )
            suggested.add(tx.id)
        result.suggestions += len(outcome.suggestions)
    _link_payments(store, matches, {tx.id: tx.booking_date for tx in loaded.transactions}, by_id)

    invoice_statuses = {}
    for invoice in loaded.invoices:
        status = invoice_status(invoice, today)
        result.invoice_statuses[status] += 1
        if loaded.invoice_statuses.get(invoice.id) != (status, invoice.allocated):
            invoice_statuses[invoice.id] = (status, invoice.allocated, invoice.remaining)
    transaction_statuses = {}
    for tx in loaded.transactions:
        status = transaction_status(tx, tx.id in suggested)
        result.transaction_statuses[status] += 1
        if loaded.transaction_statuses.get(tx.id) != (status, tx.allocated):
            transaction_statuses[tx.id] = (status, tx.allocated, tx.unallocated)
    store.write(
        full=full,
        looked_at=[tx.id for tx in loaded.transactions],
        matches=matches,
        invoice_statuses=invoice_statuses,
        transaction_statuses=transaction_statuses,
        when=_now(),
    )
    return result


def _link_payments(
    store: ReconciliationStore,
    matches: list[Match],
    booked: dict[int, dt.date],
    invoices: dict[int, OpenInvoice],
) -> None:
    """A payment the source registered is the bank money when amount and date agree."""
    automatic = [
        m for m in matches if m.status == AUTO and m.amount * invoices[m.invoice_id].sign > 0
    ]
    if not automatic:
        return
    candidates = store.unlinked_payments(m.invoice_id for m in automatic)
    for match in automatic:
        options = candidates.get(match.invoice_id)
        if not options:
            continue
        day = booked[match.transaction_id]
        for index, (payment_id, amount, paid_on, _reference) in enumerate(options):
            if amount == match.amount and (paid_on is None or abs(paid_on - day) <= PAYMENT_WINDOW):
                match.payment_id = payment_id
                del options[index]
                break
