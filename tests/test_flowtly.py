"""A Flowtly source end to end: the connector against the simulator over loopback HTTP, into
SQLite and PostgreSQL, through the same engine as every other source."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.flowtly.config import FlowtlySource
from connectors.flowtly.simulator import FlowtlySimulator
from connectors.simulation import SimulatorServer
from tests.mirror_check import mirror_rows
from workers.app import App
from workers.config import AppConfig

TOKEN_ENV = "TEST_FLOWTLY_TOKEN"
PASSWORD_ENV = "TEST_FLOWTLY_PASSWORD"


@pytest.fixture(params=["hydra", "plain"])
def flowtly(request: pytest.FixtureRequest) -> FlowtlySimulator:
    return FlowtlySimulator(invoices=45, seed=8, shape=request.param)


@pytest.fixture
def server(flowtly: FlowtlySimulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(flowtly) as running:
        yield running


def _source(server: SimulatorServer, **changes: Any) -> FlowtlySource:
    values = {
        "name": "studio",
        "kind": "flowtly",
        "base_url": server.base_url,
        "token_env": TOKEN_ENV,
        "timeout": 5,
        "page_size": 20,
        **changes,
    }
    return FlowtlySource.model_validate(values)


def _open(database_url: str, source: FlowtlySource) -> App:
    return App.open(AppConfig(database_url=database_url, sources=(source,), path=Path("t.toml")))


@pytest.fixture
def app(
    database_url: str,
    server: SimulatorServer,
    flowtly: FlowtlySimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[App]:
    monkeypatch.setenv(TOKEN_ENV, flowtly.token)
    opened = _open(database_url, _source(server))
    try:
        yield opened
    finally:
        opened.close()


def assert_mirrors(app: App, flowtly: FlowtlySimulator) -> None:
    rows = mirror_rows(app.engine, "studio")
    live = {remote_id: row for remote_id, row in rows.items() if row["deleted_at"] is None}
    assert set(live) == {str(i) for i in flowtly.invoice_ids()}
    for invoice_id in flowtly.invoice_ids():
        totals, row = flowtly.totals(invoice_id), live[str(invoice_id)]
        assert (row["total_excl_tax"], row["total_tax"], row["total_incl_tax"]) == (
            totals["net"],
            totals["vat"],
            totals["gross"],
        )
        assert (row["total_paid"], row["total_unpaid"]) == (
            totals["paid"],
            totals["gross"] - totals["paid"],
        )
        priced = [line["amount_excl_tax"] for line in row["lines"] if line["amount_excl_tax"]]
        assert sum(priced, Decimal(0)) == totals["net"], "a parent's amount is not counted twice"
        assert len(row["lines"]) == len(flowtly.rows_of(invoice_id))


def _item_requests(flowtly: FlowtlySimulator, since: int) -> list[str]:
    """Requests for one resource (`/invoices/42`), not a collection page."""
    return [path for _m, path in flowtly.requests[since:] if path.split("?")[0][-1:].isdigit()]


def test_initial_sync_mirrors_every_invoice_exactly(app: App, flowtly: FlowtlySimulator) -> None:
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok", result.error
    assert result.new == len(flowtly.invoice_ids()) == 45
    assert_mirrors(app, flowtly)
    assert _item_requests(flowtly, 0) == [], "everything came from the three collections"


def test_an_incremental_cycle_sees_row_changes_and_fetches_nothing_per_invoice(
    app: App, flowtly: FlowtlySimulator
) -> None:
    source = app.config.sources[0]
    app.sync_inline(source)
    idle = app.sync_inline(source)
    assert (idle.status, idle.new, idle.changed, idle.unchanged) == ("ok", 0, 0, 45)

    ids = flowtly.invoice_ids()
    flowtly.pay(next(i for i in ids if flowtly.totals(i)["paid"] == 0), Decimal("25.00"))
    row = flowtly.rows_of(ids[1])[0]
    flowtly.edit_row(row["id"], product="Consultancy (senior)")  # no updatedAt moves
    before = len(flowtly.requests)
    result = app.sync_inline(source)

    assert (result.status, result.changed) == ("ok", 2)
    assert _item_requests(flowtly, before) == []
    assert_mirrors(app, flowtly)
    lines = mirror_rows(app.engine, "studio")[str(ids[1])]["lines"]
    assert lines[0]["description"].startswith("Consultancy (senior)")


def test_removed_and_soft_deleted_invoices_are_marked_deleted(
    app: App, flowtly: FlowtlySimulator
) -> None:
    source = app.config.sources[0]
    app.sync_inline(source)
    removed, soft = flowtly.invoice_ids()[3], flowtly.invoice_ids()[4]
    flowtly.delete_invoice(removed)
    flowtly.soft_delete(soft)

    result = app.sync_inline(source)

    assert (result.status, result.deleted) == ("ok", 2)
    rows = mirror_rows(app.engine, "studio")
    assert rows[str(removed)]["deleted_at"] is not None
    assert rows[str(soft)]["deleted_at"] is not None


def test_nested_rows_are_flattened_under_their_parent(app: App, flowtly: FlowtlySimulator) -> None:
    app.sync_inline(app.config.sources[0])
    nested = next(
        i
        for i in flowtly.invoice_ids()
        if any(r["invoiceChildrenRows"] for r in flowtly.rows_of(i))
    )
    served = {str(r["id"]): r for r in flowtly.rows_of(nested)}
    lines = mirror_rows(app.engine, "studio")[str(nested)]["lines"]
    parent_at = next(
        i for i, line in enumerate(lines) if served[line["remote_id"]]["invoiceChildrenRows"]
    )
    parent = served[lines[parent_at]["remote_id"]]
    children = [
        line["remote_id"]
        for line in lines[parent_at + 1 : parent_at + 1 + len(parent["invoiceChildrenRows"])]
    ]
    assert children == [c.rsplit("/", 1)[-1] for c in parent["invoiceChildrenRows"]]
    assert lines[parent_at]["amount_excl_tax"] is None
    assert [line["position"] for line in lines] == list(range(1, len(lines) + 1))


def test_a_login_token_that_expires_mid_sync_is_renewed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flowtly = FlowtlySimulator(invoices=60, seed=3, token_ttl=0.6)
    monkeypatch.setenv(PASSWORD_ENV, flowtly.password)
    with SimulatorServer(flowtly) as server:
        source = _source(
            server, auth="login", username=flowtly.username, token_env=None,
            password_env=PASSWORD_ENV, page_size=10,
        )  # fmt: skip
        app = _open(database_url, source)
        try:
            # the rows' pages are slow: the JWT expires while the listing pages through them
            flowtly.add_fault("slow", endpoint="rows", delay=0.4, times=3)
            result = app.sync_inline(source)
            stored = str(mirror_rows(app.engine, "studio"))
        finally:
            app.close()
    assert (result.status, result.new) == ("ok", 60), result.error
    assert flowtly.logins >= 2, "logged in again when the token expired"
    assert flowtly.password not in stored


@pytest.mark.parametrize(
    ("fault", "endpoint"), [("429", "invoices"), ("500", "rows"), ("truncate", "transactions")]
)
def test_faults_are_retried_and_the_mirror_is_whole(
    app: App, flowtly: FlowtlySimulator, fault: str, endpoint: str
) -> None:
    flowtly.add_fault(fault, endpoint=endpoint, retry_after="0" if fault == "429" else None)
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok", result.error
    assert_mirrors(app, flowtly)


def test_a_bad_row_is_quarantined_and_the_rest_lands(app: App, flowtly: FlowtlySimulator) -> None:
    bad = flowtly.invoice_ids()[6]
    row = flowtly.rows_of(bad)[0]
    flowtly.spoil_row(row["id"], netPrice="veel")
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok" and result.quarantined == 1
    assert str(bad) not in mirror_rows(app.engine, "studio")


def test_the_daemon_carries_the_snapshots_in_its_batch_messages(
    app: App, flowtly: FlowtlySimulator
) -> None:
    from tests.daemon_queue import Queue, daemon_of

    queue = Queue()
    with daemon_of(app) as daemon:
        outcome = daemon.cycle("studio", False, queue.batch, queue.cycle)
        assert queue.batches and all(batch[7] for batch in queue.batches)
        queue.drain(daemon)
        assert daemon.app.runs.get(outcome.run_id)["status"] == "ok"  # type: ignore[arg-type]
        assert_mirrors(app, flowtly)
        assert _item_requests(flowtly, 0) == []
