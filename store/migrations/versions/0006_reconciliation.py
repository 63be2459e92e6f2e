"""Reconciliation: matches between bank transactions and invoices, the status of each, the
engine's runs, and the customer's IBAN on invoices (backfilled from the stored Moneybird JSON).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NOW = store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.add_column(sa.Column("customer_iban", sa.Text(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        contact = "(raw::jsonb -> 'contact')"
        bind.exec_driver_sql(
            "UPDATE invoices SET customer_iban = upper(replace(coalesce("
            f"nullif({contact} ->> 'sepa_iban', ''), nullif({contact} ->> 'bank_account', '')"
            "), ' ', '')) WHERE jsonb_typeof(raw::jsonb -> 'contact') = 'object'"
        )
    else:
        bind.exec_driver_sql(
            "UPDATE invoices SET customer_iban = upper(replace(coalesce("
            "nullif(json_extract(raw, '$.contact.sepa_iban'), ''), "
            "nullif(json_extract(raw, '$.contact.bank_account'), '')), ' ', '')) "
            "WHERE json_valid(raw) AND json_type(raw, '$.contact') = 'object'"
        )
    op.create_table(
        "reconciliation_matches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("bank_transaction_id", _ID, nullable=False),
        sa.Column("invoice_id", _ID, nullable=False),
        sa.Column("payment_id", _ID, nullable=True),
        sa.Column("amount", store.types.Money(), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("decided_at", _NOW, nullable=True),
        sa.ForeignKeyConstraint(
            ["bank_transaction_id"],
            ["bank_transactions.id"],
            name=op.f("fk_reconciliation_matches_bank_transaction_id_bank_transactions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_reconciliation_matches_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_reconciliation_matches_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_matches")),
        sa.UniqueConstraint(
            "bank_transaction_id",
            "invoice_id",
            name=op.f("uq_reconciliation_matches_bank_transaction_id_invoice_id"),
        ),
    )
    op.create_index(
        op.f("ix_reconciliation_matches_invoice_id"), "reconciliation_matches", ["invoice_id"]
    )
    op.create_index(op.f("ix_reconciliation_matches_status"), "reconciliation_matches", ["status"])
    op.create_table(
        "invoice_reconciliation",
        sa.Column("invoice_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("bank_amount", store.types.Money(), nullable=False),
        sa.Column("open_amount", store.types.Money(), nullable=False),
        sa.Column("updated_at", _NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_reconciliation_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_reconciliation")),
    )
    op.create_index(op.f("ix_invoice_reconciliation_status"), "invoice_reconciliation", ["status"])
    op.create_table(
        "bank_transaction_reconciliation",
        sa.Column("bank_transaction_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("allocated", store.types.Money(), nullable=False),
        sa.Column("unallocated", store.types.Money(), nullable=False),
        sa.Column("updated_at", _NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_transaction_id"],
            ["bank_transactions.id"],
            name=op.f("fk_bank_transaction_reconciliation_bank_transaction_id_bank_transactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "bank_transaction_id", name=op.f("pk_bank_transaction_reconciliation")
        ),
    )
    op.create_index(
        op.f("ix_bank_transaction_reconciliation_status"),
        "bank_transaction_reconciliation",
        ["status"],
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("started_at", _NOW, nullable=False),
        sa.Column("finished_at", _NOW, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("full_run", sa.Boolean(), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=True),
        sa.Column("transactions", sa.Integer(), nullable=True),
        sa.Column("invoices", sa.Integer(), nullable=True),
        sa.Column("auto_matches", sa.Integer(), nullable=True),
        sa.Column("suggestions", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_runs")
    op.drop_table("bank_transaction_reconciliation")
    op.drop_table("invoice_reconciliation")
    op.drop_table("reconciliation_matches")
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.drop_column("customer_iban")
