"""The Recras simulator speaks the seed pages' API over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from connectors.recras.simulator import RecrasSimulator
from connectors.simulation import SimulatorServer

KEY = "recras-test-key"


@pytest.fixture
def simulator() -> RecrasSimulator:
    return RecrasSimulator(token=KEY, invoices=40, seed=5)


@pytest.fixture
def client(simulator: RecrasSimulator) -> Iterator[httpx.Client]:
    with SimulatorServer(simulator) as server:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
        ) as http:
            yield http


def exact(response: httpx.Response) -> object:
    """The body with every number as a Decimal of its exact spelling."""
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


def test_lines_need_a_date_range_and_carry_their_invoice(
    client: httpx.Client, simulator: RecrasSimulator
) -> None:
    missing = client.get("/api2/factuurregels", params={"begin": "2024-01-01"})
    assert missing.status_code == 400 and "eind" in missing.json()["error"]
    everything = exact(client.get("/api2/factuurregels?begin=2000-01-01&eind=2099-12-31"))
    assert isinstance(everything, list) and everything
    first = everything[0]
    assert set(first) >= {
        "id", "factuur_id", "naam", "kortingomschrijving", "aantal", "bedrag",
        "btw_percentage", "product_id", "boekingsregel_id", "kortingsfactor",
        "totaal_inc_btw", "totaal_exc_btw", "Factuur",
    }  # fmt: skip
    assert set(first["Factuur"]) == {
        "id", "klant_id", "datum", "status", "factuur_nummer", "bedrijf_id"
    }  # fmt: skip
    for line in everything:
        incl, vat = line["totaal_inc_btw"], line["btw_percentage"]
        expected = (incl / (1 + vat / 100)).quantize(Decimal("0.01"), "ROUND_HALF_UP")
        assert line["totaal_exc_btw"] == expected
    lines_of = {line["factuur_id"] for line in everything}
    assert lines_of == {i for i in simulator.invoice_ids()}


def test_line_filters_narrow_the_answer(client: httpx.Client) -> None:
    base = {"begin": "2000-01-01", "eind": "2099-12-31"}
    everything = client.get("/api2/factuurregels", params=base).json()
    nine = client.get("/api2/factuurregels", params={**base, "btw_percentage": "9"}).json()
    assert nine and all(line["btw_percentage"] == 9 for line in nine)
    assert len(nine) < len(everything)
    company = client.get("/api2/factuurregels", params={**base, "Factuur.bedrijf_id": "1"}).json()
    assert company and all(line["Factuur"]["bedrijf_id"] == 1 for line in company)
    product = client.get(
        "/api2/factuurregels", params={**base, "product_id": "4", "embed": "Product"}
    ).json()
    assert all(line["product_id"] == 4 and line["Product"]["id"] == 4 for line in product)
    day = everything[0]["Factuur"]["datum"]
    one_day = client.get("/api2/factuurregels", params={"begin": day, "eind": day}).json()
    assert one_day and all(line["Factuur"]["datum"] == day for line in one_day)


def test_amounts_are_numbers_spelled_as_recras_spells_them(client: httpx.Client) -> None:
    text = client.get("/api2/factuurregels?begin=2000-01-01&eind=2099-12-31").text
    assert '"bedrag":17.5' in text or '"bedrag":25.5' in text or '"bedrag":12,' in text
    assert '"bedrag":"' not in text


def test_invoices_filter_by_status_and_date_and_embed_lines_and_customer(
    client: httpx.Client, simulator: RecrasSimulator
) -> None:
    paid = client.get(
        "/api2/facturen", params={"status": "betaald", "embed": "regels,Klant"}
    ).json()
    assert paid and all(i["status"] == "betaald" for i in paid)
    assert all(i["regels"] and i["Klant"]["id"] == i["klant_id"] for i in paid)
    later = client.get("/api2/facturen", params={"datumNa": "2025-01-01"}).json()
    assert all(i["datum"] >= "2025-01-01" for i in later)
    assert "regels" not in later[0]
    one = exact(client.get(f"/api2/facturen/{paid[0]['id']}", params={"embed": "regels"}))
    assert isinstance(one, dict)
    payments = exact(client.get(f"/api2/facturen/{paid[0]['id']}/betalingen"))
    assert isinstance(payments, list)
    assert sum(p["bedrag"] for p in payments) == sum(r["totaal_inc_btw"] for r in one["regels"])


def test_a_payment_is_registered_and_the_status_follows(
    client: httpx.Client, simulator: RecrasSimulator
) -> None:
    invoice = simulator.add_invoice(datum=dt.date(2025, 3, 1), lines=2)
    total = invoice.total()
    created = client.post(
        f"/api2/facturen/{invoice.id}/betalingen",
        json={"betaalmethode_id": 1, "bedrag": 10.5, "wanneer": "2025-03-04T17:09:00.000Z"},
    )
    assert created.status_code == 201
    assert created.headers["location"] == f"/api2/facturen/{invoice.id}/betalingen/" + str(
        created.json()["id"]
    )
    body = exact(created)
    assert isinstance(body, dict)
    assert body["bedrag"] == Decimal("10.5") and body["wanneer"] == "2025-03-04T18:09:00+01:00"
    assert body["klant"] == {"id": Decimal(47), "naam": "De Vil"}
    assert simulator.invoice(invoice.id)["status"] == "deels_betaald"
    simulator.pay(invoice.id, total - Decimal("10.5"))
    assert simulator.invoice(invoice.id)["status"] == "betaald"
    bad = client.post(f"/api2/facturen/{invoice.id}/betalingen", json={"bedrag": "veel"})
    assert bad.status_code == 406 and "Fout in de invoer" in bad.json()["error"]


def test_keys_and_permissions_are_enforced(simulator: RecrasSimulator) -> None:
    reader = RecrasSimulator(token=KEY, invoices=3, permissions=("viewFactuur",))
    with SimulatorServer(reader) as server:
        wrong = httpx.get(
            f"{server.base_url}/api2/facturen", headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        headers = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{server.base_url}/api2/facturen", headers=headers).status_code == 200
        invoice = reader.invoice_ids()[0]
        refused = httpx.post(
            f"{server.base_url}/api2/facturen/{invoice}/betalingen",
            json={"bedrag": 1},
            headers=headers,
        )
        assert refused.status_code == 403
        assert refused.json() == {"error": "Geen rechten: createFactuurBetaling"}


def test_faults_are_served(client: httpx.Client, simulator: RecrasSimulator) -> None:
    simulator.add_fault("429", endpoint="invoices", retry_after="3")
    throttled = client.get("/api2/facturen")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "3"
    simulator.add_fault("truncate", endpoint="lines")
    cut = client.get("/api2/factuurregels?begin=2000-01-01&eind=2099-12-31")
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.text)
    simulator.add_fault("drop", endpoint="payments")
    with pytest.raises(httpx.TransportError):
        client.get(f"/api2/facturen/{simulator.invoice_ids()[0]}/betalingen")
    assert client.get("/api2/facturen").status_code == 200
    with pytest.raises(ValueError, match="unknown endpoint"):
        simulator.add_fault("500", endpoint="everything")


def test_the_same_seed_gives_the_same_invoices() -> None:
    first = RecrasSimulator(invoices=20, seed=9)
    second = RecrasSimulator(invoices=20, seed=9)
    assert [first.invoice(i) for i in first.invoice_ids()] == [
        second.invoice(i) for i in second.invoice_ids()
    ]
