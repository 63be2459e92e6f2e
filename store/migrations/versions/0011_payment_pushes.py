"""`payment_pushes`: the outbox of bank payments registered at the invoicing system
(write-back), one row per bank transaction and invoice.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NOW = store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "payment_pushes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("match_id", _ID, nullable=True),
        sa.Column("bank_transaction_id", _ID, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("invoice_id", _ID, nullable=False),
        sa.Column("amount", store.types.Money(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("remote_payment_id", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("updated_at", _NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["match_id"],
            ["reconciliation_matches.id"],
            name=op.f("fk_payment_pushes_match_id_reconciliation_matches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["bank_transaction_id"],
            ["bank_transactions.id"],
            name=op.f("fk_payment_pushes_bank_transaction_id_bank_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_payment_pushes_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_pushes")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payment_pushes_idempotency_key")),
        sa.UniqueConstraint(
            "bank_transaction_id",
            "invoice_id",
            name=op.f("uq_payment_pushes_bank_transaction_id_invoice_id"),
        ),
    )
    op.create_index(op.f("ix_payment_pushes_source_status"), "payment_pushes", ["source", "status"])
    op.create_index(op.f("ix_payment_pushes_match_id"), "payment_pushes", ["match_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_pushes_match_id"), table_name="payment_pushes")
    op.drop_index(op.f("ix_payment_pushes_source_status"), table_name="payment_pushes")
    op.drop_table("payment_pushes")
