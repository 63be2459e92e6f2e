"""An independent reading of Moneybird payloads, to check the mirror field by field.

Deliberately not the connector's code: if both agreed by sharing code, a bug would pass.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from store.schema import invoice_lines, invoices, payments


def money(value: Any) -> Decimal:
    return Decimal(str(value).replace(",", "."))


def mirror_rows(engine: sa.Engine, source: str = "acme") -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = {
            r.remote_id: dict(r._mapping)
            for r in connection.execute(sa.select(invoices).where(invoices.c.source == source))
        }
        by_local = {row["id"]: row for row in rows.values()}
        for row in rows.values():
            row["lines"] = []
            row["payments"] = []
        for line in connection.execute(sa.select(invoice_lines).order_by(invoice_lines.c.position)):
            by_local[line.invoice_id]["lines"].append(dict(line._mapping))
        for payment in connection.execute(sa.select(payments).order_by(payments.c.remote_id)):
            by_local[payment.invoice_id]["payments"].append(dict(payment._mapping))
    return rows


def assert_matches(row: dict[str, Any], payload: dict[str, Any]) -> None:
    remote_id = str(payload["id"])
    assert row["remote_id"] == remote_id
    assert row["remote_version"] == str(payload["version"])
    assert row["number"] == payload["invoice_id"]
    assert row["state_raw"] == payload["state"]
    assert row["currency"] == payload["currency"]
    assert row["invoice_date"] == (
        dt.date.fromisoformat(payload["invoice_date"]) if payload["invoice_date"] else None
    )
    assert row["due_date"] == dt.date.fromisoformat(payload["due_date"])
    assert row["total_excl_tax"] == money(payload["total_price_excl_tax"])
    assert row["total_incl_tax"] == money(payload["total_price_incl_tax"])
    assert row["total_tax"] == money(payload["total_price_incl_tax"]) - money(
        payload["total_price_excl_tax"]
    )
    assert row["total_paid"] == money(payload["total_paid"])
    assert row["total_unpaid"] == money(payload["total_unpaid"])
    assert row["payment_reference"] == payload["payment_reference"]
    assert row["customer_remote_id"] == str(payload["contact_id"])
    contact = payload["contact"]
    expected_name = contact.get("company_name") or " ".join(
        p for p in (contact.get("firstname"), contact.get("lastname")) if p
    )
    assert row["customer_name"] == expected_name
    assert row["remote_updated_at"] == dt.datetime.fromisoformat(payload["updated_at"])
    assert row["remote_updated_at"].tzinfo is not None
    assert row["deleted_at"] is None
    assert json.loads(row["raw"], parse_float=Decimal) == json.loads(
        json.dumps(payload), parse_float=Decimal
    )
    details = payload["details"]
    assert len(row["lines"]) == len(details)
    for line, detail in zip(row["lines"], details, strict=True):
        assert line["remote_id"] == str(detail["id"])
        assert line["position"] == detail["row_order"]
        assert line["description"] == detail["description"]
        assert line["quantity"] == money(detail["amount_decimal"])
        assert line["unit_price"] == money(detail["price"])
        assert line["amount_excl_tax"] == money(detail["total_price_excl_tax_with_discount"])
        assert line["tax_rate"] in (Decimal(21), Decimal(9), Decimal(0))
    expected_payments = sorted(payload["payments"], key=lambda p: str(p["id"]))
    assert [p["remote_id"] for p in row["payments"]] == [str(p["id"]) for p in expected_payments]
    for stored, payment in zip(row["payments"], expected_payments, strict=True):
        assert stored["amount"] == money(payment["price"])
        assert stored["paid_on"] == dt.date.fromisoformat(payment["payment_date"])
        assert stored["transaction_reference"] == payment["transaction_identifier"]


def assert_mirror_equals(engine: sa.Engine, simulator: Any, source: str = "acme") -> None:
    rows = mirror_rows(engine, source)
    live = {remote_id: row for remote_id, row in rows.items() if row["deleted_at"] is None}
    payloads = {str(p["id"]): p for p in simulator.invoices()}
    assert set(live) == set(payloads)
    for remote_id, payload in payloads.items():
        assert_matches(live[remote_id], payload)


def analyze_counts(app: Any) -> dict[str, int]:
    """PostgreSQL: how often each mirror table of the test's schema was analyzed."""
    with app.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT relname, analyze_count FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname IN "
                "('invoices', 'invoice_lines', 'payments', 'sync_runs')"
            )
        )
        return {name: int(count) for name, count in rows}
