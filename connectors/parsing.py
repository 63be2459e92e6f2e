"""Exact parsing of the values remote APIs send: money, dates and timestamps.

Every parser raises `ValueError` naming the field, so a quarantined record says what was wrong.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

_PLAIN = re.compile(r"-?\d+(?:\.\d+)?")  # the common spelling, parsed without more checks
_MONEY = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")


def parse_decimal(value: object, field: str) -> Decimal:
    """Parse a money or quantity value without ever passing through a float.

    APIs spell money as `"363.0"`, `"10,95"`, `" 5 "`, JSON numbers (parsed to `Decimal` or `int`
    by our JSON decoder) or integers; all become the exact `Decimal` they denote.
    """
    if type(value) is str and _PLAIN.fullmatch(value):
        return Decimal(value)
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected an amount, got boolean {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # Only reachable if a caller decoded JSON itself; repr() is the shortest exact spelling.
        result = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip().replace("\u2212", "-")
        if not _MONEY.match(text):
            raise ValueError(f"{field}: {value!r} is not an amount")
        try:
            result = Decimal(text.replace(",", "."))
        except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
            raise ValueError(f"{field}: {value!r} is not an amount") from exc
    else:
        raise ValueError(f"{field}: expected an amount, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{field}: {value!r} is not a finite amount")
    return result


def parse_optional_decimal(value: object, field: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_decimal(value, field)


def parse_date(value: object, field: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a date string, got {type(value).__name__}")
    try:
        return (
            dt.date.fromisoformat(value[:10]) if len(value) >= 10 else dt.date.fromisoformat(value)
        )
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not a date") from exc


def parse_timestamp(value: object, field: str) -> dt.datetime | None:
    """Parse an ISO 8601 timestamp into an aware UTC datetime; a naive one is taken as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a timestamp string, got {type(value).__name__}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not a timestamp") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def parse_id(value: object, field: str) -> str:
    """Remote ids stay strings: Moneybird's are 64-bit and would lose digits as floats elsewhere."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{field}: missing id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"{field}: {value!r} is not an id")


def parse_optional_id(value: object, field: str) -> str | None:
    return None if value is None or value == "" else parse_id(value, field)
