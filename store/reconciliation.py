"""What a reconciliation run reads: its watermark and bookkeeping, the invoices and the unsettled
transactions with what is already allocated, the decisions that bind it, and a person's
decision itself. The run's writes are `store.reconciliation_writes`; what a person reads is
`store.review`.

Money is summed in Python, never in SQL: SQLite keeps it as text.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Engine,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from store.bulk import among, chunk_size, chunks, select_rows
from store.pushes import cancel_planned
from store.reconciliation_writes import RunWriter
from store.schema import (
    bank_transaction_reconciliation,
    bank_transactions,
    invoice_reconciliation,
    invoices,
    payments,
    reconciliation_matches,
    reconciliation_runs,
)
from workers.reconciliation.model import (
    ACTIVE,
    AUTO,
    CONFIRMED,
    MANUAL,
    REJECTED,
    SUGGESTED,
    TEACHING_RULES,
    ZERO,
    Decisions,
    OpenInvoice,
    Transaction,
)

#: transaction statuses the engine looks at again on every run
UNSETTLED = ("suggested", "unmatched", "partially_allocated")


@dataclass(frozen=True, slots=True)
class Loaded:
    #: (transaction, invoice) pairs whose transaction or invoice is gone
    gone: list[tuple[int, int]]
    invoices: list[OpenInvoice]
    transactions: list[Transaction]
    decisions: Decisions
    customers_by_iban: dict[str, set[str]]
    #: return transaction id -> (invoice id, amount) of what the payment it returns paid
    returned: dict[int, list[tuple[int, Decimal]]]
    #: the status rows as stored: invoice id -> (status, bank_amount)
    invoice_statuses: dict[int, tuple[str, Decimal]]
    transaction_statuses: dict[int, tuple[str, Decimal]]
    #: the engine's standing suggestions for the transactions loaded: (transaction, invoice) ->
    #: (match id, rule, confidence, reason); a run keeps the rows (and so the ids `review`
    #: showed) of the suggestions it makes again
    suggested: dict[tuple[int, int], tuple[int, str, float, str | None]]


class ReconciliationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- runs ------------------------------------------------------------------------------------

    def watermark(self, today: dt.date) -> str:
        """What a run depends on, not counting the engine's own writes: equal watermarks mean
        nothing to do."""
        decided = (
            select(func.max(reconciliation_matches.c.decided_at), func.count())
            .where(reconciliation_matches.c.decided_at.is_not(None))
            .subquery()
        )
        query = select(  # one statement: one round trip, the scans side by side
            select(func.max(invoices.c.synced_at)).scalar_subquery(),
            select(func.max(invoices.c.deleted_at)).scalar_subquery(),
            select(func.max(bank_transactions.c.id)).scalar_subquery(),
            select(func.max(bank_transactions.c.deleted_at)).scalar_subquery(),
            *decided.c,
        )
        with self.engine.connect() as connection:
            parts = [*connection.execute(query).one(), today]
        return "|".join(str(p) for p in parts)

    def last_watermark(self) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(reconciliation_runs.c.watermark)
                .where(reconciliation_runs.c.status.in_(("ok", "unchanged")))
                .order_by(reconciliation_runs.c.id.desc())
                .limit(1)
            ).scalar()

    def start_run(self, full: bool, when: dt.datetime) -> int:
        with self.engine.begin() as connection:
            return int(
                connection.execute(
                    insert(reconciliation_runs)
                    .values(started_at=when, status="running", full_run=full)
                    .returning(reconciliation_runs.c.id)
                ).scalar_one()
            )

    def finish_run(self, run_id: int, when: dt.datetime, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(reconciliation_runs)
                .where(reconciliation_runs.c.id == run_id)
                .values(finished_at=when, **values)
            )

    # -- loading ---------------------------------------------------------------------------------

    def load(self, full: bool) -> Loaded:
        with self.engine.connect() as connection:
            active = select_rows(
                connection,
                select(
                    reconciliation_matches.c.bank_transaction_id,
                    reconciliation_matches.c.invoice_id,
                    reconciliation_matches.c.amount,
                    reconciliation_matches.c.status,
                ).where(
                    reconciliation_matches.c.status.in_(
                        (AUTO, CONFIRMED, REJECTED) if not full else (CONFIRMED, REJECTED)
                    )
                ),
            )
            gone, touched = self._gone(connection)
            by_invoice: dict[int, Decimal] = defaultdict(lambda: ZERO)
            by_tx: dict[int, Decimal] = defaultdict(lambda: ZERO)
            decisions = Decisions()
            for tx_id, invoice_id, amount, status in active:
                if (tx_id, invoice_id) in gone:
                    continue
                if status in ACTIVE:
                    by_invoice[invoice_id] += amount
                    by_tx[tx_id] += amount
                    decisions.matched.add((tx_id, invoice_id))
                else:
                    decisions.rejected.add((tx_id, invoice_id))
            loaded_invoices = self._invoices(connection, by_invoice)
            transactions = self._transactions(connection, full, by_tx, touched)
            suggested: dict[tuple[int, int], tuple[int, str, float, str | None]] = {}
            if not full:
                ids = {tx.id for tx in transactions}
                m = reconciliation_matches.c
                for match_id, tx_id, invoice_id, rule, confidence, reason in select_rows(
                    connection,
                    select(
                        m.id, m.bank_transaction_id, m.invoice_id, m.rule, m.confidence, m.reason
                    ).where(m.status == SUGGESTED),
                ):
                    if tx_id in ids and (tx_id, invoice_id) not in gone:
                        suggested[tx_id, invoice_id] = (match_id, rule, confidence, reason)
            return Loaded(
                suggested=suggested,
                gone=sorted(gone),
                invoices=loaded_invoices,
                transactions=transactions,
                decisions=decisions,
                customers_by_iban=self._customers_by_iban(connection),
                returned=self._returned(connection, [t for t in transactions if t.is_return]),
                invoice_statuses={
                    row[0]: (row[1], row[2])
                    for row in select_rows(
                        connection,
                        select(
                            invoice_reconciliation.c.invoice_id,
                            invoice_reconciliation.c.status,
                            invoice_reconciliation.c.bank_amount,
                        ),
                    )
                },
                transaction_statuses={
                    row[0]: (row[1], row[2])
                    for row in select_rows(
                        connection,
                        select(
                            bank_transaction_reconciliation.c.bank_transaction_id,
                            bank_transaction_reconciliation.c.status,
                            bank_transaction_reconciliation.c.allocated,
                        ),
                    )
                },
            )

    def _invoices(
        self, connection: Connection, allocated: dict[int, Decimal], only: int | None = None
    ) -> list[OpenInvoice]:
        c = invoices.c
        rows = select_rows(
            connection,
            select(
                c.id,
                c.source,
                c.number,
                c.customer_remote_id,
                c.customer_name,
                c.customer_iban,
                c.invoice_date,
                c.due_date,
                c.currency,
                c.total_incl_tax,
                c.total_paid,
                c.state,
                c.payment_reference,
            ).where(
                c.deleted_at.is_(None),
                c.state.not_in(("draft", "cancelled")),
                *([c.id == only] if only is not None else []),
            ),
        )
        return [
            OpenInvoice(
                id=r[0],
                source=r[1],
                number=r[2],
                customer=f"{r[1]}/{r[3]}" if r[3] is not None else None,
                customer_name=r[4],
                customer_iban=r[5],
                invoice_date=r[6],
                due_date=r[7],
                currency=r[8],
                total=r[9],
                total_paid=r[10],
                state=r[11],
                payment_reference=r[12],
                allocated=allocated.get(r[0], ZERO),
            )
            for r in rows
        ]

    def _gone(self, connection: Connection) -> tuple[set[tuple[int, int]], set[int]]:
        """Matches whose transaction or invoice is gone (deleted at the source; an invoice
        now a draft or cancelled): they count for nothing, the engine's own are removed, and
        the live transactions they touched are looked at again. Returns the pairs and those
        transactions."""
        m, t, i = reconciliation_matches.c, bank_transactions.c, invoices.c
        pairs: set[tuple[int, int]] = set()
        touched: set[int] = set()
        for tx_id, invoice_id, tx_deleted in select_rows(
            connection,
            select(m.bank_transaction_id, m.invoice_id, t.deleted_at)
            .select_from(
                reconciliation_matches.join(bank_transactions, t.id == m.bank_transaction_id).join(
                    invoices, i.id == m.invoice_id
                )
            )
            .where(
                m.status.in_((AUTO, CONFIRMED, SUGGESTED)),
                or_(
                    t.deleted_at.is_not(None),
                    i.deleted_at.is_not(None),
                    i.state.in_(("draft", "cancelled")),
                ),
            ),
        ):
            pairs.add((tx_id, invoice_id))
            if tx_deleted is None:
                touched.add(tx_id)
        return pairs, touched

    def _transactions(
        self,
        connection: Connection,
        full: bool,
        allocated: dict[int, Decimal],
        touched: Collection[int] = (),
        only: int | None = None,
    ) -> list[Transaction]:
        t = bank_transactions.c
        status = bank_transaction_reconciliation.c.status
        query = (
            select(
                t.id,
                t.account_iban,
                t.booking_date,
                t.amount,
                t.currency,
                t.counterparty_name,
                t.counterparty_iban,
                t.description,
                t.payment_reference,
                t.end_to_end_id,
                t.reversal,
                t.return_reason,
                t.bank_reference,
            )
            .select_from(
                bank_transactions.outerjoin(
                    bank_transaction_reconciliation,
                    bank_transaction_reconciliation.c.bank_transaction_id == t.id,
                )
            )
            .where(t.deleted_at.is_(None))
            .order_by(t.booking_date, t.id)
        )
        if only is not None:
            query = query.where(t.id == only)
        if not full:
            wanted = or_(status.is_(None), status.in_(UNSETTLED))
            if touched:
                wanted = or_(wanted, t.id.in_(sorted(touched)))
            query = query.where(wanted)
        return [
            Transaction(
                id=r[0],
                account_iban=r[1],
                booking_date=r[2],
                amount=r[3],
                currency=r[4],
                counterparty_name=r[5],
                counterparty_iban=r[6],
                description=r[7],
                payment_reference=r[8],
                end_to_end_id=r[9],
                reversal=bool(r[10]),
                return_reason=r[11],
                bank_reference=r[12],
                allocated=allocated.get(r[0], ZERO),
            )
            for r in select_rows(connection, query)
        ]

    def _customers_by_iban(self, connection: Connection) -> dict[str, set[str]]:
        """IBANs known to pay for a customer: the invoicing system's own, and those of
        transactions matched by reference or number or by a person."""
        known: dict[str, set[str]] = defaultdict(set)
        c = invoices.c
        for source, customer, iban in connection.execute(
            select(c.source, c.customer_remote_id, c.customer_iban)
            .where(c.customer_iban.is_not(None), c.customer_remote_id.is_not(None))
            .distinct()
        ):
            known[_iban(iban)].add(f"{source}/{customer}")
        m = reconciliation_matches.c
        for source, customer, iban in connection.execute(
            select(c.source, c.customer_remote_id, bank_transactions.c.counterparty_iban)
            .select_from(
                reconciliation_matches.join(invoices, invoices.c.id == m.invoice_id).join(
                    bank_transactions, bank_transactions.c.id == m.bank_transaction_id
                )
            )
            .where(
                m.status.in_((AUTO, CONFIRMED)),
                or_(m.status == CONFIRMED, m.rule.in_(sorted(TEACHING_RULES))),
                bank_transactions.c.counterparty_iban.is_not(None),
                c.customer_remote_id.is_not(None),
            )
            .distinct()
        ):
            known[_iban(iban)].add(f"{source}/{customer}")
        return dict(known)

    def _returned(
        self, connection: Connection, returns: Sequence[Transaction]
    ) -> dict[int, list[tuple[int, Decimal]]]:
        """For each return, the matches of the payment it returns: same account and end-to-end
        id, opposite sign, booked no later."""
        wanted = {(t.account_iban, t.end_to_end_id): t for t in returns if t.end_to_end_id}
        if not wanted:
            return {}
        t, m = bank_transactions.c, reconciliation_matches.c
        found: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
        e2e_ids = sorted({key[1] for key in wanted if key[1]})
        for chunk in chunks(e2e_ids, chunk_size(connection)):
            rows = connection.execute(
                select(
                    t.id,
                    t.account_iban,
                    t.end_to_end_id,
                    t.amount,
                    t.booking_date,
                    m.invoice_id,
                    m.amount,
                )
                .select_from(
                    bank_transactions.join(reconciliation_matches, m.bank_transaction_id == t.id)
                )
                .where(among(connection, t.end_to_end_id, chunk), m.status.in_(ACTIVE))
            )
            for tx_id, account, e2e, amount, booked, invoice_id, allocated in rows:
                ret = wanted.get((account, e2e))
                if ret is None or ret.id == tx_id or amount * ret.amount >= 0:
                    continue
                if booked > ret.booking_date:
                    continue
                found[ret.id].append((invoice_id, allocated))
        return dict(found)

    def copies(self, transactions: Sequence[Transaction]) -> dict[int, int]:
        """Transactions that are another origin's copy of a payment already here: Moneybird's
        financial mutation and a statement file's line for the same booking (same account,
        booking date and amount; the same EndToEndId and counterparty IBAN where both give
        one). Paired one to one in the order they arrived; the later of a pair is the copy.
        Returns copy id -> the id of the transaction it copies, for `transactions` only."""
        t = bank_transactions.c
        with self.engine.connect() as connection:
            origins = {
                origin
                for (origin,) in connection.execute(
                    select(t.origin).where(t.deleted_at.is_(None)).distinct()
                )
            }
            if "moneybird" not in origins or not origins - {"moneybird"}:
                return {}
            wanted = {tx.id for tx in transactions}
            days = sorted({tx.booking_date for tx in transactions})
            groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
            for start in range(0, len(days), 500):
                for row in select_rows(
                    connection,
                    select(
                        t.id,
                        t.origin,
                        t.account_iban,
                        t.booking_date,
                        t.amount,
                        t.end_to_end_id,
                        t.counterparty_iban,
                    ).where(t.deleted_at.is_(None), t.booking_date.in_(days[start : start + 500])),
                ):
                    groups[row[2], row[3], row[4]].append(row)
        copies: dict[int, int] = {}
        for rows in groups.values():
            mutations = sorted(r for r in rows if r[1] == "moneybird")
            lines = sorted(r for r in rows if r[1] != "moneybird")
            for mutation in mutations:
                for index, line in enumerate(lines):
                    if _same_payment(mutation, line):
                        first, later = sorted((mutation[0], line[0]))
                        if later in wanted:
                            copies[later] = first
                        del lines[index]
                        break
        return copies

    def unlinked_payments(
        self,
    ) -> dict[int, list[tuple[int, Decimal, dt.date | None, str | None]]]:
        """Per invoice, the payments the source registered that no match carries yet: id,
        amount, date and the reference the source gives for the money."""
        result: dict[int, list[tuple[int, Decimal, dt.date | None, str | None]]] = defaultdict(list)
        p = payments.c
        linked = select(reconciliation_matches.c.payment_id).where(
            reconciliation_matches.c.payment_id.is_not(None)
        )
        with self.engine.connect() as connection:
            for payment_id, invoice_id, amount, paid_on, reference in select_rows(
                connection,
                select(p.id, p.invoice_id, p.amount, p.paid_on, p.transaction_reference)
                .where(p.id.not_in(linked))
                .order_by(p.id),
            ):
                result[invoice_id].append((payment_id, amount, paid_on, reference))
        return dict(result)

    # -- writing ---------------------------------------------------------------------------------

    def writer(
        self,
        *,
        full: bool,
        looked_at: Sequence[int],
        gone: Sequence[tuple[int, int]] = (),
        stored_transactions: Collection[int] | None = None,
        when: dt.datetime,
    ) -> RunWriter:
        return RunWriter(
            self.engine,
            full=full,
            looked_at=looked_at,
            gone=gone,
            stored_transactions=stored_transactions,
            when=when,
        )

    # -- a person's decisions --------------------------------------------------------------------

    def decide(
        self,
        transaction_id: int,
        invoice_id: int,
        *,
        status: str,
        amount: Decimal | None,
        by: str,
        when: dt.datetime,
    ) -> int:
        """Record a person's match or rejection of a pair, replacing whatever the engine said
        about it. Returns the match id."""
        m = reconciliation_matches.c
        with self.engine.begin() as connection:
            existing = connection.execute(
                select(m.id, m.amount, m.rule, m.confidence, m.reason).where(
                    m.bank_transaction_id == transaction_id, m.invoice_id == invoice_id
                )
            ).first()
            values: dict[str, Any] = {
                "status": status,
                "decided_by": by,
                "decided_at": when,
            }
            if amount is not None:
                values["amount"] = amount
            if status == REJECTED:
                cancel_planned(
                    connection,
                    transaction_id,
                    invoice_id,
                    f"cancelled: {by} rejected the match",
                    when,
                )
            connection.execute(  # the next run looks at the transaction again
                delete(bank_transaction_reconciliation).where(
                    bank_transaction_reconciliation.c.bank_transaction_id == transaction_id
                )
            )
            if existing is not None:
                connection.execute(
                    update(reconciliation_matches).where(m.id == existing[0]).values(**values)
                )
                return int(existing[0])
            return int(
                connection.execute(
                    insert(reconciliation_matches)
                    .values(
                        {
                            "bank_transaction_id": transaction_id,
                            "invoice_id": invoice_id,
                            "amount": ZERO,
                            "rule": MANUAL,
                            "confidence": 1.0,
                            "reason": "matched by hand",
                            "created_at": when,
                            **values,
                        }
                    )
                    .returning(m.id)
                ).scalar_one()
            )


def _iban(value: str) -> str:
    return value.replace(" ", "").upper()


def _same_payment(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Two rows (id, origin, account, date, amount, end-to-end id, counterparty IBAN) of one
    account, day and amount: the same payment unless an identifier both give differs."""
    if a[5] and b[5] and a[5] != b[5]:
        return False
    if a[6] and b[6] and _iban(a[6]) != _iban(b[6]):
        return False
    return True
