"""Runs and quarantine per stream: a source now mirrors invoices and, with `bank = true`,
Moneybird's financial mutations, each with its own runs, quarantine and deletion guard.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("sync_runs", "sync_errors"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("stream", sa.String(length=40), nullable=False, server_default="invoices")
            )
    with op.batch_alter_table("sync_errors") as batch_op:
        batch_op.drop_constraint("uq_sync_errors_source_remote_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_sync_errors_source_stream_remote_id", ["source", "stream", "remote_id"]
        )
    with op.batch_alter_table("sync_runs") as batch_op:
        batch_op.drop_index("ix_sync_runs_source_started_at")
        batch_op.create_index(
            "ix_sync_runs_source_stream_started_at", ["source", "stream", "started_at"]
        )
    op.create_index(
        "ix_bank_transactions_source_bank_reference",
        "bank_transactions",
        ["source", "bank_reference"],
    )


def downgrade() -> None:
    op.drop_index("ix_bank_transactions_source_bank_reference", table_name="bank_transactions")
    with op.batch_alter_table("sync_runs") as batch_op:
        batch_op.drop_index("ix_sync_runs_source_stream_started_at")
        batch_op.create_index("ix_sync_runs_source_started_at", ["source", "started_at"])
    with op.batch_alter_table("sync_errors") as batch_op:
        batch_op.drop_constraint("uq_sync_errors_source_stream_remote_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_sync_errors_source_remote_id", ["source", "remote_id"]
        )
    for table in ("sync_runs", "sync_errors"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("stream")
