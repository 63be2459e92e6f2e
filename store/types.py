"""Column types that keep money exact and timestamps in UTC on both PostgreSQL and SQLite.

SQLite has no exact decimal type (NUMERIC affinity silently turns `10.95` into a float), so money
is stored there as canonical text; PostgreSQL gets a real unconstrained NUMERIC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String, Text, cast
from sqlalchemy.types import DateTime, TypeDecorator, TypeEngine, UserDefinedType


class Money(TypeDecorator[Decimal]):
    """Exact decimal: NUMERIC in PostgreSQL, text holding the exact digits in SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, got {type(value).__name__}: {value!r}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, whatever the backend does with zones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive timestamp {value!r}: timestamps must be UTC-aware")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class _PGJSONText(UserDefinedType[str]):
    """A PostgreSQL `json` column bound as plain text: our text is already exact JSON."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "JSON"


class RawPayload(TypeDecorator[str]):
    """The record as received: PostgreSQL `json` (which keeps the text verbatim, unlike jsonb)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PGJSONText())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else str(value)

    def column_expression(self, column: Any) -> Any:
        """Read it back as text too: the driver would otherwise parse numbers into floats."""
        return cast(column, Text)
