"""Bank transactions and the file imports they came from.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bank_imports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=True),
        sa.Column("accounts", sa.Text(), nullable=True),
        sa.Column("statements", sa.Integer(), nullable=False),
        sa.Column("transactions_new", sa.Integer(), nullable=False),
        sa.Column("transactions_present", sa.Integer(), nullable=False),
        sa.Column("balance_check", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_imports")),
    )
    op.create_index(op.f("ix_bank_imports_sha256"), "bank_imports", ["sha256"])
    op.create_table(
        "bank_transactions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("account_iban", sa.String(length=34), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("amount", store.types.Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("counterparty_name", sa.Text(), nullable=True),
        sa.Column("counterparty_iban", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("payment_reference", sa.Text(), nullable=True),
        sa.Column("payment_reference_issuer", sa.Text(), nullable=True),
        sa.Column("end_to_end_id", sa.Text(), nullable=True),
        sa.Column("bank_reference", sa.Text(), nullable=True),
        sa.Column("reversal", sa.Boolean(), nullable=False),
        sa.Column("return_reason", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("origin_file", sa.Text(), nullable=True),
        sa.Column("import_id", _ID, nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("remote_version", sa.BigInteger(), nullable=True),
        sa.Column("deleted_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dedup_key", sa.String(length=80), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("imported_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["bank_imports.id"],
            name=op.f("fk_bank_transactions_import_id_bank_imports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_transactions")),
        sa.UniqueConstraint(
            "account_iban", "dedup_key", name=op.f("uq_bank_transactions_account_iban_dedup_key")
        ),
    )
    op.create_index(
        op.f("ix_bank_transactions_account_iban_booking_date"),
        "bank_transactions",
        ["account_iban", "booking_date"],
    )


def downgrade() -> None:
    op.drop_table("bank_transactions")
    op.drop_table("bank_imports")
