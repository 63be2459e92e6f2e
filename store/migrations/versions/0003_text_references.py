"""Free text and remote references become `text`: no API promises a maximum length.

A 101-character Moneybird `payment_reference` used to abort a whole batch on PostgreSQL (and every
batch after it, every cycle) while SQLite stored it: now both store it whole. `varchar` -> `text`
is a catalogue-only change in PostgreSQL (no table rewrite); SQLite tables are recreated.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: table -> (column, old length, nullable)
COLUMNS = {
    "invoices": (
        ("remote_id", 100, False),
        ("number", 100, True),
        ("state_raw", 50, True),
        ("customer_remote_id", 100, True),
        ("payment_reference", 100, True),
    ),
    "invoice_lines": (("remote_id", 100, True),),
    "payments": (
        ("remote_id", 100, False),
        ("method", 100, True),
        ("transaction_reference", 200, True),
    ),
    "sync_errors": (("remote_id", 100, False),),
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, length, nullable in columns:
                batch_op.alter_column(
                    name,
                    existing_type=sa.String(length),
                    type_=sa.Text(),
                    existing_nullable=nullable,
                )


def downgrade() -> None:
    """Refuses to cut values short: fails if any value is longer than the old limit."""
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, length, nullable in columns:
                batch_op.alter_column(
                    name,
                    existing_type=sa.Text(),
                    type_=sa.String(length),
                    existing_nullable=nullable,
                )
