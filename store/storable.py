"""What the database can hold: the one check that names the field of a value it would refuse.

The mirror writes a batch optimistically (the fast path); this check runs only for a record whose
JSON has `\\u` escapes (the only way a NUL or a lone surrogate gets into a string) and for every
record of a batch the database refused, so one bad value is quarantined by name and its batch
still lands. Both databases then refuse the same values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, String, Table

from connectors.records import Invoice, RemoteBankTransaction
from store.schema import bank_transactions, invoice_lines, invoices, payments

_INT32 = 2**31
_INT64 = 2**63
#: PostgreSQL NUMERIC: up to 131072 digits before the point and 16383 after
_NUMERIC_INT_DIGITS = 131_072
_NUMERIC_SCALE = 16_383


def text_problem(value: str) -> str | None:
    """Why neither database can hold this text, or None when both can."""
    if "\x00" in value:
        return "contains a NUL character, which PostgreSQL text cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate, which is not valid Unicode text"
    return None


def _column_problem(value: Any, column: Column[Any]) -> str | None:
    if value is None:
        return None if column.nullable else "is missing, and the column requires a value"
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            return problem
        length = getattr(column.type, "length", None)
        if isinstance(column.type, String) and length is not None and len(value) > length:
            return f"is {len(value)} characters long; the column holds at most {length}"
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        limit = _INT32 if type(column.type) is Integer else _INT64
        if isinstance(column.type, Integer | BigInteger) and not -limit <= value < limit:
            return f"{value} is out of range for a {type(column.type).__name__.lower()} column"
    elif isinstance(value, Decimal):
        if not value.is_finite():
            return f"{value} is not a finite number"
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if value.adjusted() >= _NUMERIC_INT_DIGITS or -exponent > _NUMERIC_SCALE:
            return "has more digits than a numeric column holds"
    return None


def _fields(record: Any, table: Table, prefix: str) -> Iterator[tuple[str, Any, Column[Any]]]:
    for field in dataclasses.fields(record):
        column = table.columns.get(field.name)
        if column is not None:
            yield prefix + field.name, getattr(record, field.name), column


def unstorable(record: Invoice | RemoteBankTransaction) -> str | None:
    """`"lines[2].description: contains a NUL ..."` for the first value the database would
    refuse, or None when every value fits."""
    if isinstance(record, RemoteBankTransaction):
        values = [
            ("remote_version", record.remote_version, bank_transactions.c.remote_version),
            *_fields(record.transaction, bank_transactions, ""),
        ]
    else:
        values = list(_fields(record, invoices, ""))
        for index, line in enumerate(record.lines):
            values.extend(_fields(line, invoice_lines, f"lines[{index}]."))
        for index, payment in enumerate(record.payments):
            values.extend(_fields(payment, payments, f"payments[{index}]."))
    for name, value, column in values:
        problem = _column_problem(value, column)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def may_be_unstorable(record: Invoice | RemoteBankTransaction) -> bool:
    """Cheap pre-filter: a NUL or lone surrogate can only arrive as a `\\u` escape in the JSON."""
    return "\\u" in record.raw
