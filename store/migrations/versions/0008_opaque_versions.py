"""Remote versions become opaque text: not every API has Moneybird's increasing integer.

Recras has no version at all (the connector uses a content hash), WeFact a local timestamp that
goes back at the autumn clock change. A connector says whether its versions are ordered; ordered
versions are decimal integers in this text and are compared as numbers (the write guard casts), so
Moneybird's guard is unchanged. PostgreSQL rewrites the three tables once; SQLite recreates them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: table -> whether its remote_version may be NULL
TABLES = {"invoices": False, "sync_errors": True, "bank_transactions": True}


def upgrade() -> None:
    for table, nullable in TABLES.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(
                "remote_version",
                existing_type=sa.BigInteger(),
                type_=sa.Text(),
                existing_nullable=nullable,
                postgresql_using="remote_version::text",
            )


def downgrade() -> None:
    """Fails (and changes nothing) once a source without integer versions has been mirrored."""
    for table, nullable in TABLES.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(
                "remote_version",
                existing_type=sa.Text(),
                type_=sa.BigInteger(),
                existing_nullable=nullable,
                postgresql_using="remote_version::bigint",
            )
