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

import contextlib
import datetime as dt
import gc
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine

from store.reconciliation import ReconciliationStore
from workers.reconciliation.model import AUTO, SUGGESTED, Match, OpenInvoice, Transaction
from workers.reconciliation.rules import Ladder, Outcome
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
    #: seconds per phase (load, index, match, link, status, write), for the log
    seconds: dict[str, float] = field(default_factory=dict)


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
        with _no_cyclic_gc():
            result = _run(store, run_id, full, today)
    except Exception as exc:
        from workers.logs import describe_error

        store.finish_run(run_id, _now(), status="failed", error=describe_error(exc))
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
    clock = _Clock()
    loaded = store.load(full)
    clock.lap("load")
    by_id = {invoice.id: invoice for invoice in loaded.invoices}
    returned = {
        tx_id: [(by_id[i], amount) for i, amount in pairs if i in by_id]
        for tx_id, pairs in loaded.returned.items()
    }
    ladder = Ladder(loaded.invoices, loaded.decisions, loaded.customers_by_iban, returned)
    clock.lap("index")
    result = RunResult(run_id, "ok", len(loaded.transactions), len(loaded.invoices))
    payments = store.unlinked_payments()
    copies = store.copies(loaded.transactions)
    looked_at = [tx.id for tx in loaded.transactions]
    with store.writer(
        full=full,
        looked_at=looked_at,
        gone=loaded.gone,
        stored_transactions=loaded.transaction_statuses.keys(),
        when=_now(),
    ) as writer:

        def emit(tx: Transaction, outcome: Outcome | None) -> None:
            if outcome is None:
                status = "duplicate"
            else:
                for allocation in outcome.allocations:
                    made = Match(
                        tx.id,
                        allocation.invoice.id,
                        allocation.amount,
                        allocation.rule,
                        allocation.confidence,
                        AUTO,
                        allocation.reason,
                        _payment(payments, allocation.invoice, allocation.amount, tx),
                    )
                    standing = loaded.suggested.pop((tx.id, allocation.invoice.id), None)
                    if standing is None:
                        writer.add(made)
                    else:  # a suggestion of earlier runs, now certain
                        writer.update(standing[0], made)
                    result.rules[allocation.rule] += 1
                for suggestion in outcome.suggestions:
                    made = Match(
                        tx.id,
                        suggestion.invoice.id,
                        Decimal(0),
                        suggestion.rule,
                        suggestion.confidence,
                        SUGGESTED,
                        suggestion.reason,
                    )
                    standing = loaded.suggested.pop((tx.id, suggestion.invoice.id), None)
                    if standing is None:
                        writer.add(made)
                    elif standing[1:] != (made.rule, made.confidence, made.reason):
                        writer.update(standing[0], made)
                result.suggestions += len(outcome.suggestions)
                status = transaction_status(tx, bool(outcome.suggestions))
            result.transaction_statuses[status] += 1
            writer.settle(tx.id, status, tx.allocated, tx.unallocated)

        # Money from an account no invoice has taught yet waits for the end of the run: a
        # later payment by reference may teach it, and the run then matches it as the next
        # run would (one run reaches what any number of runs would).
        waiting: list[tuple[Transaction, Outcome]] = []
        for tx in loaded.transactions:
            if tx.id in copies:
                emit(tx, None)
                continue
            outcome = ladder.match(tx)
            if not outcome.allocations and tx.counterparty_iban and not ladder.knows(tx):
                waiting.append((tx, outcome))
                continue
            emit(tx, outcome)
        for tx, outcome in waiting:
            emit(tx, ladder.match(tx) if ladder.knows(tx) else outcome)
        writer.drop(standing[0] for standing in loaded.suggested.values())
        clock.lap("match")
        invoice_statuses = {}
        for invoice in loaded.invoices:
            status = invoice_status(invoice, today)
            result.invoice_statuses[status] += 1
            if loaded.invoice_statuses.get(invoice.id) != (status, invoice.allocated):
                invoice_statuses[invoice.id] = (status, invoice.allocated, invoice.remaining)
        clock.lap("status")
        writer.finish(invoice_statuses, stored_invoices=loaded.invoice_statuses.keys())
    clock.lap("write")
    result.seconds = clock.laps
    return result


def _payment(
    payments: dict[int, list[tuple[int, Decimal, dt.date | None, str | None]]],
    invoice: OpenInvoice,
    amount: Decimal,
    tx: Transaction,
) -> int | None:
    """The payment the source registered for this money, taken so that no other match carries
    it too: the one whose reference is the transaction's (its bank reference or EndToEndId),
    else one of the same amount within `PAYMENT_WINDOW`."""
    if amount * invoice.sign <= 0:
        return None
    options = payments.get(invoice.id)
    if not options:
        return None
    ours = {r for r in (tx.bank_reference, tx.end_to_end_id) if r}
    for index, (payment_id, _paid, _paid_on, reference) in enumerate(options):
        if reference and reference in ours:
            del options[index]
            return payment_id
    for index, (payment_id, paid, paid_on, _reference) in enumerate(options):
        if paid == amount and (paid_on is None or abs(paid_on - tx.booking_date) <= PAYMENT_WINDOW):
            del options[index]
            return payment_id
    return None


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """A run makes hundreds of thousands of objects without cycles; the cyclic collector would
    only rescan them, again and again as they grow (a sixth of a run's CPU at 100,000). Reference
    counting still frees everything; the collector resumes when the run ends."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now
