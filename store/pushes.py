"""The write-back outbox (`payment_pushes`): which bank payments are to be registered at the
invoicing systems, and what became of each.

A row is planned from an active match whose invoice the source does not know to be paid, claimed
(`sending`) in its own committed transaction before the request leaves, and settled after it. A
worker that dies in between leaves `sending`: the payment is then looked for at the source
before anything is sent again (`workers.write_back`). The row's `idempotency_key` is unique, so
one bank transaction pays one invoice at most once, whatever runs twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Engine, and_, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from store.schema import (
    bank_transactions,
    invoice_reconciliation,
    invoices,
    payment_pushes,
    payments,
    reconciliation_matches,
)
from workers.reconciliation.model import ACTIVE, REJECTED

PLANNED, SENDING, SENT, CONFIRMED, FAILED, CANCELLED = (
    "planned",
    "sending",
    "sent",
    "confirmed",
    "failed",
    "cancelled",
)
STATUSES = (PLANNED, SENDING, SENT, CONFIRMED, FAILED, CANCELLED)
#: the reconciliation status of an invoice whose bank money the source has not recorded
NOT_RECORDED = "bank_payment_not_recorded"

_p, _m, _i, _t = payment_pushes.c, reconciliation_matches.c, invoices.c, bank_transactions.c


def _pair() -> Any:
    return and_(_m.bank_transaction_id == _p.bank_transaction_id, _m.invoice_id == _p.invoice_id)


def _pays(amount: Decimal, invoice_total: Decimal) -> bool:
    """Money in on an invoice (a returned direct debit, negative, undoes a payment instead)."""
    return amount > 0 and invoice_total > 0


def idempotency_key(transaction_id: int, booking_date: dt.date, invoice_id: int) -> str:
    """Stable for the pair, unique per pair, and a person reading it at the source can find
    the bank transaction (`invoice-sync` names it by id and booking date)."""
    return f"invoice-sync tx {transaction_id} {booking_date.isoformat()} inv {invoice_id}"


@dataclass(frozen=True, slots=True)
class Push:
    """A push with what sending it needs from the mirror."""

    id: int
    source: str
    status: str
    amount: Decimal
    paid_on: dt.date
    idempotency_key: str
    attempts: int
    last_error: str | None
    remote_payment_id: str | None
    bank_transaction_id: int
    invoice_id: int
    invoice_remote_id: str
    invoice_number: str | None
    #: the invoice as the mirror holds it: what the match was made against
    invoice_total: Decimal
    currency: str
    #: the active match's rule and amount now (None: no longer active)
    rule: str | None
    match_amount: Decimal | None
    #: the source's own id of the bank transaction, when the money came from that source's
    #: bank feed (Moneybird financial mutations)
    bank_transaction_remote_id: str | None


@dataclass(frozen=True, slots=True)
class Planning:
    """What one planning pass changed."""

    planned: int
    revived: int
    withdrawn: int
    confirmed: int


class PushStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def plan(self, sources: Collection[str], now: dt.datetime) -> Planning:
        """Bring the outbox of these sources up to date with reconciliation: confirm pushes a
        sync has since seen at the source, withdraw planned ones whose match is no longer
        active, plan the new ones, and plan again those cancelled because the invoice had
        changed once a later sync has brought the invoice up to date."""
        if not sources:
            return Planning(0, 0, 0, 0)
        with self.engine.begin() as connection:
            self._relink(connection, sources)
            confirmed = self._confirm(connection, sources, now)
            withdrawn = self._withdraw(connection, sources, now)
            revived = self._revive(connection, sources, now)
            planned = self._plan_new(connection, sources, now)
        return Planning(planned, revived, withdrawn, confirmed)

    @staticmethod
    def _relink(connection: Connection, sources: Collection[str]) -> None:
        """`reconcile --full` gives the engine's matches new ids: follow the pair."""
        current = select(_m.id).where(_pair(), _m.status.in_(ACTIVE)).limit(1).scalar_subquery()
        connection.execute(
            update(payment_pushes)
            .where(_p.source.in_(sources), _p.match_id.is_(None))
            .values(match_id=current)
        )

    @staticmethod
    def _confirm(connection: Connection, sources: Collection[str], now: dt.datetime) -> int:
        seen = exists().where(
            payments.c.invoice_id == _p.invoice_id,
            or_(
                payments.c.remote_id == _p.remote_payment_id,
                payments.c.transaction_reference == _p.idempotency_key,
            ),
        )
        return connection.execute(
            update(payment_pushes)
            .where(_p.source.in_(sources), _p.status.in_((SENDING, SENT)), seen)
            .values(status=CONFIRMED, updated_at=now)
        ).rowcount

    @staticmethod
    def _withdraw(connection: Connection, sources: Collection[str], now: dt.datetime) -> int:
        rows = connection.execute(
            select(_p.id, _m.status)
            .outerjoin(reconciliation_matches, _pair())
            .where(
                _p.source.in_(sources),
                _p.status == PLANNED,
                or_(_m.id.is_(None), _m.status.not_in(ACTIVE)),
            )
        ).all()
        for push_id, match_status in rows:
            reason = (
                "cancelled: a person rejected the match"
                if match_status == REJECTED
                else "cancelled: reconciliation no longer matches this payment to the invoice"
            )
            connection.execute(
                update(payment_pushes)
                .where(_p.id == push_id)
                .values(status=CANCELLED, last_error=reason, updated_at=now)
            )
        return len(rows)

    @staticmethod
    def _eligible() -> Any:
        """What makes an active match a payment to register: the source has not recorded this
        money (no payment found for it, the invoice's bank money not recorded), the invoice is
        a live invoice (not a credit note), and the money pays it (same currency; the same sign is
        `_pays`, in Python: SQLite keeps money as text)."""
        return and_(
            _m.status.in_(ACTIVE),
            _m.payment_id.is_(None),
            _i.deleted_at.is_(None),
            _i.credit_note.is_(False),
            _i.currency == _t.currency,
            _t.deleted_at.is_(None),
            invoice_reconciliation.c.status == NOT_RECORDED,
        )

    def _revive(self, connection: Connection, sources: Collection[str], now: dt.datetime) -> int:
        stale = (
            select(_p.id, _m.id, _m.amount, _i.total_incl_tax)
            .join(reconciliation_matches, _pair())
            .join(invoices, _i.id == _p.invoice_id)
            .join(bank_transactions, _t.id == _p.bank_transaction_id)
            .join(invoice_reconciliation, invoice_reconciliation.c.invoice_id == _i.id)
            .where(
                _p.source.in_(sources),
                _p.status == CANCELLED,
                _p.remote_payment_id.is_(None),
                _i.synced_at > _p.updated_at,
                self._eligible(),
            )
        )
        rows = [row for row in connection.execute(stale) if _pays(row[2], row[3])]
        for push_id, match_id, amount, _total in rows:
            connection.execute(
                update(payment_pushes)
                .where(_p.id == push_id)
                .values(
                    status=PLANNED,
                    match_id=match_id,
                    amount=amount,
                    last_error=None,
                    updated_at=now,
                )
            )
        return len(rows)

    def _plan_new(self, connection: Connection, sources: Collection[str], now: dt.datetime) -> int:
        pushed = exists().where(
            _p.bank_transaction_id == _m.bank_transaction_id, _p.invoice_id == _m.invoice_id
        )
        candidates = connection.execute(
            select(
                _m.id,
                _m.bank_transaction_id,
                _m.invoice_id,
                _m.amount,
                _i.source,
                _t.booking_date,
                _i.total_incl_tax,
            )
            .join(invoices, _i.id == _m.invoice_id)
            .join(bank_transactions, _t.id == _m.bank_transaction_id)
            .join(invoice_reconciliation, invoice_reconciliation.c.invoice_id == _i.id)
            .where(_i.source.in_(sources), self._eligible(), ~pushed)
            .order_by(_m.id)
        )
        rows = [row[:6] for row in candidates if _pays(row[3], row[6])]
        if rows:
            connection.execute(
                insert(payment_pushes),
                [
                    {
                        "match_id": match_id,
                        "bank_transaction_id": tx_id,
                        "source": source,
                        "invoice_id": invoice_id,
                        "amount": amount,
                        "paid_on": booked,
                        "idempotency_key": idempotency_key(tx_id, booked, invoice_id),
                        "status": PLANNED,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for match_id, tx_id, invoice_id, amount, source, booked in rows
                ],
            )
        return len(rows)

    def pushes(
        self, source: str, statuses: Collection[str], *, claimable_before: dt.datetime | None = None
    ) -> list[Push]:
        """The source's pushes in these statuses, oldest first, with what sending needs. With
        `claimable_before`, `sending` ones only when claimed before it (a claim younger than
        that may still be in flight in another worker)."""
        condition: Any = _p.status.in_(statuses)
        if claimable_before is not None:
            condition = or_(
                _p.status.in_(set(statuses) - {SENDING}),
                and_(_p.status == SENDING, _p.updated_at < claimable_before),
            )
        return self._read(self._query().where(_p.source == source, condition))

    @staticmethod
    def _query() -> Any:
        """A push with what sending it needs: the invoice, the bank transaction, the active
        match of the pair (if any)."""
        return (
            select(
                _p.id,
                _p.source,
                _p.status,
                _p.amount,
                _p.paid_on,
                _p.idempotency_key,
                _p.attempts,
                _p.last_error,
                _p.remote_payment_id,
                _p.bank_transaction_id,
                _p.invoice_id,
                _i.remote_id,
                _i.number,
                _i.total_incl_tax,
                _i.currency,
                _m.rule,
                _m.amount,
                _t.origin,
                _t.source,
                _t.bank_reference,
            )
            .join(invoices, _i.id == _p.invoice_id)
            .join(bank_transactions, _t.id == _p.bank_transaction_id)
            .outerjoin(reconciliation_matches, and_(_pair(), _m.status.in_(ACTIVE)))
            .order_by(_p.id)
        )

    def get(self, push_id: int) -> Push | None:
        found = self._read(self._query().where(_p.id == push_id))
        return found[0] if found else None

    def _read(self, query: Any) -> list[Push]:
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            Push(*row[:17], row[19] if (row[17], row[18]) == ("moneybird", row[1]) else None)  # type: ignore[call-arg]
            for row in rows
        ]

    def claim(
        self, push_id: int, now: dt.datetime, claimable_before: dt.datetime
    ) -> Literal["claimed", "withdrawn", "taken"]:
        """Mark the push `sending` (committed) before its request leaves: a crash after this
        leaves it to be looked for at the source. `taken`: another worker has it (or it is
        settled); `withdrawn`: its match is no longer active, so it is cancelled. Each step is
        one UPDATE, so SQLite never has to turn a read into a write under a competing writer."""
        active = exists().where(_pair(), _m.status.in_(ACTIVE))
        claimable = and_(
            _p.id == push_id,
            or_(_p.status == PLANNED, and_(_p.status == SENDING, _p.updated_at < claimable_before)),
        )
        with self.engine.begin() as connection:
            if connection.execute(
                update(payment_pushes)
                .where(claimable, active)
                .values(status=SENDING, attempts=_p.attempts + 1, updated_at=now)
            ).rowcount:
                return "claimed"
            withdrawn = connection.execute(
                update(payment_pushes)
                .where(claimable, ~active)
                .values(
                    status=CANCELLED,
                    last_error="cancelled: the match is no longer active",
                    updated_at=now,
                )
            ).rowcount
        return "withdrawn" if withdrawn else "taken"

    def settle(
        self,
        push_id: int,
        status: str,
        now: dt.datetime,
        *,
        error: str | None = None,
        remote_payment_id: str | None = None,
        amount: Decimal | None = None,
    ) -> None:
        """Record what became of a push: `sent` (with the source's id and the amount sent),
        `failed` or `cancelled` (with why), `planned` again (nothing was written: a refused
        token, no connection), or still `sending` with what made the outcome unknown."""
        values: dict[str, Any] = {"status": status, "updated_at": now, "last_error": error}
        if remote_payment_id is not None:
            values["remote_payment_id"] = remote_payment_id
        if amount is not None:
            values["amount"] = amount
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # a settlement lost with the server is safe: the push stays `sending`, and is
                # looked for at the source; only the claim must be durable before the request
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            connection.execute(update(payment_pushes).where(_p.id == push_id).values(**values))

    def retry(self, push_ids: Collection[int], now: dt.datetime) -> int:
        """A person mended what made these pushes fail: they are planned again."""
        with self.engine.begin() as connection:
            return connection.execute(
                update(payment_pushes)
                .where(_p.id.in_(push_ids), _p.status == FAILED)
                .values(status=PLANNED, last_error=None, updated_at=now)
            ).rowcount

    def for_pair(self, transaction_id: int, invoice_id: int) -> dict[str, Any] | None:
        """The pair's push, if any: what a person rejecting the match is told about."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(payment_pushes).where(
                    _p.bank_transaction_id == transaction_id, _p.invoice_id == invoice_id
                )
            ).first()
        return dict(row._mapping) if row else None

    def counts(self) -> dict[str, dict[str, int]]:
        """source -> status -> pushes."""
        found: dict[str, dict[str, int]] = defaultdict(dict)
        with self.engine.connect() as connection:
            for source, status, count in connection.execute(
                select(_p.source, _p.status, func.count()).group_by(_p.source, _p.status)
            ):
                found[source][status] = int(count)
        return dict(found)


def cancel_planned(
    connection: Connection, transaction_id: int, invoice_id: int, reason: str, now: dt.datetime
) -> None:
    """A person's rejection of the pair cancels its planned push in the decision's own
    transaction (a push already claimed for sending is past that: see `for_pair`)."""
    connection.execute(
        update(payment_pushes)
        .where(
            _p.bank_transaction_id == transaction_id,
            _p.invoice_id == invoice_id,
            _p.status == PLANNED,
        )
        .values(status=CANCELLED, last_error=reason, updated_at=now)
    )
