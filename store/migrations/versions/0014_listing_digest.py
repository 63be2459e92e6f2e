"""`sync_runs.listing_digest`: the sha256 of a run's listing answer, kept when the run ended `ok`
and left the mirror as that listing says (it found it so, or wrote every invoice it fetched at
the listed version). The next cycle whose listing is the same bytes knows the answer without
loading the listing into the database and joining it with the mirror (at 100,000 invoices about
0.35 s of an idle cycle).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("listing_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("listing_digest")
