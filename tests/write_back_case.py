"""A write-back scenario any source's tests share: a synced mirror, a bank that pays some of its
invoices, reconciliation, and the outbox; the source's simulator read through a `Remote`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.kinds import AnySource
from store.pushes import Planning, PushStore
from store.schema import invoices, payment_pushes
from tests.reconciliation_book import Book
from workers.app import App
from workers.config import AppConfig
from workers.reconciliation.engine import reconcile
from workers.write_back import SourcePush, plan, push_source

BOOKED = dt.date.today()


@dataclass(frozen=True)
class Remote:
    """What the tests read of a simulator: an invoice's payments as (payment id, marker), and
    how many payment POSTs it has been sent."""

    markers: Callable[[str], list[tuple[str, str | None]]]
    posts: Callable[[], int]


@dataclass
class Case:
    app: App
    book: Book
    simulator: Any
    remote: Remote

    @property
    def source(self) -> str:
        return self.app.config.sources[0].name

    @property
    def store(self) -> PushStore:
        return PushStore(self.app.engine)

    def invoices(self, count: int) -> list[dict[str, Any]]:
        """Unpaid open invoices with a number, oldest first."""
        i = invoices.c
        with self.app.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    i.id, i.remote_id, i.number, i.total_incl_tax, i.total_paid, i.payment_reference
                )
                .where(
                    i.state.in_(("open", "late")),
                    i.number.is_not(None),
                    i.credit_note.is_(False),
                    i.deleted_at.is_(None),
                )
                .order_by(i.id)
            ).all()
        unpaid = [dict(r._mapping) for r in rows if r.total_incl_tax > 0 and not r.total_paid]
        assert len(unpaid) >= count
        return unpaid[:count]

    def pay(self, rows: list[dict[str, Any]], **extra: Any) -> list[int]:
        """Each invoice paid in full at the bank: by its structured reference when it has one,
        else with its number in the text."""
        return [
            self.book.tx(
                str(row["total_incl_tax"]),
                booked=BOOKED,
                **(
                    {"reference": row["payment_reference"]}
                    if row["payment_reference"]
                    else {"text": f"factuur {row['number']}"}
                ),
                **extra,
            )
            for row in rows
        ]

    def paid_invoices(self, count: int) -> list[dict[str, Any]]:
        """`count` invoices paid at the bank, reconciled and planned."""
        rows = self.invoices(count)
        self.pay(rows)
        assert self.plan().planned == count
        return rows

    def plan(self) -> Planning:
        reconcile(self.app.engine)
        return plan(self.store, [self.source])

    def push(self, lease: dt.timedelta | None = None) -> SourcePush:
        with self.app.connector(self.app.config.sources[0]) as connector:
            if lease is None:
                return push_source(self.store, connector, self.source)
            return push_source(self.store, connector, self.source, lease=lease)

    def pushes(self) -> dict[int, dict[str, Any]]:
        """invoice id -> its push row."""
        with self.app.engine.connect() as connection:
            rows = connection.execute(sa.select(payment_pushes)).all()
        return {row.invoice_id: dict(row._mapping) for row in rows}

    def posts(self) -> int:
        return self.remote.posts()

    def marked(self, row: dict[str, Any]) -> list[str]:
        """The ids of the invoice's payments at the source that carry its push's marker."""
        key = self.pushes()[row["id"]]["idempotency_key"]
        return [pid for pid, marker in self.remote.markers(row["remote_id"]) if marker == key]


@contextmanager
def synced_case(
    database_url: str, source: AnySource, simulator: Any, remote: Remote
) -> Iterator[Case]:
    """The source's mirror synced once, with the bank and the outbox beside it."""
    app = App.open(AppConfig(database_url=database_url, sources=(source,), path=Path("t.toml")))
    try:
        app.sync_inline(source)
        yield Case(app, Book(database_url), simulator, remote)
    finally:
        app.close()


def outcomes(result: SourcePush) -> list[str]:
    return [o.outcome for o in result.outcomes]
