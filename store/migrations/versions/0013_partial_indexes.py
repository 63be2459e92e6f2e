"""Indexes that hold only the rows they are read for: `invoices.deleted_at` and
`bank_transactions.deleted_at` only deleted rows (the reconciliation watermark reads their
newest), `bank_transactions (source, bank_reference)` only rows from an invoicing platform's
bank stream (a statement file's rows have no source). Every inserted invoice and bank
transaction paid an entry in each for nothing: a first import of 100,000 camt.053 transactions
spent about a sixth of the server's time on them. Names and columns are unchanged.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_PARTIAL = (
    ("invoices", ("deleted_at",), "deleted_at IS NOT NULL"),
    ("bank_transactions", ("deleted_at",), "deleted_at IS NOT NULL"),
    ("bank_transactions", ("source", "bank_reference"), "source IS NOT NULL"),
)


def _recreate(partial: bool) -> None:
    for table, columns, where in _PARTIAL:
        name = op.f(f"ix_{table}_{'_'.join(columns)}")
        op.drop_index(name, table_name=table)
        condition: dict[str, Any] = {
            "postgresql_where": sa.text(where),
            "sqlite_where": sa.text(where),
        }
        op.create_index(name, table, list(columns), **(condition if partial else {}))


def upgrade() -> None:
    _recreate(partial=True)


def downgrade() -> None:
    _recreate(partial=False)
