"""The bulk path (`store.bulk`) gives back exactly what it was given, on both databases: money
to the last digit, timestamps in UTC, NULLs as NULLs, and a value repeated as the very same
object (which the SQLite converter reuses its result for) or as an equal copy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from store.bulk import insert_rows, select_rows
from store.db import make_engine
from store.types import Money, UTCDateTime

metadata = sa.MetaData()
probe = sa.Table(
    "bulk_probe",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("amount", Money, nullable=True),
    sa.Column("note", sa.String(40), nullable=True),
    sa.Column("day", sa.Date, nullable=True),
    sa.Column("at", UTCDateTime, nullable=True),
)


def test_rows_come_back_exactly_as_written(database_url: str) -> None:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    when = dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)
    cet = dt.timezone(dt.timedelta(hours=1))
    price = Decimal("10.10")
    rows = [
        (1, price, "a", dt.date(2026, 1, 31), when),
        (2, price, "a", dt.date(2026, 1, 31), when),  # the same objects again
        (3, Decimal("10.1"), None, None, None),  # equal to the last, spelled otherwise
        (
            4,
            Decimal("-0.005"),
            "b",
            dt.date(2026, 2, 1),
            dt.datetime(2026, 11, 30, 6, 0, tzinfo=cet),
        ),
        (5, None, "c", dt.date(2026, 2, 1), when),
        (6, Decimal("123456789012345.123456789"), "d", dt.date(2026, 2, 2), when),
    ]
    try:
        with engine.begin() as connection:
            assert insert_rows(connection, probe, ("id", "amount", "note", "day", "at"), rows) == 6
        with engine.connect() as connection:
            back = list(select_rows(connection, sa.select(probe).order_by(probe.c.id)))
    finally:
        metadata.drop_all(engine)
        engine.dispose()
    assert [str(r[1]) if r[1] is not None else None for r in back] == [
        "10.10",
        "10.10",
        "10.1",
        "-0.005",
        None,
        "123456789012345.123456789",
    ]
    assert [r[3] for r in back] == [r[3] for r in rows]
    assert [r[4] for r in back] == [r[4] for r in rows]
    assert all(r[4] is None or r[4].utcoffset() == dt.timedelta(0) for r in back)
    assert back[3][4] == dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)
