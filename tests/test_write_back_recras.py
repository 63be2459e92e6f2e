"""Write-back to Recras: `POST /api2/facturen/{id}/betalingen` with the marker in `opmerking`,
against the simulator over loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from connectors.recras.config import RecrasSource
from connectors.recras.simulator import CREATE_PAYMENT, READ_PERMISSION, RecrasSimulator
from connectors.simulation import SimulatorServer
from store.pushes import CANCELLED, CONFIRMED, FAILED, PLANNED, SENT
from tests.write_back_case import BOOKED, Case, Remote, outcomes, synced_case
from workers.write_back import REFUSED, REGISTERED, undo

KEY = "recras-key-77c1"
KEY_ENV = "TEST_RECRAS_WRITE_KEY"
TODAY = dt.date.today()


@pytest.fixture
def recras() -> RecrasSimulator:
    return RecrasSimulator(
        token=KEY, invoices=80, seed=4, start_date=TODAY - dt.timedelta(days=200), days=190
    )


def recras_case(
    database_url: str, recras: RecrasSimulator, server: SimulatorServer, **keys: Any
) -> Iterator[Case]:
    source = RecrasSource.model_validate(
        {
            "name": "venue",
            "kind": "recras",
            "base_url": server.base_url,
            "token_env": KEY_ENV,
            "timeout": 5,
            "write_back": "apply",
            "betaalmethode_id": 3,
            **keys,
        }
    )

    def markers(remote_id: str) -> list[tuple[str, str | None]]:
        return [
            (str(p["id"]), p["opmerking"]) for p in recras.invoice(int(remote_id))["betalingen"]
        ]

    def posts() -> int:
        return sum(
            1 for method, path in recras.requests if method == "POST" and "betalingen" in path
        )

    with synced_case(database_url, source, recras, Remote(markers, posts)) as case:
        yield case


@pytest.fixture
def case(
    database_url: str, recras: RecrasSimulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Case]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with SimulatorServer(recras) as server:
        yield from recras_case(database_url, recras, server)


def test_a_bank_payment_is_registered_once_with_its_marker_and_the_next_sync_confirms(
    case: Case,
) -> None:
    rows = case.paid_invoices(2)
    result = case.push()
    assert outcomes(result) == [REGISTERED, REGISTERED] and not result.failed
    assert case.posts() == 2
    for row in rows:
        push = case.pushes()[row["id"]]
        assert push["status"] == SENT
        [landed] = [
            p
            for p in case.simulator.invoice(int(row["remote_id"]))["betalingen"]
            if p["opmerking"] == push["idempotency_key"]
        ]
        assert str(landed["id"]) == push["remote_payment_id"]
        assert Decimal(str(landed["bedrag"])) == row["total_incl_tax"]
        assert landed["betaalmethode_id"] == 3
        assert landed["wanneer"].startswith(BOOKED.isoformat())
    assert case.push().outcomes == []
    case.app.sync_inline(case.app.config.sources[0])
    assert case.plan().confirmed == 2
    assert {p["status"] for p in case.pushes().values()} == {CONFIRMED}
    assert case.posts() == 2


def test_a_lost_answer_is_found_by_its_opmerking_not_sent_again(case: Case) -> None:
    [row] = case.paid_invoices(1)
    case.simulator.fail_after_write = ["500"]
    assert outcomes(case.push()) == [REGISTERED]
    assert case.posts() == 1 and len(case.marked(row)) == 1


def test_a_406_fails_the_push_with_recras_words(
    database_url: str, recras: RecrasSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    with SimulatorServer(recras) as server:
        for case in recras_case(database_url, recras, server, betaalmethode_id=99):
            [row] = case.paid_invoices(1)
            result = case.push()
            assert outcomes(result) == [REFUSED] and result.failed
            push = case.pushes()[row["id"]]
            assert push["status"] == FAILED
            assert "HTTP 406" in push["last_error"]
            assert "betaalmethode_id 99 bestaat niet" in push["last_error"]


def test_a_403_names_the_missing_permission_and_sends_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    recras = RecrasSimulator(
        token=KEY,
        invoices=80,
        seed=4,
        start_date=TODAY - dt.timedelta(days=200),
        days=190,
        permissions=(READ_PERMISSION,),
    )
    with SimulatorServer(recras) as server:
        for case in recras_case(database_url, recras, server):
            case.paid_invoices(1)
            result = case.push()
            assert result.stopped is not None
            assert f"Geen rechten: {CREATE_PAYMENT}" in result.stopped
            assert "lacks this Recras permission" in result.stopped
            assert {p["status"] for p in case.pushes().values()} == {PLANNED}
            assert case.posts() == 1  # the one refused; nothing was recorded
            assert not any(
                p["opmerking"]
                for i in recras.invoice_ids()
                for p in recras.invoice(i)["betalingen"]
            )


def test_a_payment_pushed_by_mistake_is_undone_at_recras(case: Case) -> None:
    [row] = case.paid_invoices(1)
    case.push()
    push = case.store.get(case.pushes()[row["id"]]["id"])
    assert push is not None and push.status == SENT
    with case.app.connector(case.app.config.sources[0]) as connector:
        said = undo(case.store, connector, push, "erin")
    assert "undone at the source by erin" in said
    assert case.marked(row) == []
    assert case.pushes()[row["id"]]["status"] == CANCELLED
    assert case.plan().planned == 0  # never planned again
