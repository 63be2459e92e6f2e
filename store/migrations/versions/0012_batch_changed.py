"""`sync_run_batches.changed`: of a daemon batch's ids whose listing could not tell whether they
changed (listed without a version), how many the batch found changed and wrote. The run moves
that many from `unchanged` to `changed` when it completes, as an inline cycle does.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_run_batches") as batch:
        batch.add_column(sa.Column("changed", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sync_run_batches") as batch:
        batch.drop_column("changed")
