"""Write-back to WeFact: `invoice markaspaid` / `invoice partpayment` with the marker as
`TransactionID`, errors in the 200 envelope, against the simulator over loopback, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from connectors.errors import PermanentError
from connectors.payments import PaymentPush, WriteBackUnsupported
from connectors.simulation import SimulatorServer
from connectors.wefact.config import WeFactSource
from connectors.wefact.simulator import WeFactSimulator
from store.pushes import CANCELLED, CONFIRMED, SENT
from tests.write_back_case import BOOKED, Case, Remote, outcomes, synced_case
from workers.reconciliation.review import match
from workers.write_back import DROPPED, REGISTERED, undo

KEY = "wefact-key-1e55"
KEY_ENV = "TEST_WEFACT_WRITE_KEY"
PAYING = {"markaspaid", "partpayment"}


@pytest.fixture
def case(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Case]:
    monkeypatch.setenv(KEY_ENV, KEY)
    wefact = WeFactSimulator(token=KEY, invoices=60, seed=8)
    with SimulatorServer(wefact) as server:
        source = WeFactSource.model_validate(
            {
                "name": "office",
                "kind": "wefact",
                "base_url": server.base_url + "/",
                "token_env": KEY_ENV,
                "timeout": 5,
                "write_back": "apply",
            }
        )

        def markers(remote_id: str) -> list[tuple[str, str | None]]:
            invoice = wefact.invoice(int(remote_id))
            return [(f"{remote_id}:paid", invoice.get("TransactionID") or None)]

        def posts() -> int:
            return sum(1 for _, action in wefact.calls if action in PAYING)

        with synced_case(database_url, source, wefact, Remote(markers, posts)) as case:
            yield case


def test_a_full_payment_marks_paid_and_a_part_is_a_partpayment_each_once(case: Case) -> None:
    rows = case.invoices(2)
    part = Decimal("5.00")
    case.pay(rows[:1])
    short = {**rows[1], "total_incl_tax": rows[1]["total_incl_tax"] - part}
    [tx] = case.pay([short])  # the customer paid all but 5.00
    case.plan()
    match(case.app.engine, tx, str(short["id"]), None, "dana")  # a person says it pays it
    assert case.plan().planned == 1 and len(case.pushes()) == 2
    result = case.push()
    assert outcomes(result) == [REGISTERED, REGISTERED] and not result.failed
    assert sorted(a for _, a in case.simulator.calls if a in PAYING) == [
        "markaspaid",
        "partpayment",
    ]
    for row, paid, status in (
        (rows[0], rows[0]["total_incl_tax"], 4),
        (short, short["total_incl_tax"], 3),
    ):
        push = case.pushes()[row["id"]]
        assert push["status"] == SENT and push["remote_payment_id"] == f"{row['remote_id']}:paid"
        assert push["amount"] == paid
        truth = case.simulator.truth(int(row["remote_id"]))
        assert truth["paid"] == paid and truth["status"] == status
        shown = case.simulator.invoice(int(row["remote_id"]))
        assert shown["TransactionID"] == push["idempotency_key"]
        assert shown["PayDate"] == BOOKED.isoformat()
    assert case.push().outcomes == []
    case.app.sync_inline(case.app.config.sources[0])
    assert case.plan().confirmed == 2
    assert {p["status"] for p in case.pushes().values()} == {CONFIRMED}
    assert case.posts() == 2


def test_a_lost_answer_is_found_by_its_transaction_id(case: Case) -> None:
    [row] = case.paid_invoices(1)
    case.simulator.fail_after_write = ["drop"]
    assert outcomes(case.push()) == [REGISTERED]
    assert case.posts() == 1 and case.marked(row) == [f"{row['remote_id']}:paid"]


def test_an_error_in_the_envelope_is_a_refusal_in_wefacts_words_never_an_unknown_outcome(
    case: Case,
) -> None:
    """A write WeFact answered with an error was not carried out: it fails, it is not retried
    nor left uncertain. (A push re-reads the invoice first, so it cancels rather than sends.)"""
    [row] = case.paid_invoices(1)
    case.simulator.edit(int(row["remote_id"]), status=0)  # a draft again, at WeFact only
    push = PaymentPush(row["remote_id"], row["total_incl_tax"], BOOKED, "m", settles=True)
    with case.app.connector(case.app.config.sources[0]) as connector:
        with pytest.raises(PermanentError, match="Invoice cannot be paid: its status is 0"):
            connector.register_payment(push)
    result = case.push()
    assert outcomes(result) == [DROPPED] and "draft at the source" in result.outcomes[0].detail
    assert case.pushes()[row["id"]]["status"] == CANCELLED
    assert case.posts() == 1  # only the direct call above


def test_wefact_has_no_call_to_undo_a_payment_and_says_so(case: Case) -> None:
    [row] = case.paid_invoices(1)
    case.push()
    push = case.store.get(case.pushes()[row["id"]]["id"])
    assert push is not None
    with case.app.connector(case.app.config.sources[0]) as connector:
        with pytest.raises(WriteBackUnsupported, match="undo it there by hand"):
            undo(case.store, connector, push, "erin")
    assert case.pushes()[row["id"]]["status"] == SENT
