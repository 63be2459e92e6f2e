"""`sync_runs.complete_listing`: whether a run's listing named every record (so it could see
deletions) or only those changed since an earlier run (WeFact's modified-since listing).

A source that lists changes most cycles needs to know when its last complete listing was, to list
completely again on its schedule; the runs table is where that is durable. Existing runs listed
completely (every source so far did).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch_op:
        batch_op.add_column(sa.Column("complete_listing", sa.Boolean(), nullable=True))
    op.execute("UPDATE sync_runs SET complete_listing = true WHERE status = 'ok'")


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch_op:
        batch_op.drop_column("complete_listing")
