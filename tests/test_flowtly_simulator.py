"""The Flowtly simulator serves API Platform collections over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from connectors.flowtly.simulator import FlowtlySimulator
from connectors.simulation import SimulatorServer


def _client(simulator: FlowtlySimulator) -> Iterator[tuple[httpx.Client, FlowtlySimulator]]:
    with (
        SimulatorServer(simulator) as server,
        httpx.Client(base_url=server.base_url, timeout=5) as http,
    ):
        yield http, simulator


@pytest.fixture(params=["hydra", "plain"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[httpx.Client, FlowtlySimulator]]:
    yield from _client(FlowtlySimulator(invoices=40, seed=2, shape=request.param, token_ttl=0.5))


def _members(page: dict[str, object]) -> list[dict[str, object]]:
    found = page.get("hydra:member", page.get("member"))
    assert isinstance(found, list)
    return found


def _next(page: dict[str, object]) -> str | None:
    view = page.get("hydra:view", page.get("view"))
    assert isinstance(view, dict)
    return view.get("hydra:next", view.get("next"))  # type: ignore[return-value]


def test_collections_page_by_next_links_in_either_shape(
    served: tuple[httpx.Client, FlowtlySimulator],
) -> None:
    http, simulator = served
    headers = {"Authorization": f"Bearer {simulator.token}"}
    seen: list[object] = []
    url: str | None = "/invoices"
    while url:
        page = http.get(url, headers=headers).json()
        seen += [m["id"] for m in _members(page)]
        url = _next(page)
    assert seen == simulator.invoice_ids()
    rows = http.get("/invoice-rows?itemsPerPage=100", headers=headers).json()
    assert all(str(r["invoice"]).startswith("/invoices/") for r in _members(rows))


def test_login_yields_a_jwt_that_expires(served: tuple[httpx.Client, FlowtlySimulator]) -> None:
    http, simulator = served
    refused = http.post("/auth", json={"username": simulator.username, "password": "nope"})
    assert refused.status_code == 401
    token = http.post(
        "/auth", json={"username": simulator.username, "password": simulator.password}
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/invoices", headers=headers).status_code == 200
    simulator.expire_tokens()
    expired = http.get("/invoices", headers=headers)
    assert expired.status_code == 401 and expired.json()["message"] == "Expired JWT Token"


def test_a_parent_row_is_priced_at_its_children(
    served: tuple[httpx.Client, FlowtlySimulator],
) -> None:
    _http, simulator = served
    nested = [
        i
        for i in simulator.invoice_ids()
        if any(r["invoiceChildrenRows"] for r in simulator.rows_of(i))
    ]
    assert nested, "the seed nests some rows"
    rows = {r["@id"]: r for r in simulator.rows_of(nested[0])}
    parent = next(r for r in rows.values() if r["invoiceChildrenRows"])
    children = [rows[c] for c in parent["invoiceChildrenRows"]]
    total = sum(
        (
            Decimal(c["quantity"]) * Decimal(c["netPrice"]) - Decimal(c["netDiscountAmount"])
            for c in children
        ),
        Decimal(0),
    )
    assert Decimal(parent["netPrice"]) == total.quantize(Decimal("0.01"))
    assert all(c["parentInvoiceRow"] == parent["@id"] for c in children)


def test_a_transaction_is_created_validated_and_can_lose_its_answer(
    served: tuple[httpx.Client, FlowtlySimulator],
) -> None:
    http, simulator = served
    headers = {"Authorization": f"Bearer {simulator.token}"}
    invoice_id = simulator.invoice_ids()[0]
    before = simulator.totals(invoice_id)["paid"]
    created = http.post(
        "/invoice-transactions",
        headers=headers,
        json={"invoice": f"/invoices/{invoice_id}", "amount": 12.5,
              "date": "2026-11-02T00:00:00+00:00", "transaction": "/transactions/81"},
    )  # fmt: skip
    assert created.status_code == 201
    assert created.json()["invoice"] == f"/invoices/{invoice_id}"
    assert created.json()["transaction"] == "/transactions/81"
    assert simulator.totals(invoice_id)["paid"] == before + Decimal("12.5")
    refused = http.post(
        "/invoice-transactions", headers=headers, json={"invoice": "/invoices/999999", "date": "x"}
    )
    assert refused.status_code == 422
    paths = {v["propertyPath"] for v in refused.json()["violations"]}
    assert paths == {"invoice", "date"}
    simulator.fail_after_write.append("500")
    count = len(simulator.transactions_of(invoice_id))
    lost = http.post(
        "/invoice-transactions",
        headers=headers,
        json={"invoice": f"/invoices/{invoice_id}", "amount": 1, "date": "2026-11-03"},
    )
    assert lost.status_code == 500
    assert len(simulator.transactions_of(invoice_id)) == count + 1, "recorded all the same"
