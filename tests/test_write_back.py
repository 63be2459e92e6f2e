"""Write-back to Moneybird: bank payments reconciliation found are registered at the simulator
over HTTP, each exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from connectors.payments import PaymentPush
from store.pushes import CANCELLED, CONFIRMED, FAILED, PLANNED, SENDING, SENT
from tests.conftest import make_source
from tests.daemon_queue import daemon_of
from tests.reconciliation_book import Book
from tests.write_back_case import BOOKED, Case, Remote, outcomes
from workers.app import App
from workers.config import AppConfig
from workers.reconciliation.review import reject
from workers.write_back import (
    DROPPED,
    FOUND,
    REFUSED,
    REGISTERED,
    UNKNOWN,
    planned,
)


def moneybird(simulator: MoneybirdSimulator) -> Remote:
    def markers(remote_id: str) -> list[tuple[str, str | None]]:
        return [(p["id"], p["transaction_identifier"]) for p in simulator.payments_of(remote_id)]

    def posts() -> int:
        return sum(1 for _, path, _ in simulator.requests if path.endswith("/payments.json"))

    return Remote(markers, posts)


@pytest.fixture
def case(app: App, database_url: str, simulator: MoneybirdSimulator) -> Case:
    app.sync_inline(app.config.sources[0])
    return Case(app, Book(database_url), simulator, moneybird(simulator))


def test_plan_send_once_and_the_next_sync_confirms(case: Case) -> None:
    rows = case.invoices(3)
    case.pay(rows)
    assert case.plan().planned == 3
    shown = planned(case.store, case.source)
    assert [p.invoice_remote_id for p in shown] == [r["remote_id"] for r in rows]
    assert [p.match_amount for p in shown] == [r["total_incl_tax"] for r in rows]
    assert case.posts() == 0  # planning writes nothing remote

    result = case.push()
    assert outcomes(result) == [REGISTERED] * 3 and not result.failed
    assert case.posts() == 3
    for row in rows:
        push = case.pushes()[row["id"]]
        assert push["status"] == SENT and push["attempts"] == 1
        assert push["amount"] == row["total_incl_tax"]
        assert push["idempotency_key"].startswith("invoice-sync tx ")
        [landed] = [
            p
            for p in case.simulator.payments_of(row["remote_id"])
            if p["transaction_identifier"] == push["idempotency_key"]
        ]
        assert landed["price"] == format(row["total_incl_tax"], "f")
        assert landed["payment_date"] == BOOKED.isoformat()
        assert landed["financial_mutation_id"] is None
        assert push["remote_payment_id"] == landed["id"]

    assert case.plan().planned == 0  # again: nothing new is planned or sent
    assert case.push().outcomes == []
    assert case.posts() == 3

    case.app.sync_inline(case.app.config.sources[0])
    assert case.plan().confirmed == 3
    assert {p["status"] for p in case.pushes().values()} == {CONFIRMED}
    for row in rows:
        assert case.book.invoice_status(row["id"])[0] == "reconciled"
    assert case.plan().planned == 0


@pytest.mark.parametrize("lost", ["500", "drop"])
def test_a_lost_answer_of_a_payment_that_landed_is_found_not_sent_again(
    case: Case, lost: str
) -> None:
    rows = case.paid_invoices(2)
    case.simulator.fail_after_write = [lost]
    result = case.push()
    assert outcomes(result) == [REGISTERED, REGISTERED]
    assert sum("found after" in o.detail for o in result.outcomes) == 1
    assert case.posts() == 2
    for row in rows:
        assert case.pushes()[row["id"]]["status"] == SENT
        assert len(case.marked(row)) == 1


def test_an_unknown_outcome_waits_for_the_lease_then_is_read_back_before_any_resend(
    case: Case,
) -> None:
    [row] = case.paid_invoices(1)
    # the server fails before it records anything: the outcome is unknown all the same
    case.simulator.add_fault("500", endpoint="payment")
    first = case.push()
    assert outcomes(first) == [UNKNOWN] and first.failed
    assert case.pushes()[row["id"]]["status"] == SENDING
    # within the lease another worker may still be sending it: nothing is sent
    second = case.push()
    assert second.outcomes == [] and second.in_flight == 1
    assert case.posts() == 1
    # after the lease: read back, not there, sent once more
    assert outcomes(case.push(lease=dt.timedelta(0))) == [REGISTERED]
    assert case.posts() == 2
    push = case.pushes()[row["id"]]
    assert push["status"] == SENT and push["attempts"] == 2
    assert len(case.simulator.payments_of(row["remote_id"])) == 1


def test_a_push_found_at_the_source_after_a_crash_is_recorded_not_resent(case: Case) -> None:
    """The worker died after the POST landed and before it wrote `sent`: the row says
    `sending`; the next run after the lease reads the invoice back and finds the marker."""
    [row] = case.paid_invoices(1)
    push = case.pushes()[row["id"]]
    now = dt.datetime.now(dt.UTC)
    assert case.store.claim(push["id"], now, now) == "claimed"
    with case.app.connector(case.app.config.sources[0]) as connector:
        connector.register_payment(
            PaymentPush(row["remote_id"], row["total_incl_tax"], BOOKED, push["idempotency_key"])
        )  # ... and the worker dies here, before it records `sent`
    assert outcomes(case.push(lease=dt.timedelta(0))) == [FOUND]
    assert case.posts() == 1
    assert case.pushes()[row["id"]]["status"] == SENT
    assert len(case.simulator.payments_of(row["remote_id"])) == 1


def test_suggestions_are_never_pushed_and_a_rejection_cancels_a_planned_push(
    case: Case,
) -> None:
    rows = case.invoices(2)
    case.pay(rows[:1])
    # money of the right amount without a reference, from an unknown account: a suggestion
    amount = str(rows[1]["total_incl_tax"])
    case.book.tx(amount, text="betaling", iban="NL02ABNA0123456789", booked=BOOKED)
    assert case.plan().planned == 1
    assert rows[1]["id"] not in case.pushes()
    tx_id = case.pushes()[rows[0]["id"]]["bank_transaction_id"]

    reject(case.app.engine, tx_id, str(rows[0]["id"]), "alice")
    push = case.pushes()[rows[0]["id"]]
    assert push["status"] == CANCELLED and "alice rejected the match" in push["last_error"]
    assert case.push().outcomes == []
    assert case.plan().planned == 0
    assert case.posts() == 0


def test_an_invoice_paid_meanwhile_is_cancelled_and_one_partly_paid_gets_what_is_open(
    case: Case,
) -> None:
    rows = case.paid_invoices(2)
    case.simulator.pay_invoice(rows[0]["remote_id"])  # the bookkeeper typed it in by hand
    part = Decimal("10.00")
    case.simulator.pay_invoice(rows[1]["remote_id"], amount=part)
    result = case.push()
    assert outcomes(result) == [DROPPED, REGISTERED]
    assert "paid at the source" in result.outcomes[0].detail
    assert case.pushes()[rows[0]["id"]]["status"] == CANCELLED
    assert case.pushes()[rows[1]["id"]]["amount"] == rows[1]["total_incl_tax"] - part
    assert "capped" in result.outcomes[1].detail
    assert case.posts() == 1


def test_a_refusal_fails_that_push_with_the_sources_words_and_the_rest_go_on(
    case: Case,
) -> None:
    rows = case.invoices(2)
    # money from Moneybird's own bank feed links its financial mutation: one unknown to it
    case.pay(rows[:1], origin="moneybird")
    with case.book.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE bank_transactions SET source = :s, bank_reference = '1'"),
            {"s": case.source},
        )
    case.pay(rows[1:])
    case.plan()
    result = case.push()
    assert outcomes(result) == [REFUSED, REGISTERED] and result.failed
    assert "HTTP 422" in result.outcomes[0].detail
    failed = case.pushes()[rows[0]["id"]]
    assert failed["status"] == FAILED and "Financial mutation not found" in failed["last_error"]
    assert case.push().outcomes == []  # a refusal is not sent again by itself


def test_a_refused_token_stops_the_source_and_sends_nothing(case: Case) -> None:
    case.paid_invoices(2)
    case.simulator.scopes = ()
    result = case.push()
    assert result.stopped is not None and "HTTP 403" in result.stopped and result.failed
    assert {p["status"] for p in case.pushes().values()} == {PLANNED}
    assert case.posts() == 0


def test_the_daemon_pushes_after_each_reconciliation_for_sources_that_apply(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> None:
    source = make_source(server, simulator, write_back="apply")
    config = AppConfig(database_url=database_url, sources=(source,), path=Path("t.toml"))
    app = App.open(config)
    try:
        app.sync_inline(source)
        case = Case(app, Book(database_url), simulator, moneybird(simulator))
        [row] = case.invoices(1)
        case.pay([row])
        with daemon_of(app) as daemon:
            sent: list[str] = []
            daemon.send_push = sent.append
            assert daemon.reconcile() == "ok"
            assert sent == ["acme"]
            result = daemon.push_payments("acme")
            assert result is not None and outcomes(result) == [REGISTERED]
            assert len(case.marked(row)) == 1
            assert daemon.reconcile() == "unchanged" and sent == ["acme", "acme"]
            again = daemon.push_payments("acme")
            assert again is not None and again.outcomes == []
        assert case.posts() == 1
    finally:
        app.close()


def test_an_invoice_whose_total_changed_is_cancelled_then_planned_again_after_a_sync(
    case: Case,
) -> None:
    [row] = case.paid_invoices(1)
    raised = row["total_incl_tax"] + Decimal("10.00")
    case.simulator.change_invoice(
        row["remote_id"], total_price_incl_tax=format(raised, "f"), total_unpaid=format(raised, "f")
    )
    result = case.push()
    assert outcomes(result) == [DROPPED]
    assert f"total at the source is {raised}" in result.outcomes[0].detail
    assert case.pushes()[row["id"]]["status"] == CANCELLED
    assert case.plan().revived == 0, "not before a sync has the new total"

    case.app.sync_inline(case.app.config.sources[0])
    assert case.plan().revived == 1
    assert outcomes(case.push()) == [REGISTERED]
    push = case.pushes()[row["id"]]
    assert push["status"] == SENT and push["amount"] == row["total_incl_tax"]
    assert case.posts() == 1
