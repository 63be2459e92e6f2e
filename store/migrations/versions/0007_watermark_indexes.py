"""Indexes for the reconciliation watermark: the newest invoice write and deletion, the newest
transaction deletion and the newest decision are read by every run (every sync cycle), and
without an index each is a scan of its whole table.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEXES = (
    ("invoices", "synced_at"),
    ("invoices", "deleted_at"),
    ("bank_transactions", "deleted_at"),
    ("reconciliation_matches", "decided_at"),
)


def upgrade() -> None:
    for table, column in _INDEXES:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def downgrade() -> None:
    for table, column in reversed(_INDEXES):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
