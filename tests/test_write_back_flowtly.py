"""Write-back to Flowtly: `POST /invoice-transactions` with the invoice's IRI, the amount, the
date and the bank transaction as `transaction`, against the simulator over loopback, on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from connectors.errors import PermanentError
from connectors.flowtly.config import FlowtlySource
from connectors.flowtly.simulator import FlowtlySimulator
from connectors.payments import PaymentPush
from connectors.simulation import SimulatorServer
from store.pushes import CANCELLED, CONFIRMED, SENT
from tests.write_back_case import BOOKED, Case, Remote, outcomes, synced_case
from workers.write_back import DROPPED, REGISTERED, undo

TOKEN_ENV = "TEST_FLOWTLY_WRITE_TOKEN"


@pytest.fixture
def case(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Case]:
    flowtly = FlowtlySimulator(invoices=60, seed=9, shape="hydra")
    monkeypatch.setenv(TOKEN_ENV, flowtly.token)
    with SimulatorServer(flowtly) as server:
        source = FlowtlySource.model_validate(
            {
                "name": "studio",
                "kind": "flowtly",
                "base_url": server.base_url,
                "token_env": TOKEN_ENV,
                "timeout": 5,
                "page_size": 20,
                "write_back": "apply",
            }
        )

        def markers(remote_id: str) -> list[tuple[str, str | None]]:
            return [
                (str(t["id"]), (t["transaction"] or "").rsplit("/", 1)[-1] or None)
                for t in flowtly.transactions_of(int(remote_id))
            ]

        def posts() -> int:
            return sum(
                1 for method, path in flowtly.requests if method == "POST" and "transac" in path
            )

        with synced_case(database_url, source, flowtly, Remote(markers, posts)) as case:
            yield case


def test_a_payment_is_posted_once_as_an_invoice_transaction_and_the_next_sync_confirms(
    case: Case,
) -> None:
    rows = case.paid_invoices(2)
    result = case.push()
    assert outcomes(result) == [REGISTERED, REGISTERED] and not result.failed
    for row in rows:
        push = case.pushes()[row["id"]]
        assert push["status"] == SENT
        [made] = [
            t
            for t in case.simulator.transactions_of(int(row["remote_id"]))
            if str(t["id"]) == push["remote_payment_id"]
        ]
        assert made["transaction"] == f"/transactions/{push['bank_transaction_id']}"
        assert Decimal(str(made["amount"])) == row["total_incl_tax"]
        assert made["date"].startswith(BOOKED.isoformat())
        assert case.simulator.totals(int(row["remote_id"]))["paid"] == row["total_incl_tax"]
    assert case.push().outcomes == []
    case.app.sync_inline(case.app.config.sources[0])
    assert case.plan().confirmed == 2
    assert {p["status"] for p in case.pushes().values()} == {CONFIRMED}
    assert case.posts() == 2


@pytest.mark.parametrize("lost", ["500", "drop"])
def test_a_lost_answer_is_found_by_its_transaction_reference(case: Case, lost: str) -> None:
    [row] = case.paid_invoices(1)
    case.simulator.fail_after_write = [lost]
    assert outcomes(case.push()) == [REGISTERED]
    assert case.posts() == 1 and len(case.marked(row)) == 0  # the key itself is not kept...
    push = case.pushes()[row["id"]]
    assert [m for _, m in case.remote.markers(row["remote_id"])] == [
        str(push["bank_transaction_id"])
    ]  # ... the bank transaction is


def test_an_invoice_deleted_at_flowtly_cancels_its_push(case: Case) -> None:
    [row] = case.paid_invoices(1)
    case.simulator.soft_delete(int(row["remote_id"]))
    result = case.push()
    assert outcomes(result) == [DROPPED] and "gone at the source" in result.outcomes[0].detail
    assert case.pushes()[row["id"]]["status"] == CANCELLED
    assert case.posts() == 0


def test_a_payment_pushed_by_mistake_is_undone_at_flowtly(case: Case) -> None:
    [row] = case.paid_invoices(1)
    case.push()
    push = case.store.get(case.pushes()[row["id"]]["id"])
    assert push is not None
    with case.app.connector(case.app.config.sources[0]) as connector:
        undo(case.store, connector, push, "erin")
    assert case.simulator.transactions_of(int(row["remote_id"])) == []
    assert case.simulator.totals(int(row["remote_id"]))["paid"] == 0
    assert case.pushes()[row["id"]]["status"] == CANCELLED


def test_a_422_names_flowtlys_violations(case: Case) -> None:
    """An invoice gone between the re-read and the POST: API Platform's violations, as a
    refusal (nothing was written), never an unknown outcome."""
    missing = PaymentPush("999999", Decimal("10.00"), BOOKED, "1")
    with case.app.connector(case.app.config.sources[0]) as connector:
        with pytest.raises(PermanentError, match=r"HTTP 422.*invoice.*Item not found"):
            connector.register_payment(missing)
    assert case.posts() == 1
