"""Recras invoices as normalized records: exact totals from the lines, Dutch statuses mapped,
bad records refused naming the field (pure logic, fed by the simulator's JSON)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.http import decode_json
from connectors.records import RawJSON
from connectors.recras.normalize import normalize_invoice
from connectors.recras.simulator import RecrasSimulator
from connectors.simulation import SimulatorServer

KEY = "recras-key"
TODAY = dt.date(2026, 6, 1)


@pytest.fixture
def simulator() -> RecrasSimulator:
    return RecrasSimulator(token=KEY, invoices=30, seed=2)


@pytest.fixture
def fetch(simulator: RecrasSimulator) -> Iterator[Any]:
    with SimulatorServer(simulator) as server:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
        ) as http:

            def get(path: str, **params: str) -> Any:
                response = http.get(path, params=params)
                response.raise_for_status()
                return decode_json(response.content, path)

            yield get


def normalize(record: dict[str, Any], payments: list[dict[str, Any]]) -> Any:
    return normalize_invoice(record, payments, RawJSON("{}"), version="1", today=TODAY)


def test_every_simulated_invoice_normalizes_with_exact_totals(
    fetch: Any, simulator: RecrasSimulator
) -> None:
    invoices = fetch("/api2/facturen", embed="regels,Klant")
    assert len(invoices) == len(simulator.invoice_ids())
    for record in invoices:
        payments = fetch(f"/api2/facturen/{record['id']}/betalingen")
        invoice = normalize(record, payments)
        lines = record["regels"]
        assert invoice.total_incl_tax == sum(Decimal(str(r["totaal_inc_btw"])) for r in lines)
        assert invoice.total_excl_tax == sum(Decimal(str(r["totaal_exc_btw"])) for r in lines)
        assert invoice.total_tax == invoice.total_incl_tax - invoice.total_excl_tax
        assert invoice.total_paid == sum(Decimal(str(p["bedrag"])) for p in payments)
        assert invoice.currency == "EUR" and invoice.state_raw == record["status"]
        assert [line.position for line in invoice.lines] == list(range(1, len(lines) + 1))
        assert invoice.customer_name == record["Klant"]["naam"]


def test_states_follow_the_dutch_statuses_and_the_due_date() -> None:
    base = {
        "id": 7,
        "klant_id": 47,
        "datum": "2026-05-01",
        "factuur_nummer": "2026-7",
        "bedrijf_id": 1,
        "betalingstermijn": 14,
        "regels": [{"id": 1, "totaal_inc_btw": Decimal("10"), "totaal_exc_btw": Decimal("8.26")}],
    }
    assert normalize({**base, "status": "concept"}, []).state == "draft"
    assert normalize({**base, "status": "verzonden"}, []).state == "late"  # due 2026-05-15
    fresh = normalize({**base, "status": "verzonden", "datum": "2026-05-25"}, [])
    assert fresh.state == "open" and fresh.due_date == dt.date(2026, 6, 8)
    assert normalize({**base, "status": "deels_betaald"}, []).state == "partially_paid"
    assert normalize({**base, "status": "betaald"}, []).state == "paid"
    with pytest.raises(ValueError, match="status: 'geannuleerd' is not one of"):
        normalize({**base, "status": "geannuleerd"}, [])


def test_money_stays_exact_whatever_the_spelling() -> None:
    record = {
        "id": 8,
        "status": "verzonden",
        "datum": "2026-05-25",
        "regels": [
            {"id": 1, "totaal_inc_btw": Decimal("0.1"), "totaal_exc_btw": Decimal("0.1")},
            {"id": 2, "totaal_inc_btw": Decimal("0.2"), "totaal_exc_btw": 0},
            {"id": 3, "totaal_inc_btw": 25, "totaal_exc_btw": Decimal("22.94")},
        ],
    }
    payment = {"id": 1, "bedrag": Decimal("19.95"), "wanneer": "2026-05-26T00:30:00+02:00"}
    invoice = normalize(record, [payment])
    assert invoice.total_incl_tax == Decimal("25.3")
    assert invoice.total_excl_tax == Decimal("23.04")
    assert invoice.total_unpaid == Decimal("5.35")
    assert invoice.payments[0].paid_on == dt.date(2026, 5, 26)  # the venue's day, not UTC's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"regels": None}, "regels: expected the invoice's lines"),
        ({"regels": [{"id": 1, "totaal_inc_btw": "veel", "totaal_exc_btw": 1}]}, "regels[0]"),
        ({"datum": "gisteren"}, "datum: 'gisteren' is not a date"),
        ({"betalingstermijn": "14"}, "betalingstermijn"),
        ({"id": None}, "id: missing id"),
    ],
)
def test_a_bad_record_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    record = {
        "id": 9,
        "status": "verzonden",
        "datum": "2026-05-25",
        "regels": [{"id": 1, "totaal_inc_btw": Decimal("1"), "totaal_exc_btw": Decimal("1")}],
        **change,
    }
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalize(record, [])


def test_a_bad_payment_is_refused_naming_it() -> None:
    record = {"id": 9, "status": "betaald", "datum": "2026-05-25", "regels": []}
    with pytest.raises(ValueError, match=r"betalingen\[0\]\.bedrag"):
        normalize(record, [{"id": 1, "bedrag": True, "wanneer": None}])
