"""The mirror's tables: a documented contract with the reporting database (docs/schema.md).

Change them only through an Alembic migration in store/migrations/versions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from store.types import Money, RawPayload, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _partial(condition: str) -> dict[str, Any]:
    """An index of only the rows `condition` holds for (migration 0013)."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


#: the deletion watermark reads only deleted rows
_ONLY_DELETED = _partial("deleted_at IS NOT NULL")
#: a bank stream's rows have a source; a statement file's rows have none
_ONLY_FROM_A_SOURCE = _partial("source IS NOT NULL")

invoices = Table(
    "invoices",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("remote_id", Text, nullable=False),
    Column("remote_version", Text, nullable=False),
    Column("number", Text),
    Column("state", String(20), nullable=False),
    Column("state_raw", Text),
    Column("customer_remote_id", Text),
    Column("customer_name", Text),
    Column("customer_iban", Text),
    Column("credit_note", Boolean, nullable=False, server_default=false()),
    Column("invoice_date", Date),
    Column("due_date", Date),
    Column("currency", String(3), nullable=False),
    Column("total_excl_tax", Money, nullable=False),
    Column("total_tax", Money, nullable=False),
    Column("total_incl_tax", Money, nullable=False),
    Column("total_paid", Money, nullable=False),
    Column("total_unpaid", Money, nullable=False),
    Column("payment_reference", Text),
    Column("remote_updated_at", UTCDateTime),
    Column("synced_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    Column("raw", RawPayload, nullable=False),
    UniqueConstraint("source", "remote_id"),
    Index(None, "synced_at"),
    Index(None, "deleted_at", **_ONLY_DELETED),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "invoice_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("invoices.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("remote_id", Text),
    Column("position", Integer, nullable=False),
    Column("description", Text),
    Column("quantity", Money),
    Column("unit_price", Money),
    Column("tax_rate", Money),
    Column("amount_excl_tax", Money),
    Index(None, "invoice_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("remote_id", Text, nullable=False),
    Column(
        "invoice_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("invoices.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("amount", Money, nullable=False),
    Column("paid_on", Date),
    Column("method", Text),
    Column("transaction_reference", Text),
    Column("remote_updated_at", UTCDateTime),
    UniqueConstraint("source", "remote_id"),
    Index(None, "invoice_id"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(20), nullable=False),
    Column("stream", String(40), nullable=False, server_default="invoices"),
    Column("full_resync", Boolean, nullable=False, default=False),
    Column("listed", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    Column("changed", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("deleted", Integer, nullable=False, default=0),
    Column("restored", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("batches", Integer),
    Column("complete_listing", Boolean),
    #: sha256 of the listing answer a run left the mirror equal to (see `Runs.listing_history`)
    Column("listing_digest", String(64)),
    Index(None, "source", "stream", "started_at"),
)

sync_run_batches = Table(
    "sync_run_batches",
    metadata,
    Column(
        "run_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("sync_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("batch_no", Integer, primary_key=True),
    Column("requested", Integer, nullable=False),
    Column("written", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    #: of the ids listed without a version, how many the batch wrote (changed after all)
    Column("changed", Integer, nullable=False, server_default="0"),
)

sync_errors = Table(
    "sync_errors",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("remote_id", Text, nullable=False),
    Column("remote_version", Text),
    Column("error", Text, nullable=False),
    Column("raw", Text),
    Column("sync_run_id", BigInteger().with_variant(Integer, "sqlite")),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("resolved_at", UTCDateTime),
    Column("stream", String(40), nullable=False, server_default="invoices"),
    UniqueConstraint("source", "stream", "remote_id"),
)

bank_imports = Table(
    "bank_imports",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("file_name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("format", String(20)),
    Column("accounts", Text),
    Column("statements", Integer, nullable=False, default=0),
    Column("transactions_new", Integer, nullable=False, default=0),
    Column("transactions_present", Integer, nullable=False, default=0),
    Column("balance_check", Text),
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index(None, "sha256"),
)

bank_transactions = Table(
    "bank_transactions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("account_iban", String(34), nullable=False),
    Column("booking_date", Date, nullable=False),
    Column("value_date", Date),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("counterparty_name", Text),
    Column("counterparty_iban", Text),
    Column("description", Text),
    Column("payment_reference", Text),
    Column("payment_reference_issuer", Text),
    Column("end_to_end_id", Text),
    Column("bank_reference", Text),
    Column("reversal", Boolean, nullable=False, default=False),
    Column("return_reason", Text),
    Column("origin", String(20), nullable=False),
    Column("origin_file", Text),
    Column(
        "import_id", BigInteger().with_variant(Integer, "sqlite"), ForeignKey("bank_imports.id")
    ),
    Column("source", String(100)),
    Column("remote_version", Text),
    Column("deleted_at", UTCDateTime),
    Column("dedup_key", String(80), nullable=False),
    Column("raw", Text, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_iban", "dedup_key"),
    Index(None, "account_iban", "booking_date"),
    Index(None, "source", "bank_reference", **_ONLY_FROM_A_SOURCE),
    Index(None, "deleted_at", **_ONLY_DELETED),
)

_ID = BigInteger().with_variant(Integer, "sqlite")

reconciliation_matches = Table(
    "reconciliation_matches",
    metadata,
    Column("id", _ID, primary_key=True),
    Column(
        "bank_transaction_id",
        _ID,
        ForeignKey("bank_transactions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("invoice_id", _ID, ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("payment_id", _ID, ForeignKey("payments.id", ondelete="SET NULL")),
    Column("amount", Money, nullable=False),
    Column("rule", String(40), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", Text),
    Column("decided_by", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    UniqueConstraint("bank_transaction_id", "invoice_id"),
    Index(None, "invoice_id"),
    Index(None, "status"),
    Index(None, "decided_at"),
)

invoice_reconciliation = Table(
    "invoice_reconciliation",
    metadata,
    Column("invoice_id", _ID, ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(40), nullable=False),
    Column("bank_amount", Money, nullable=False),
    Column("open_amount", Money, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status"),
)

bank_transaction_reconciliation = Table(
    "bank_transaction_reconciliation",
    metadata,
    Column(
        "bank_transaction_id",
        _ID,
        ForeignKey("bank_transactions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", String(40), nullable=False),
    Column("allocated", Money, nullable=False),
    Column("unallocated", Money, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status"),
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(20), nullable=False),
    Column("full_run", Boolean, nullable=False),
    Column("watermark", Text),
    Column("transactions", Integer),
    Column("invoices", Integer),
    Column("auto_matches", Integer),
    Column("suggestions", Integer),
    Column("error", Text),
)

payment_pushes = Table(
    "payment_pushes",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("match_id", _ID, ForeignKey("reconciliation_matches.id", ondelete="SET NULL")),
    Column("bank_transaction_id", _ID, ForeignKey("bank_transactions.id"), nullable=False),
    Column("source", String(100), nullable=False),
    Column("invoice_id", _ID, ForeignKey("invoices.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("paid_on", Date, nullable=False),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("remote_payment_id", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("bank_transaction_id", "invoice_id"),
    Index(None, "source", "status"),
    Index(None, "match_id"),
)
