"""The WeFact simulator speaks the seed's API over real HTTP on loopback: one POST endpoint,
answers in an envelope, errors as HTTP 200 with `"status": "error"`."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.simulation import SimulatorServer
from connectors.wefact.simulator import WeFactSimulator, spell

KEY = "wefact-test-key"
AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def simulator() -> WeFactSimulator:
    return WeFactSimulator(token=KEY, invoices=30, seed=4)


@pytest.fixture
def call(simulator: WeFactSimulator) -> Iterator[Any]:
    with SimulatorServer(simulator) as server, httpx.Client(timeout=5) as http:

        def send(controller: str, action: str, form: bool = False, **params: Any) -> Any:
            body = {"api_key": KEY, "controller": controller, "action": action, **params}
            url = server.base_url + "/"
            response = http.post(url, data=body) if form else http.post(url, json=body)
            assert response.status_code == 200
            return response.json()

        yield send


def test_invoice_list_pages_with_offset_and_limit(call: Any, simulator: WeFactSimulator) -> None:
    first = call("invoice", "list", limit=20)
    second = call("invoice", "list", limit=20, offset=20)
    assert first["status"] == "success" and first["totalresults"] == 30
    assert (first["currentresults"], second["currentresults"], second["offset"]) == (20, 10, 20)
    listed = [i["Identifier"] for i in first["invoices"] + second["invoices"]]
    assert listed == simulator.identifiers()
    assert set(first["invoices"][0]) >= {"Identifier", "InvoiceCode", "Status", "Modified"}


def test_the_modified_filter_is_local_time_and_inclusive(
    call: Any, simulator: WeFactSimulator
) -> None:
    later = dt.datetime(2031, 10, 26, 2, 30, tzinfo=AMSTERDAM)
    simulator.set_clock(lambda: later)
    target = simulator.identifiers()[3]
    simulator.pay(target, Decimal("1.00"))
    answer = call("invoice", "list", modified={"from": "2031-10-26 02:30:00", "to": ""})
    assert [i["Identifier"] for i in answer["invoices"]] == [target]
    assert answer["invoices"][0]["Modified"] == "2031-10-26 02:30:00"
    form = call("invoice", "list", form=True, **{"modified[from]": "2031-10-26 00:00:00"})
    assert [i["Identifier"] for i in form["invoices"]] == [target]


def test_show_and_add_a_line_as_the_seed_does(call: Any, simulator: WeFactSimulator) -> None:
    identifier = simulator.identifiers()[0]
    shown = call("invoice", "show", Identifier=identifier)["invoice"]
    assert set(shown) >= {
        "AmountExcl", "AmountTax", "AmountIncl", "AmountPaid", "AmountOutstanding", "PayBefore",
        "PayDate", "TransactionID", "InvoiceLines", "Modified", "CompanyName", "SurName",
    }  # fmt: skip
    added = call(
        "invoiceline",
        "add",
        InvoiceCode=shown["InvoiceCode"],
        InvoiceLines=[{"ProductCode": "P0001", "PriceExcl": 100, "Description": "Extra uur"}],
    )
    assert added["status"] == "success" and added["success"] == [
        "Er zijn 1 factuurregels toegevoegd"
    ]
    assert len(added["invoice"]["InvoiceLines"]) == len(shown["InvoiceLines"]) + 1


def test_errors_come_back_as_200_with_an_error_status(call: Any) -> None:
    wrong = call("invoice", "list", api_key="nope")
    assert (wrong["status"], wrong["errors"]) == ("error", ["Invalid API key"])
    bad = call("invoice", "list", limit="veel")
    assert bad["status"] == "error" and "'limit'" in bad["errors"][0]
    missing = call("invoice", "show", Identifier=999999)
    assert missing["errors"] == ["Invoice not found"]


def test_amounts_come_in_every_spelling_wefact_uses() -> None:
    assert spell(Decimal("1329.64"), "text") == "1329.64"
    assert spell(Decimal("1329.64"), "comma") == "1329,64"
    assert spell(Decimal("1329.64"), "grouped") == "1.329,64"
    assert spell(Decimal("-1234567.5"), "grouped") == "-1.234.567,50"
    assert spell(Decimal("12"), "number") == Decimal("12.00")


def test_a_credit_invoice_mirrors_the_original_with_negative_amounts(
    simulator: WeFactSimulator,
) -> None:
    original = simulator.identifiers()[1]
    credit = simulator.credit(original)
    assert simulator.invoice(original)["Status"] == 9
    record = simulator.invoice(credit.identifier)
    assert record["Status"] == 8
    assert credit.amounts()[2] < 0


def test_payments_are_registered_and_refused_as_the_envelope_says(
    call: Any, simulator: WeFactSimulator
) -> None:
    sent = next(i for i in simulator.identifiers() if simulator.truth(i)["status"] == 2)
    before = simulator.truth(sent)
    part = call(
        "invoice", "partpayment", Identifier=sent, AmountPaid="10.00", PayDate="2026-11-02",
        TransactionID="isync:tx-9:inv-3",
    )  # fmt: skip
    assert part["status"] == "success" and part["invoice"]["TransactionID"] == "isync:tx-9:inv-3"
    after = simulator.truth(sent)
    assert after["paid"] == before["paid"] + Decimal("10.00") and after["status"] == 3
    too_much = call("invoice", "partpayment", Identifier=sent, AmountPaid="999999")
    assert too_much["status"] == "error" and "'AmountPaid'" in too_much["errors"][0]
    paid = call("invoice", "markaspaid", Identifier=sent, TransactionID="isync:tx-9:inv-3")
    assert paid["status"] == "success" and simulator.truth(sent)["status"] == 4
    again = call("invoice", "markaspaid", Identifier=sent)
    assert again["status"] == "error" and "cannot be paid" in again["errors"][0]


def test_a_payment_can_land_while_its_answer_is_lost(call: Any, simulator: WeFactSimulator) -> None:
    sent = next(i for i in simulator.identifiers() if simulator.truth(i)["status"] == 2)
    simulator.fail_after_write.append("500")
    with pytest.raises(AssertionError):  # `call` expects a 200
        call("invoice", "partpayment", Identifier=sent, AmountPaid="1.00")
    landed = simulator.truth(sent)
    assert (landed["paid"], landed["status"]) == (Decimal("1.00"), 3), "recorded all the same"
