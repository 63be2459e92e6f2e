"""The Moneybird simulator honours the official OpenAPI spec and the API's documented behaviour.

Everything the connector is tested against comes from the simulator, so the simulator itself is
held to the vendor's contract here: real HTTP over loopback, answers validated with the spec's own
schemas (`unevaluatedProperties: false` included, so no invented keys), and the quirks that break
mirrors (the `period:this_year` default, the 100-id cap, rate limiting, faults) checked one by one.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from connectors.moneybird.simulator import (
    BANK_ACCOUNT_IBAN,
    BANK_ACCOUNT_ID,
    STATES,
    MoneybirdSimulator,
    SimulatorServer,
)

SPEC_PATH = Path(__file__).resolve().parent / "data" / "moneybird-openapi.yml"  # see data/README.md
SPEC_URI = "urn:moneybird-openapi"
SYNC_PATH = "/{administration_id}/sales_invoices/synchronization{format}"
MUTATIONS_PATH = "/{administration_id}/financial_mutations/synchronization{format}"
ACCOUNTS_PATH = "/{administration_id}/financial_accounts{format}"
SHARED_400 = "/components/responses/400_bad_request/content/application~1json/schema"
SHARED_403 = "/components/responses/403_forbidden/content/application~1json/schema"
TOKEN = "contract-token"
NUMBER = re.compile(r"^-?[0-9]+[,\.]?[0-9]*$")  # components/schemas/number, string branch
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
CENT = Decimal("0.01")

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_timestamp(value: object) -> bool:
    """jsonschema checks date-time only with an optional package; the spec relies on it."""
    if not isinstance(value, str):
        return True
    if not TIMESTAMP.match(value):
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    dt.datetime.fromisoformat(value)
    return True


def _patch_spec_defects(node: Any) -> int:
    """The spec's one known defect: a boolean whose `default` is the string "default"."""
    patched = 0
    if isinstance(node, dict):
        if node.get("type") == "boolean" and node.get("default") == "default":
            node["default"] = False
            patched += 1
        for value in node.values():
            patched += _patch_spec_defects(value)
    elif isinstance(node, list):
        for value in node:
            patched += _patch_spec_defects(value)
    return patched


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


class Spec:
    """The OpenAPI document as a `referencing` resource, so its `#/components/...` refs resolve."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )

    def operation(self, method: str, path: str = SYNC_PATH) -> dict[str, Any]:
        return self.document["paths"][path][method]

    def response_pointer(self, method: str, status: str, path: str = SYNC_PATH) -> str:
        """Pointer to an operation's JSON response schema, via a `$ref` to a shared response."""
        response = self.operation(method, path)["responses"][status]
        if "$ref" in response:
            base = response["$ref"].removeprefix("#")
        else:
            base = "/" + "/".join(_escape(p) for p in ("paths", path, method, "responses", status))
        return f"{base}/content/application~1json/schema"

    def validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{pointer}"}, registry=self.registry, format_checker=FORMATS
        )

    def errors(self, pointer: str, instance: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in self.validator(pointer).iter_errors(instance)
        ]


@pytest.fixture(scope="module")
def spec() -> Spec:
    with SPEC_PATH.open() as handle:
        document = yaml.load(handle, Loader=yaml.CSafeLoader)
    assert _patch_spec_defects(document) == 1
    return Spec(document)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[MoneybirdSimulator, SimulatorServer]]:
    """Read-only tests share one 60-invoice simulator; tests that change data make their own."""
    simulator = MoneybirdSimulator(invoices=60, token=TOKEN, rate_limit=None)
    with SimulatorServer(simulator) as server:
        yield simulator, server


