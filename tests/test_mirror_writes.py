"""How a batch reaches the mirror's tables, on SQLite and PostgreSQL.

PostgreSQL COPYs a batch the mirror holds none of straight into its tables (the initial
mirror); anything else goes through the staged upsert. These tests hold both paths to the
same result, including when the COPY finds a row there after all.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.records import Payment
from store.mirror import Mirror
from store.schema import invoice_lines, invoices, payments
from tests.invoices import an_invoice


@pytest.fixture
def mirror(migrated_engine: sa.Engine) -> Mirror:
    return Mirror(migrated_engine)


def stored(mirror: Mirror) -> dict[str, Any]:
    with mirror.engine.connect() as connection:
        versions = dict(
            connection.execute(sa.select(invoices.c.remote_id, invoices.c.remote_version)).all()
        )
        owners = dict(
            connection.execute(
                sa.select(payments.c.remote_id, invoices.c.remote_id).join(
                    invoices, invoices.c.id == payments.c.invoice_id
                )
            ).all()
        )
        lines = connection.execute(sa.select(sa.func.count()).select_from(invoice_lines))
        return {"versions": versions, "payment owners": owners, "lines": lines.scalar_one()}


def test_a_batch_of_new_invoices_lands_with_its_lines_and_payments(mirror: Mirror) -> None:
    batch = [an_invoice(remote_id=str(i), remote_version="3") for i in range(1, 4)]
    batch[2] = an_invoice(remote_id="3", remote_version="3", payments=())

    written = mirror.write_batch("acme", batch, [])

    assert (written.written, written.written_ids) == (3, frozenset({"1", "2", "3"}))
    assert stored(mirror) == {
        "versions": {"1": "3", "2": "3", "3": "3"},
        "payment owners": {"8": "2"},  # the tests' invoices share payment id 8: the last wins
        "lines": 3,
    }


def test_a_payment_that_moved_to_a_new_invoice_moves(mirror: Mirror) -> None:
    """New invoice, known payment: on PostgreSQL the COPY of the payment meets its unique key,
    and the batch is written again as an upsert."""
    mirror.write_batch("acme", [an_invoice(remote_id="1")], [])
    moved = Payment("8", Decimal("12.10"), None, "moved", None, None)

    written = mirror.write_batch("acme", [an_invoice(remote_id="2", payments=(moved,))], [])

    assert written.written_ids == {"2"}
    assert stored(mirror) == {
        "versions": {"1": "1", "2": "1"},
        "payment owners": {"8": "2"},
        "lines": 2,
    }


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_invoice_another_writer_inserts_meanwhile_is_upserted_not_doubled(
    mirror: Mirror,
) -> None:
    """Between the look for the batch's ids and the COPY, a second writer (a redelivered
    message, another worker) commits one of them: the guarded upsert then decides. (SQLite
    upserts every batch: it has no look to race with.)"""
    other = Mirror(mirror.engine)
    raced: list[str] = []

    def meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "CROSS JOIN LATERAL" in statement and not raced:
            raced.append(statement)
            other.write_batch("acme", [an_invoice(remote_id="2", remote_version="5")], [])

    sa.event.listen(mirror.engine, "after_cursor_execute", meanwhile)
    try:
        batch = [an_invoice(remote_id="1", remote_version="7", payments=())]
        batch.append(an_invoice(remote_id="2", remote_version="7", payments=()))
        written = mirror.write_batch("acme", batch, [])
    finally:
        sa.event.remove(mirror.engine, "after_cursor_execute", meanwhile)

    assert raced, "the look for stored ids ran"
    assert written.written_ids == {"1", "2"}, "7 is newer than the 5 the other writer put"
    assert stored(mirror) == {
        "versions": {"1": "7", "2": "7"},
        "payment owners": {},
        "lines": 2,
    }, "the other writer's line was replaced, none of the aborted COPY's remains"