def _client(server: SimulatorServer, simulator: MoneybirdSimulator) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/{simulator.administration_id}/sales_invoices/",
        headers={"Authorization": f"Bearer {simulator.token}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def client(served: tuple[MoneybirdSimulator, SimulatorServer]) -> Iterator[httpx.Client]:
    with _client(served[1], served[0]) as shared:
        yield shared


@pytest.fixture(scope="module")
def everything(
    served: tuple[MoneybirdSimulator, SimulatorServer], client: httpx.Client
) -> list[dict[str, Any]]:
    """All 60 invoices as served, fetched the way the connector does: list, then batches of 100."""
    listing = client.get("synchronization.json", params={"filter": "state:all"}).json()
    ids = [item["id"] for item in listing]
    invoices: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        response = client.post("synchronization.json", json={"ids": ids[start : start + 100]})
        assert response.status_code == 200
        invoices.extend(response.json())
    return invoices


@pytest.fixture
def fresh() -> Iterator[tuple[MoneybirdSimulator, httpx.Client]]:
    simulator = MoneybirdSimulator(invoices=60, token=TOKEN, rate_limit=None, seed=7)
    with SimulatorServer(simulator) as server, _client(server, simulator) as client:
        yield simulator, client


def _listed(client: httpx.Client, filter_: str | None = None) -> dict[str, int]:
    params = {} if filter_ is None else {"filter": filter_}
    response = client.get("synchronization.json", params=params)
    assert response.status_code == 200, response.text
    return {item["id"]: item["version"] for item in response.json()}


def _money(value: Any) -> Decimal:
    return Decimal(str(value).replace(",", "."))


def _rf_valid(reference: str) -> bool:
    rearranged = reference[4:] + reference[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


# --- the contract --------------------------------------------------------------------------


def test_the_id_version_list_matches_the_spec(spec: Spec, client: httpx.Client) -> None:
    for params in (
        {},
        {"filter": "state:all"},
        {"filter": "period:20240101..20261231,state:open|late"},
    ):
        response = client.get("synchronization.json", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        listing = response.json()
        assert spec.errors(spec.response_pointer("get", "200"), listing) == []
    full = client.get("synchronization.json", params={"filter": "state:all"}).json()
    assert len(full) == 60
    assert all(isinstance(item["id"], str) and re.fullmatch(r"\d{18}", item["id"]) for item in full)
    assert all(type(item["version"]) is int for item in full)


def test_fetched_invoices_match_the_spec(spec: Spec, everything: list[dict[str, Any]]) -> None:
    assert len(everything) == 60
    assert spec.errors(spec.response_pointer("post", "200"), everything) == []


def test_error_bodies_match_the_spec(
    spec: Spec, served: tuple[MoneybirdSimulator, SimulatorServer], client: httpx.Client
) -> None:
    bad_filter = client.get("synchronization.json", params={"filter": "state:bogus"})
    assert bad_filter.status_code == 400
    assert spec.errors(spec.response_pointer("get", "400"), bad_filter.json()) == []
    assert bad_filter.json() == {
        "error": "Status is not included in the list",
        "symbolic": {"filter": "invalid"},
    }

    for body in (b"{", b'{"id": [1]}', b'{"ids": "1"}', b'{"ids": [true]}'):
        bad_body = client.post(
            "synchronization.json", content=body, headers={"Content-Type": "application/json"}
        )
        assert bad_body.status_code == 400
        assert spec.errors(spec.response_pointer("post", "400"), bad_body.json()) == []
        assert set(bad_body.json()) == {"error", "symbolic"}

    # the path documents no 401, so hold it to the spec's shared 401 response
    assert all("401" not in spec.operation(method)["responses"] for method in ("get", "post"))
    simulator, server = served
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        unauthorized = httpx.get(
            f"{server.base_url}/{simulator.administration_id}/sales_invoices/synchronization.json",
            headers=headers,
        )
        assert unauthorized.status_code == 401
        assert (
            spec.errors(
                "/components/responses/401_unauthorized/content/application~1json/schema",
                unauthorized.json(),
            )
            == []
        )
        assert unauthorized.json()["error"] == "Token is invalid or expired"

    elsewhere = client.get(f"{server.base_url}/987654321/sales_invoices/synchronization.json")
    assert elsewhere.status_code == 404


def test_the_data_is_realistic_and_consistent(everything: list[dict[str, Any]]) -> None:
    assert {invoice["state"] for invoice in everything} == set(STATES)
    ids = [invoice["id"] for invoice in everything]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"\d{18}", i) for i in ids)
    fully_paid = partly_paid = 0
    for invoice in everything:
        money_values = [
            invoice[key]
            for key in (
                "total_paid",
                "total_unpaid",
                "total_unpaid_base",
                "total_price_excl_tax",
                "total_price_excl_tax_base",
                "total_price_incl_tax",
                "total_price_incl_tax_base",
                "total_discount",
                "discount",
            )
        ]
        money_values += [
            d[key]
            for d in invoice["details"]
            for key in ("price", "amount_decimal", "total_price_excl_tax_with_discount")
        ]
        money_values += [p[key] for p in invoice["payments"] for key in ("price", "price_base")]
        money_values += [
            t[key] for t in invoice["tax_totals"] for key in ("taxable_amount", "tax_amount")
        ]
        assert all(isinstance(v, str) and NUMBER.match(v) and "." in v for v in money_values), (
            money_values
        )

        if invoice["state"] == "draft":
            assert invoice["invoice_id"] is None and isinstance(invoice["draft_id"], int)
            assert invoice["invoice_date"] is None
        else:
            assert re.fullmatch(r"20\d\d-\d{4,}", invoice["invoice_id"])
            assert invoice["invoice_id"].startswith(invoice["invoice_date"][:4])
            assert _rf_valid(invoice["payment_reference"]) and _rf_valid(
                invoice["short_payment_reference"]
            )
            reference, short = invoice["payment_reference"], invoice["short_payment_reference"]
            assert (
                len(reference) == 25
                and reference[:4] == short[:4]
                and reference[4:].lstrip("0") == short[4:]
            )
            issued = dt.date.fromisoformat(invoice["invoice_date"])
            assert dt.date(2024, 1, 1) <= issued <= dt.date.today()
            assert (dt.date.fromisoformat(invoice["due_date"]) - issued).days in (14, 30)

        details = invoice["details"]
        assert 1 <= len(details) <= 5
        assert [d["row_order"] for d in details] == list(range(1, len(details) + 1))
        by_rate: dict[str, Decimal] = {}
        for detail in details:
            line = (_money(detail["amount_decimal"]) * _money(detail["price"])).quantize(
                CENT, ROUND_HALF_UP
            )
            assert _money(detail["total_price_excl_tax_with_discount"]) == line
            assert detail["amount"].endswith(
                (" x", " uur", " km", " woorden", " dagdeel", " personen", " deelnemers")
            )
            by_rate[detail["tax_rate_id"]] = by_rate.get(detail["tax_rate_id"], Decimal(0)) + line
        excl = _money(invoice["total_price_excl_tax"])
        assert sum(by_rate.values()) == excl
        assert len({d["tax_rate_id"] for d in details}) == len(invoice["tax_totals"])
        tax = Decimal(0)
        for total in invoice["tax_totals"]:
            assert _money(total["taxable_amount"]) == by_rate[total["tax_rate_id"]]
            rate = _money(total["tax_amount"]) / _money(total["taxable_amount"]) * 100
            assert min(abs(rate - r) for r in (21, 9, 0)) < Decimal("0.5")
            tax += _money(total["tax_amount"])
        incl = _money(invoice["total_price_incl_tax"])
        assert incl == excl + tax and invoice["prices_are_incl_tax"] is False

        paid = sum((_money(p["price"]) for p in invoice["payments"]), Decimal(0))
        assert _money(invoice["total_paid"]) == paid
        assert (
            _money(invoice["total_unpaid"]) == _money(invoice["total_unpaid_base"]) == incl - paid
        )
        assert all(
            p["invoice_id"] == invoice["id"] and p["invoice_type"] == "SalesInvoice"
            for p in invoice["payments"]
        )
        if invoice["state"] == "paid":
            assert paid == incl and 1 <= len(invoice["payments"]) <= 2
            assert invoice["paid_at"] == max(p["payment_date"] for p in invoice["payments"])
            fully_paid += 1
        elif invoice["payments"]:
            assert invoice["state"] in ("open", "late", "reminded") and 0 < paid < incl
            partly_paid += 1
        assert invoice["version"] == int(
            dt.datetime.fromisoformat(invoice["updated_at"]).timestamp()
        )
    assert fully_paid and partly_paid
    contacts = [invoice["contact"] for invoice in everything]
    assert any(c["company_name"] is None and c["firstname"] and c["lastname"] for c in contacts)
    assert any(c["company_name"] and c["company_name"].endswith(" B.V.") for c in contacts)
    assert all(
        re.fullmatch(r"\d{4}[A-Z]{2}", c["zipcode"]) and c["country"] == "NL" for c in contacts
    )


def test_the_same_seed_gives_the_same_data() -> None:
    first, second = (
        MoneybirdSimulator(invoices=30, seed=11),
        MoneybirdSimulator(invoices=30, seed=11),
    )
    assert first.invoices() == second.invoices()
    assert MoneybirdSimulator(invoices=30, seed=12).invoices() != first.invoices()


# --- filters and fetching ------------------------------------------------------------------


def test_no_filter_means_period_this_year(
    served: tuple[MoneybirdSimulator, SimulatorServer], client: httpx.Client
) -> None:
    simulator = served[0]
    year = str(dt.date.today().year)
    expected = {
        p["id"] for p in simulator.invoices() if (p["invoice_date"] or year).startswith(year)
    }
    listed = _listed(client)
    assert set(listed) == expected
    assert len(listed) < 60, "the default hides earlier years"
    assert listed == {k: v for k, v in _listed(client, "period:this_year").items()}


def test_state_all_alone_replaces_the_period_default(client: httpx.Client) -> None:
    assert len(_listed(client, "state:all")) == 60
    assert len(_listed(client, "filter:open")) == 60, (
        "unknown keys are ignored, defaults still replaced"
    )


def test_period_and_state_filters(
    served: tuple[MoneybirdSimulator, SimulatorServer], client: httpx.Client
) -> None:
    payloads = served[0].invoices()
    today = dt.date.today()
    low, high = "2025-03-01", "2025-08-31"
    in_2025 = {p["id"] for p in payloads if p["invoice_date"] and low <= p["invoice_date"] <= high}
    assert set(_listed(client, "period:20250301..20250831")) == in_2025
    assert set(_listed(client, "period:202503..202508,state:all")) == in_2025
    drafts = {p["id"] for p in payloads if p["state"] == "draft"}
    around_today = f"period:{today - dt.timedelta(days=1):%Y%m%d}..{today:%Y%m%d}"
    assert drafts <= set(_listed(client, around_today)), (
        "undated drafts fall in a period containing today"
    )
    assert not drafts & set(_listed(client, "period:20240101..20241231"))
    late_or_paid = {p["id"] for p in payloads if p["state"] in ("late", "paid")}
    assert set(_listed(client, "state:late|paid")) == late_or_paid
    assert client.get("synchronization.json", params={"filter": "period:2025"}).status_code == 400


def test_a_fetch_answers_at_most_100_and_skips_unknown_ids() -> None:
    simulator = MoneybirdSimulator(invoices=150, token=TOKEN, rate_limit=None)
    with SimulatorServer(simulator) as server, _client(server, simulator) as client:
        ids = simulator.ids()
        answer = client.post("synchronization.json", json={"ids": ids}).json()
        assert [invoice["id"] for invoice in answer] == ids[:100]
        assert simulator.requests[-1] == (
            "POST",
            f"/api/v2/{simulator.administration_id}/sales_invoices/synchronization.json",
            150,
        )

        simulator.delete_invoice(ids[1])
        mixed = [ids[0], "1", ids[1], int(ids[2]), "496081512000000001", "not-a-number"]
        answer = client.post("synchronization.json", json={"ids": mixed}).json()
        assert [invoice["id"] for invoice in answer] == [ids[0], ids[2]]
        assert client.post("synchronization.json", json={"ids": []}).json() == []


# --- changes -------------------------------------------------------------------------------


def test_changes_bump_the_version_and_show_up(
    fresh: tuple[MoneybirdSimulator, httpx.Client],
) -> None:
    simulator, client = fresh
    before = _listed(client, "state:all")
    remote_id = next(
        p["id"] for p in simulator.invoices() if p["state"] == "open" and not p["payments"]
    )

    changed = simulator.change_invoice(remote_id, reference="Gewijzigd")
    after = _listed(client, "state:all")
    assert (
        after[remote_id] > before[remote_id]
        and after[remote_id] == simulator.invoice(remote_id)["version"]
    )
    assert {k for k in after if after[k] != before[k]} == {remote_id}
    fetched = client.post("synchronization.json", json={"ids": [remote_id]}).json()[0]
    assert fetched == changed == simulator.invoice(remote_id)
    assert (
        fetched["reference"] == "Gewijzigd"
        and fetched["updated_at"] > simulator.invoice(remote_id)["created_at"]
    )

    part = simulator.pay_invoice(remote_id, Decimal("10.05"))
    assert (
        part["state"] == "open"
        and part["total_paid"] == "10.05"
        and part["version"] > changed["version"]
    )
    paid = simulator.pay_invoice(remote_id)
    assert (
        paid["state"] == "paid" and _money(paid["total_unpaid"]) == 0 and len(paid["payments"]) == 2
    )
    assert _money(paid["total_paid"]) == _money(paid["total_price_incl_tax"])
    assert paid["paid_at"] == dt.datetime.now(dt.UTC).date().isoformat()

    created = simulator.create_invoice(reference="Nieuw")
    assert (
        created["state"] == "open"
        and created["reference"] == "Nieuw"
        and created["id"] in _listed(client)
    )
    draft = simulator.create_invoice(state="draft")
    assert draft["invoice_id"] is None and draft["draft_id"] and draft["invoice_date"] is None
    assert len(_listed(client, "state:all")) == 62


def test_delete_then_restore_brings_back_the_same_payload(
    fresh: tuple[MoneybirdSimulator, httpx.Client],
) -> None:
    simulator, client = fresh
    remote_id = simulator.ids()[3]
    original = simulator.invoice(remote_id)
    simulator.delete_invoice(remote_id)
    assert remote_id not in _listed(client, "state:all") and remote_id not in simulator.ids()
    assert client.post("synchronization.json", json={"ids": [remote_id]}).json() == []
    simulator.restore_invoice(remote_id)
    assert _listed(client, "state:all")[remote_id] == original["version"]
    assert client.post("synchronization.json", json={"ids": [remote_id]}).json() == [original]


def test_set_raw_serves_odd_money_spellings_verbatim(
    fresh: tuple[MoneybirdSimulator, httpx.Client],
) -> None:
    simulator, client = fresh
    remote_id = simulator.ids()[0]
    payload = simulator.invoice(remote_id)
    payload["total_price_excl_tax"] = "10,95"
    payload["details"][0]["total_price_excl_tax_with_discount"] = 10.95
    payload["details"][0]["price"] = Decimal("10.950")
    simulator.set_raw(remote_id, payload)
    raw = client.post("synchronization.json", json={"ids": [remote_id]}).content
    assert b'"total_price_excl_tax":"10,95"' in raw
    assert b'"total_price_excl_tax_with_discount":10.95,' in raw and b'"price":10.950,' in raw
    assert _listed(client, "state:all")[remote_id] == payload["version"], "set_raw bumps nothing"


# --- faults --------------------------------------------------------------------------------


def test_injected_429_carries_the_rate_limit_headers(
    fresh: tuple[MoneybirdSimulator, httpx.Client],
) -> None:
    simulator, client = fresh
    simulator.add_fault("429", times=2)
    simulator.add_fault("429", retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    for expected in ("1", "1", "Wed, 21 Oct 2026 07:28:00 GMT"):
        response = client.get("synchronization.json")
        assert response.status_code == 429 and response.text == "Retry later"
        assert response.headers["Retry-After"] == expected
        assert (
            response.headers["RateLimit-Limit"] and response.headers["RateLimit-Remaining"] == "0"
        )
        assert int(response.headers["RateLimit-Reset"]) > 1_700_000_000
    assert client.get("synchronization.json").status_code == 200
    assert len(simulator.requests) == 4 and simulator.rate_limited == 0


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_injected_server_errors_hit_only_their_endpoint(
    fresh: tuple[MoneybirdSimulator, httpx.Client], status: str
) -> None:
    simulator, client = fresh
    simulator.add_fault(status, endpoint="fetch")
    assert client.get("synchronization.json").status_code == 200
    assert client.post(
        "synchronization.json", json={"ids": simulator.ids()[:2]}
    ).status_code == int(status)
    assert client.post("synchronization.json", json={"ids": simulator.ids()[:2]}).status_code == 200
    assert [method for method, _, _ in simulator.requests] == ["GET", "POST", "POST"]
    assert simulator.requests[1][2] == 2, "faulted requests are logged too"


def test_a_dropped_connection_has_no_response(
    fresh: tuple[MoneybirdSimulator, httpx.Client],
) -> None:
    simulator, client = fresh
    simulator.add_fault("drop", endpoint="list")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("synchronization.json")
    assert client.get("synchronization.json").status_code == 200


def test_a_truncated_body_is_not_json(fresh: tuple[MoneybirdSimulator, httpx.Client]) -> None:
    simulator, client = fresh
    simulator.add_fault("truncate", endpoint="fetch")
    response = client.post("synchronization.json", json={"ids": simulator.ids()[:5]})
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    assert (
        len(
            orjson.loads(
                client.post("synchronization.json", json={"ids": simulator.ids()[:5]}).content
            )
        )
        == 5
    )


def test_a_slow_answer_still_arrives(fresh: tuple[MoneybirdSimulator, httpx.Client]) -> None:
    simulator, client = fresh
    simulator.add_fault("slow", delay=0.4)
    started = time.monotonic()
    assert client.get("synchronization.json").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_an_invalid_record_carries_the_planted_values(
    spec: Spec, fresh: tuple[MoneybirdSimulator, httpx.Client]
) -> None:
    simulator, client = fresh
    ids = simulator.ids()[:4]
    simulator.add_fault("invalid", remote_id=ids[2])
    simulator.add_fault("invalid")
    first = client.post("synchronization.json", json={"ids": ids[:2]}).json()
    assert first[0]["total_price_incl_tax"] == "12x.5" and first[0]["due_date"] == "not-a-date"
    assert first[1] == simulator.invoice(ids[1])
    assert spec.errors(spec.response_pointer("post", "200"), first), (
        "the planted values break the contract"
    )

    second = client.post("synchronization.json", json={"ids": ids}).json()
    assert [i["total_price_incl_tax"] == "12x.5" for i in second] == [False, False, True, False]
    assert second[2]["version"] == simulator.invoice(ids[2])["version"]
    assert client.post("synchronization.json", json={"ids": ids}).json() == simulator.invoices()[:4]


def test_unknown_fault_kinds_are_refused() -> None:
    with pytest.raises(ValueError):
        MoneybirdSimulator(invoices=1).add_fault("418")
    with pytest.raises(ValueError):
        MoneybirdSimulator(invoices=1).add_fault("500", endpoint="delete")


# --- the real rate limit -------------------------------------------------------------------


def test_the_real_rate_limit_slides() -> None:
    simulator = MoneybirdSimulator(invoices=5, token=TOKEN, rate_limit=3, rate_window=1.0)
    with SimulatorServer(simulator) as server, _client(server, simulator) as client:
        started = time.monotonic()
        remaining = [
            client.get("synchronization.json").headers["RateLimit-Remaining"] for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        refused = client.get("synchronization.json")
        assert refused.status_code == 429 and refused.text == "Retry later"
        assert refused.headers["Retry-After"] == "1" and refused.headers["RateLimit-Limit"] == "3"
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert 0 <= int(refused.headers["RateLimit-Reset"]) - time.time() <= 2
        assert simulator.rate_limited == 1 and len(simulator.requests) == 4
        # until a computed deadline: the 1 s window that began with the first request is over
        time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
        again = client.get("synchronization.json")
        assert again.status_code == 200 and again.headers["RateLimit-Remaining"] == "2"


# --- the command line ----------------------------------------------------------------------


def test_the_command_line_serves_in_the_foreground() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.moneybird.simulator",
            "--invoices",
            "20",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--no-rate-limit",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+/api/v2)", line)
        assert match, line
        response = httpx.get(
            f"{match.group(1)}/123456789/sales_invoices/synchronization.json",
            params={"filter": "state:all"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 200 and len(response.json()) == 20
        assert "RateLimit-Limit" not in response.headers
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


# --- financial mutations and accounts (scope `bank`, accounts scope `settings`) -------------

ALL_TIME = "period:20000101..20991231"


def _iban_valid(iban: str) -> bool:
    return bool(re.fullmatch(r"NL\d{2}[A-Z]{4}\d{10}", iban)) and _rf_valid(iban)


def _api(server: SimulatorServer, simulator: MoneybirdSimulator) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/{simulator.administration_id}/",
        headers={"Authorization": f"Bearer {simulator.token}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def api(served: tuple[MoneybirdSimulator, SimulatorServer]) -> Iterator[httpx.Client]:
    with _api(served[1], served[0]) as shared:
        yield shared


@pytest.fixture
def fresh_api() -> Iterator[tuple[MoneybirdSimulator, httpx.Client]]:
    simulator = MoneybirdSimulator(invoices=60, token=TOKEN, rate_limit=None, seed=7)
    with SimulatorServer(simulator) as server, _api(server, simulator) as client:
        yield simulator, client


MUTATIONS = "financial_mutations/synchronization.json"


def _listed_mutations(client: httpx.Client, filter_: str | None = None) -> dict[str, int]:
    params = {} if filter_ is None else {"filter": filter_}
    response = client.get(MUTATIONS, params=params)
    assert response.status_code == 200, response.text
    return {item["id"]: item["version"] for item in response.json()}


@pytest.fixture(scope="module")
def all_mutations(api: httpx.Client) -> list[dict[str, Any]]:
    ids = list(_listed_mutations(api, ALL_TIME))
    fetched: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        response = api.post(MUTATIONS, json={"ids": ids[start : start + 100]})
        assert response.status_code == 200
        fetched.extend(response.json())
    return fetched


def test_the_mutation_list_matches_the_spec(spec: Spec, api: httpx.Client) -> None:
    for params in (
        {},
        {"filter": ALL_TIME},
        {"filter": "period:this_week"},
        {"filter": f"{ALL_TIME},state:processed|unprocessed,mutation_type:debit"},
    ):
        response = api.get(MUTATIONS, params=params)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert (
            spec.errors(spec.response_pointer("get", "200", MUTATIONS_PATH), response.json()) == []
        )
    listing = api.get(MUTATIONS, params={"filter": ALL_TIME}).json()
    assert listing and all(re.fullmatch(r"\d{18}", item["id"]) for item in listing)
    assert all(type(item["version"]) is int for item in listing)


def test_fetched_mutations_match_the_spec(spec: Spec, all_mutations: list[dict[str, Any]]) -> None:
    assert spec.errors(spec.response_pointer("post", "200", MUTATIONS_PATH), all_mutations) == []


def test_financial_accounts_match_the_spec(
    spec: Spec, api: httpx.Client, all_mutations: list[dict[str, Any]]
) -> None:
    response = api.get("financial_accounts.json")
    assert response.status_code == 200
    accounts = response.json()
    assert spec.errors(spec.response_pointer("get", "200", ACCOUNTS_PATH), accounts) == []
    assert [(a["id"], a["identifier"], a["active"]) for a in accounts] == [
        (BANK_ACCOUNT_ID, BANK_ACCOUNT_IBAN, True)
    ]
    assert _iban_valid(BANK_ACCOUNT_IBAN) and accounts[0]["currency"] == "EUR"
    assert {m["financial_account_id"] for m in all_mutations} == {BANK_ACCOUNT_ID}
    assert api.get("financial_accounts").json() == accounts
    assert api.post("financial_accounts.json").status_code == 405


def test_invoice_payments_and_mutations_link_up(
    everything: list[dict[str, Any]], all_mutations: list[dict[str, Any]]
) -> None:
    by_id = {m["id"]: m for m in all_mutations}
    assert len(by_id) == len(all_mutations)
    linked = [p for i in everything for p in i["payments"] if p["financial_mutation_id"]]
    assert linked and len(linked) < sum(len(i["payments"]) for i in everything)
    invoices = {i["id"]: i for i in everything}
    for payment in linked:
        mutation = by_id[payment["financial_mutation_id"]]
        assert mutation["payments"] == [payment]
        assert (
            mutation["amount"] == payment["price"] and mutation["date"] == payment["payment_date"]
        )
        assert mutation["state"] == "processed" and _money(mutation["amount_open"]) == 0
        assert mutation["processed_at"] == mutation["updated_at"] == payment["created_at"]
        invoice = invoices[payment["invoice_id"]]
        assert (
            invoice["payment_reference"] in mutation["message"]
            or f"Factuur {invoice['invoice_id']}" in mutation["message"]
        )
        assert _iban_valid(mutation["contra_account_number"])
        assert mutation["contra_account_name"]
        assert mutation["sepa_fields"]["eref"] in (payment["transaction_identifier"], "NOTPROVIDED")
    unrelated = [m for m in all_mutations if not m["payments"]]
    assert len(all_mutations) == len(linked) + len(unrelated)
    assert 0 < len(unrelated) <= len(linked) // 5
    assert any(_money(m["amount"]) < 0 for m in unrelated)
    for mutation in all_mutations:
        assert NUMBER.match(mutation["amount"]) and "." in mutation["amount"]
        assert mutation["version"] == int(
            dt.datetime.fromisoformat(mutation["updated_at"]).timestamp()
        )
        assert mutation["created_at"] <= mutation["updated_at"]
        if not mutation["payments"]:
            assert mutation["state"] == "unprocessed" and mutation["processed_at"] is None
            assert mutation["amount_open"] == mutation["amount"]


def test_mutation_filters(
    spec: Spec, served: tuple[MoneybirdSimulator, SimulatorServer], api: httpx.Client
) -> None:
    mutations = served[0].mutations()
    year = str(dt.date.today().year)
    this_year = {m["id"] for m in mutations if m["date"].startswith(year)}
    assert set(_listed_mutations(api)) == this_year
    assert set(_listed_mutations(api, "state:all")) == {m["id"] for m in mutations}
    assert len(this_year) < len(mutations), "the default hides earlier years"
    in_2025 = {m["id"] for m in mutations if "2025-03-01" <= m["date"] <= "2025-08-31"}
    assert set(_listed_mutations(api, "period:20250301..20250831")) == in_2025
    credits = {m["id"] for m in mutations if _money(m["amount"]) < 0}
    assert set(_listed_mutations(api, f"{ALL_TIME},mutation_type:credit")) == credits
    unprocessed = {m["id"] for m in mutations if m["state"] == "unprocessed"}
    assert set(_listed_mutations(api, f"{ALL_TIME},state:unprocessed")) == unprocessed
    assert len(_listed_mutations(api, f"financial_account_id:{BANK_ACCOUNT_ID}")) == len(mutations)
    assert _listed_mutations(api, "financial_account_id:1") == {}
    for bad in ("state:open", "mutation_type:both", "period:2025"):
        response = api.get(MUTATIONS, params={"filter": bad})
        assert response.status_code == 400
        assert spec.errors(SHARED_400, response.json()) == []


def test_a_mutation_fetch_answers_at_most_100_and_an_exact_count_is_honoured() -> None:
    simulator = MoneybirdSimulator(invoices=200, mutations=150, token=TOKEN, rate_limit=None)
    with SimulatorServer(simulator) as server, _api(server, simulator) as client:
        ids = list(_listed_mutations(client, ALL_TIME))
        assert ids == simulator.mutation_ids() and len(ids) == 150
        answer = client.post(MUTATIONS, json={"ids": ids}).json()
        assert [m["id"] for m in answer] == ids[:100]
        simulator.delete_mutation(ids[1])
        mixed = [ids[0], "1", ids[1], int(ids[2]), "not-a-number"]
        assert [m["id"] for m in client.post(MUTATIONS, json={"ids": mixed}).json()] == [
            ids[0],
            ids[2],
        ]
        bad = client.post(MUTATIONS, content=b'{"ids": "1"}')
        assert bad.status_code == 400 and set(bad.json()) == {"error", "symbolic"}
    simulator.restore_mutation(ids[1])
    served_ids = set(simulator.mutation_ids())
    payments = [p for i in simulator.invoices() for p in i["payments"]]
    assert all(
        p["financial_mutation_id"] in served_ids for p in payments if p["financial_mutation_id"]
    )
    assert MoneybirdSimulator(invoices=200, mutations=0).mutations() == []
    none_linked = MoneybirdSimulator(invoices=50, mutations=0).invoices()
    assert not any(p["financial_mutation_id"] for i in none_linked for p in i["payments"])
    assert len(MoneybirdSimulator(invoices=5, mutations=40).mutation_ids()) == 40


def test_the_same_seed_gives_the_same_mutations() -> None:
    first, second = (
        MoneybirdSimulator(invoices=30, seed=11),
        MoneybirdSimulator(invoices=30, seed=11),
    )
    assert first.mutations() == second.mutations() and first.mutations()
    assert MoneybirdSimulator(invoices=30, seed=12).mutations() != first.mutations()


def test_missing_scopes_are_refused_with_403(spec: Spec) -> None:
    simulator = MoneybirdSimulator(
        invoices=5, token=TOKEN, rate_limit=None, scopes=("sales_invoices",)
    )
    with SimulatorServer(simulator) as server, _api(server, simulator) as client:
        for response, scope in (
            (client.get(MUTATIONS), "bank"),
            (client.post(MUTATIONS, json={"ids": simulator.mutation_ids()[:1]}), "bank"),
            (client.get("financial_accounts.json"), "settings"),
        ):
            assert response.status_code == 403
            assert spec.errors(SHARED_403, response.json()) == []
            assert response.json()["error"] == f"No access to {scope}"
            assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert client.get("sales_invoices/synchronization.json").status_code == 200
        wrong = client.get(MUTATIONS, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
    bank_only = MoneybirdSimulator(invoices=5, token=TOKEN, rate_limit=None, scopes=("bank",))
    with SimulatorServer(bank_only) as server, _api(server, bank_only) as client:
        assert client.get(MUTATIONS).status_code == 200
        refused = client.post("sales_invoices/synchronization.json", json={"ids": []})
        assert (
            refused.status_code == 403 and refused.json()["error"] == "No access to sales_invoices"
        )
        assert client.get("financial_accounts.json").status_code == 403


def test_mutation_changes_show_up(
    spec: Spec, fresh_api: tuple[MoneybirdSimulator, httpx.Client]
) -> None:
    simulator, client = fresh_api
    before = _listed_mutations(client, ALL_TIME)
    remote_id = next(m["id"] for m in simulator.mutations() if m["state"] == "unprocessed")
    changed = simulator.change_mutation(remote_id, message="Gewijzigd")
    after = _listed_mutations(client, ALL_TIME)
    assert after[remote_id] > before[remote_id]
    assert {k for k in after if after[k] != before[k]} == {remote_id}
    assert client.post(MUTATIONS, json={"ids": [remote_id]}).json() == [changed]

    simulator.delete_mutation(remote_id)
    assert remote_id not in _listed_mutations(client, ALL_TIME)
    assert client.post(MUTATIONS, json={"ids": [remote_id]}).json() == []
    simulator.restore_mutation(remote_id)
    assert client.post(MUTATIONS, json={"ids": [remote_id]}).json() == [changed]

    created = simulator.create_mutation(amount="-12.5", message="Parkeren")
    assert created["date"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert created["state"] == "unprocessed" and created["amount_open"] == "-12.5"
    assert created["id"] in _listed_mutations(client), "dated today: within this year"
    assert created["id"] not in _listed_mutations(client, f"{ALL_TIME},mutation_type:debit")

    invoice_id = next(
        i["id"] for i in simulator.invoices() if i["state"] == "open" and not i["payments"]
    )
    paid = simulator.pay_invoice(invoice_id, bank=True)
    payment = paid["payments"][-1]
    linked = client.post(MUTATIONS, json={"ids": [payment["financial_mutation_id"]]}).json()
    assert [m["payments"] for m in linked] == [[payment]]
    assert linked[0]["amount"] == payment["price"] and linked[0]["state"] == "processed"
    assert (
        spec.errors(spec.response_pointer("post", "200", MUTATIONS_PATH), linked + [created]) == []
    )
    count = len(simulator.mutation_ids())
    other = next(i["id"] for i in simulator.invoices() if i["state"] == "late")
    assert simulator.pay_invoice(other, bank=False)["payments"][-1]["financial_mutation_id"] is None
    assert len(simulator.mutation_ids()) == count

    payload = simulator.mutation(remote_id)
    payload["amount"] = "-10,95"
    simulator.set_raw_mutation(remote_id, payload)
    assert b'"amount":"-10,95"' in client.post(MUTATIONS, json={"ids": [remote_id]}).content


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_faults_hit_only_the_mutation_endpoint_named(
    fresh_api: tuple[MoneybirdSimulator, httpx.Client], status: str
) -> None:
    simulator, client = fresh_api
    ids = simulator.mutation_ids()[:2]
    simulator.add_fault(status, endpoint="mutations_fetch")
    simulator.add_fault("429", endpoint="mutations_list")
    assert client.post("sales_invoices/synchronization.json", json={"ids": []}).status_code == 200
    assert client.get("financial_accounts.json").status_code == 200
    assert client.post(MUTATIONS, json={"ids": ids}).status_code == int(status)
    assert client.post(MUTATIONS, json={"ids": ids}).status_code == 200
    assert client.get("sales_invoices/synchronization.json").status_code == 200
    throttled = client.get(MUTATIONS)
    assert throttled.status_code == 429 and throttled.text == "Retry later"
    assert client.get(MUTATIONS).status_code == 200


def test_drop_truncate_and_accounts_faults(
    fresh_api: tuple[MoneybirdSimulator, httpx.Client],
) -> None:
    simulator, client = fresh_api
    simulator.add_fault("drop", endpoint="mutations_list")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(MUTATIONS)
    simulator.add_fault("truncate", endpoint="mutations_fetch")
    truncated = client.post(MUTATIONS, json={"ids": simulator.mutation_ids()[:3]})
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(truncated.content)
    simulator.add_fault("503", endpoint="accounts")
    assert client.get("financial_accounts.json").status_code == 503
    simulator.add_fault("500", endpoint="list")
    assert client.get(MUTATIONS).status_code == 200, "`list` means the invoice list"
    assert client.get("financial_accounts.json").status_code == 200


def test_an_invalid_mutation_carries_the_planted_values(
    spec: Spec, fresh_api: tuple[MoneybirdSimulator, httpx.Client]
) -> None:
    simulator, client = fresh_api
    ids = simulator.mutation_ids()[:3]
    simulator.add_fault("invalid", endpoint="mutations_fetch", remote_id=ids[1])
    assert (
        client.post("sales_invoices/synchronization.json", json={"ids": simulator.ids()[:2]}).json()
        == simulator.invoices()[:2]
    )
    answer = client.post(MUTATIONS, json={"ids": ids}).json()
    assert [m["amount"] == "12x.5" and m["date"] == "not-a-date" for m in answer] == [
        False,
        True,
        False,
    ]
    assert spec.errors(spec.response_pointer("post", "200", MUTATIONS_PATH), answer)
    assert client.post(MUTATIONS, json={"ids": ids}).json() == simulator.mutations()[:3]


PAYMENTS_PATH = "/{administration_id}/sales_invoices/{sales_invoice_id}/payments{format}"


def _payments_client(server: SimulatorServer, simulator: MoneybirdSimulator) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/{simulator.administration_id}/sales_invoices/",
        headers={"Authorization": f"Bearer {simulator.token}"},
        timeout=10,
    )


def test_a_registered_payment_matches_the_spec_and_shows_up_in_the_next_fetch(
    spec: Spec,
) -> None:
    simulator = MoneybirdSimulator(invoices=30, token=TOKEN, rate_limit=None, seed=11)
    with SimulatorServer(simulator) as server, _payments_client(server, simulator) as client:
        invoice = next(
            i for i in _fetch_all(client) if _money(i["total_unpaid"]) > 0 and i["state"] != "draft"
        )
        request = {
            "payment": {
                "payment_date": "2026-08-21",
                "price": str(_money(invoice["total_unpaid"])),
                "transaction_identifier": "isync:tx-81:inv-7",
            }
        }
        assert not spec.errors(
            "/paths/" + _escape(PAYMENTS_PATH) + "/post/requestBody/content/application~1*/schema",
            request,
        )
        created = client.post(f"{invoice['id']}/payments.json", json=request)
        assert created.status_code == 201, created.text
        assert not spec.errors(spec.response_pointer("post", "201", PAYMENTS_PATH), created.json())
        after = client.post("synchronization.json", json={"ids": [invoice["id"]]}).json()[0]
        assert after["version"] > invoice["version"] and after["state"] == "paid"
        markers = [p["transaction_identifier"] for p in after["payments"]]
        assert markers.count("isync:tx-81:inv-7") == 1

        bad = client.post(f"{invoice['id']}/payments.json", json={"payment": {"price": "1"}})
        assert bad.status_code == 400 and "payment_date" in bad.text
        odd = client.post(
            f"{invoice['id']}/payments.json",
            json={"payment": {"payment_date": "2026-08-21", "price": "1", "colour": "red"}},
        )
        assert odd.status_code == 400
        transfer = client.post(
            f"{invoice['id']}/payments.json",
            json={
                "payment": {
                    "payment_date": "2026-08-21",
                    "price": "1",
                    "manual_payment_action": "bank_transfer",
                }
            },
        )
        assert transfer.status_code == 400 and "financial_mutation_id" in transfer.text
        null = {"payment_date": "2026-08-21", "price": "1", "financial_account_id": None}
        assert spec.errors(
            "/paths/" + _escape(PAYMENTS_PATH) + "/post/requestBody/content/application~1*/schema",
            {"payment": null},
        ), "the spec allows no null: a client must leave an absent field out"
        nulled = client.post(f"{invoice['id']}/payments.json", json={"payment": null})
        assert nulled.status_code == 400 and "financial_account_id" in nulled.text
        unknown = client.post(
            f"{invoice['id']}/payments.json",
            json={
                "payment": {
                    "payment_date": "2026-08-21",
                    "price": "1",
                    "financial_mutation_id": "999",
                    "manual_payment_action": "bank_transfer",
                }
            },
        )
        assert unknown.status_code == 422 and "Financial mutation not found" in unknown.text
        assert not spec.errors(spec.response_pointer("post", "422", PAYMENTS_PATH), unknown.json())
        assert client.post("1/payments.json", json=request).status_code == 404
        deleted = client.delete(f"{invoice['id']}/payments/{created.json()['id']}.json")
        assert deleted.status_code == 204
        again = client.post("synchronization.json", json={"ids": [invoice["id"]]}).json()[0]
        assert again["version"] > after["version"] and again["state"] != "paid"
        assert "isync:tx-81:inv-7" not in [p["transaction_identifier"] for p in again["payments"]]
        assert _money(again["total_unpaid"]) == _money(invoice["total_unpaid"])


def test_a_payment_can_land_while_its_answer_is_lost() -> None:
    """What write-back must survive: the payment is recorded, the client hears a 500."""
    simulator = MoneybirdSimulator(invoices=10, token=TOKEN, rate_limit=None, seed=12)
    simulator.fail_after_write.append("500")
    with SimulatorServer(simulator) as server, _payments_client(server, simulator) as client:
        invoice_id = simulator.ids()[0]
        before = len(simulator.payments_of(invoice_id))
        answer = client.post(
            f"{invoice_id}/payments.json",
            json={"payment": {"payment_date": "2026-08-21", "price": "5.00"}},
        )
        assert answer.status_code == 500
        assert len(simulator.payments_of(invoice_id)) == before + 1


def _fetch_all(client: httpx.Client) -> list[dict[str, Any]]:
    ids = [
        item["id"]
        for item in client.get("synchronization.json", params={"filter": "state:all"}).json()
    ]
    return [
        i
        for start in range(0, len(ids), 100)
        for i in client.post("synchronization.json", json={"ids": ids[start : start + 100]}).json()
    ]
