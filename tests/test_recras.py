"""A Recras source end to end: the connector against the simulator over loopback HTTP, into
SQLite and PostgreSQL, through the same engine as Moneybird."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.recras.config import RecrasSource
from connectors.recras.connector import CONCURRENCY, SLICE_DAYS, RecrasConnector
from connectors.recras.simulator import RecrasSimulator
from connectors.simulation import SimulatorServer
from tests.mirror_check import mirror_rows
from workers.app import App
from workers.config import AppConfig
from workers.engine import run_cycle

KEY = "recras-key-5d1e0a"
KEY_ENV = "TEST_RECRAS_KEY"
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def recras() -> RecrasSimulator:
    return RecrasSimulator(
        token=KEY, invoices=60, seed=11, start_date=TODAY - dt.timedelta(days=380), days=370
    )


@pytest.fixture
def server(recras: RecrasSimulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(recras) as running:
        yield running


def _source(server: SimulatorServer, **changes: Any) -> RecrasSource:
    values: dict[str, Any] = {
        "name": "venue",
        "kind": "recras",
        "base_url": server.base_url,
        "token_env": KEY_ENV,
        "timeout": 5,
        **changes,
    }
    return RecrasSource.model_validate(values)


@pytest.fixture
def app(
    database_url: str, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[App]:
    monkeypatch.setenv(KEY_ENV, KEY)
    config = AppConfig(
        database_url=database_url, sources=(_source(server),), path=Path("test.toml")
    )
    opened = App.open(config)
    try:
        yield opened
    finally:
        opened.close()


def _source_of(app: App) -> RecrasSource:
    source = app.config.sources[0]
    assert isinstance(source, RecrasSource)
    return source


def _money(value: Any) -> Decimal:
    return Decimal(str(value))


def assert_mirrors(app: App, recras: RecrasSimulator) -> None:
    """Every invoice as the simulator holds it, read independently of the connector."""
    rows = mirror_rows(app.engine, "venue")
    live = {remote_id: row for remote_id, row in rows.items() if row["deleted_at"] is None}
    assert set(live) == {str(i) for i in recras.invoice_ids()}
    for invoice_id in recras.invoice_ids():
        invoice = recras.invoice(invoice_id)
        row = live[str(invoice_id)]
        regels, betalingen = invoice["regels"], invoice["betalingen"]
        incl = sum((_money(r["totaal_inc_btw"]) for r in regels), Decimal(0))
        excl = sum((_money(r["totaal_exc_btw"]) for r in regels), Decimal(0))
        paid = sum((_money(p["bedrag"]) for p in betalingen), Decimal(0))
        assert row["state_raw"] == invoice["status"]
        assert row["number"] == invoice["factuur_nummer"]
        assert row["customer_name"] == invoice["Klant"]["naam"]
        assert row["invoice_date"] == dt.date.fromisoformat(invoice["datum"])
        assert row["due_date"] == row["invoice_date"] + dt.timedelta(
            days=invoice["betalingstermijn"]
        )
        assert (row["total_incl_tax"], row["total_excl_tax"]) == (incl, excl)
        assert (row["total_paid"], row["total_unpaid"]) == (paid, incl - paid)
        assert row["currency"] == "EUR"
        assert [line["remote_id"] for line in row["lines"]] == [str(r["id"]) for r in regels]
        assert sorted(p["remote_id"] for p in row["payments"]) == sorted(
            str(p["id"]) for p in betalingen
        )
        stored = json.loads(row["raw"], parse_float=Decimal)
        assert stored["factuur"]["id"] == invoice_id and "betalingen" in stored


def _invoice_reads(recras: RecrasSimulator, since: int) -> Counter[str]:
    """Requests since position `since`, by kind: listing, invoice, payments."""
    kinds: Counter[str] = Counter()
    for _method, path in recras.requests[since:]:
        if path.endswith("/betalingen"):
            kinds["payments"] += 1
        elif path.startswith("/api2/facturen/"):
            kinds["invoice"] += 1
        else:
            kinds["listing"] += 1
    return kinds


def test_initial_sync_mirrors_every_invoice_exactly(app: App, recras: RecrasSimulator) -> None:
    result = app.sync_inline(app.config.sources[0])

    assert result.status == "ok", result.error
    assert result.new == len(recras.invoice_ids()) == 60
    assert_mirrors(app, recras)
    reads = _invoice_reads(recras, 0)
    assert reads["invoice"] == 0, "the listing handed every invoice over"
    assert reads["payments"] == 60, "one request per new invoice: its payments"
    assert reads["listing"] == 1 + len(RecrasConnector.from_config(_source_of(app), KEY).slices())
    assert (400 + 366) // SLICE_DAYS <= reads["listing"] - 1 <= (400 + 366) // SLICE_DAYS + 1


def test_an_idle_cycle_reads_only_what_may_have_changed(app: App, recras: RecrasSimulator) -> None:
    source = app.config.sources[0]
    app.sync_inline(source)
    unsettled = sum(
        recras.invoice(i)["status"] in ("verzonden", "deels_betaald") for i in recras.invoice_ids()
    )
    assert unsettled, "the seed leaves some invoices unpaid"
    before = len(recras.requests)

    idle = app.sync_inline(source)

    reads = _invoice_reads(recras, before)
    assert idle.status == "ok" and (idle.new, idle.changed, idle.deleted) == (0, 0, 0)
    assert (reads["invoice"], reads["payments"]) == (0, unsettled), (
        "nothing is read for an unchanged paid or concept invoice; unpaid ones' payments are"
    )
    synced = {r: row["synced_at"] for r, row in mirror_rows(app.engine, "venue").items()}
    app.sync_inline(source)
    again = {r: row["synced_at"] for r, row in mirror_rows(app.engine, "venue").items()}
    assert synced == again, "an unpaid invoice whose payments did not change is not rewritten"


def test_changes_payments_and_deletions_reach_the_mirror(app: App, recras: RecrasSimulator) -> None:
    source = app.config.sources[0]
    app.sync_inline(source)
    ids = recras.invoice_ids()
    open_ones = [i for i in ids if recras.invoice(i)["status"] == "verzonden"]
    paid_ones = [i for i in ids if recras.invoice(i)["status"] == "betaald"]
    recras.pay(open_ones[0], Decimal("10.10"))
    recras.add_line(paid_ones[0])
    recras.delete_invoice(paid_ones[1])
    created = recras.add_invoice(datum=TODAY - dt.timedelta(days=3), lines=2)
    empty = recras.add_invoice(datum=TODAY, lines=0, sent=False)  # a concept without lines yet

    result = app.sync_inline(source)

    assert result.status == "ok", result.error
    assert (result.new, result.changed, result.deleted) == (2, 2, 1)
    assert_mirrors(app, recras)
    rows = mirror_rows(app.engine, "venue")
    assert rows[str(paid_ones[1])]["deleted_at"] is not None
    assert rows[str(open_ones[0])]["state"] == "partially_paid"
    assert rows[str(paid_ones[0])]["state"] == "partially_paid"
    assert rows[str(created.id)]["state"] in ("open", "late")
    assert (rows[str(empty.id)]["state"], rows[str(empty.id)]["total_incl_tax"]) == ("draft", 0)


def test_an_invoice_that_leaves_the_window_is_not_deleted(
    app: App, recras: RecrasSimulator, server: SimulatorServer
) -> None:
    token = KEY
    source = _source(server, window=400)
    with RecrasConnector.from_config(source, token) as connector:
        run_cycle(connector, app.mirror, app.runs)
    oldest = min(recras.invoice_ids(), key=lambda i: recras.invoice(i)["datum"])
    oldest_date = dt.date.fromisoformat(recras.invoice(oldest)["datum"])
    recras.delete_invoice(max(recras.invoice_ids()))  # and one really goes, inside the window

    later = RecrasConnector.from_config(source, token)
    later._today = oldest_date + dt.timedelta(days=401)  # the window has moved past `oldest`
    with later:
        result = run_cycle(later, app.mirror, app.runs)

    assert result.status == "ok" and result.deleted == 1
    rows = mirror_rows(app.engine, "venue")
    assert rows[str(oldest)]["deleted_at"] is None, "left the window: kept, not deleted"
    assert rows[str(max(rows, key=int))]["deleted_at"] is not None


def test_an_invoice_dated_back_out_of_the_window_is_fetched_not_deleted(
    app: App, recras: RecrasSimulator, server: SimulatorServer
) -> None:
    """The listing lacks it as it lacks a deleted one; asking for it tells them apart."""
    source = _source(server, window=30)
    with RecrasConnector.from_config(source, KEY) as connector:
        run_cycle(connector, app.mirror, app.runs)
        assert isinstance(connector, RecrasConnector)
        first_day = connector.dates()[0]
    inside = sorted(
        i
        for i in recras.invoice_ids()
        if dt.date.fromisoformat(recras.invoice(i)["datum"]) > first_day
    )
    moved, deleted = inside[0], inside[1]
    recras.move_invoice(moved, first_day - dt.timedelta(days=45))
    recras.delete_invoice(deleted)
    requests = Counter(path for _, path in recras.requests)

    with RecrasConnector.from_config(source, KEY) as connector:
        result = run_cycle(connector, app.mirror, app.runs)

    assert result.status == "ok", result.error
    assert (result.deleted, result.changed) == (1, 1)
    rows = mirror_rows(app.engine, "venue")
    assert rows[str(moved)]["deleted_at"] is None, "moved out of the window: kept"
    assert rows[str(moved)]["invoice_date"] == first_day - dt.timedelta(days=45)
    assert rows[str(deleted)]["deleted_at"] is not None
    asked = Counter(path for _, path in recras.requests) - requests
    assert asked[f"/api2/facturen/{deleted}"] == 1, "each absence is asked about once"

    with RecrasConnector.from_config(source, KEY) as connector:
        again = run_cycle(connector, app.mirror, app.runs)
    assert (again.deleted, again.changed, again.new) == (0, 0, 0), "dated before it: not judged"


@pytest.mark.parametrize(
    ("fault", "endpoint"),
    [("429", "lines"), ("500", "invoices"), ("truncate", "payments"), ("drop", "lines")],
)
def test_faults_are_retried_and_the_mirror_is_whole(
    app: App, recras: RecrasSimulator, fault: str, endpoint: str
) -> None:
    recras.add_fault(fault, endpoint=endpoint, retry_after="0" if fault == "429" else None)
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok", result.error
    assert_mirrors(app, recras)


def test_a_bad_record_is_quarantined_and_the_rest_lands(app: App, recras: RecrasSimulator) -> None:
    bad = recras.invoice_ids()[4]
    recras.set_line(bad, 0, totaal_inc_btw="veel")

    result = app.sync_inline(app.config.sources[0])

    assert result.status == "ok" and result.quarantined == 1
    rows = mirror_rows(app.engine, "venue")
    assert str(bad) not in rows and len(rows) == 59
    status = app.runs.status(["venue"])[0]
    assert status.quarantined == 1


def test_a_wrong_key_fails_the_source_once_without_a_retry_storm(
    app: App, recras: RecrasSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "not-the-key")
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "failed"
    assert result.error is not None and "HTTP 401" in result.error
    assert "not-the-key" not in result.error
    assert len(recras.requests) <= CONCURRENCY + 1, "a refused key is not retried"


def test_a_missing_permission_is_named(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recras = RecrasSimulator(token=KEY, invoices=3, permissions=("createFactuurBetaling",))
    monkeypatch.setenv(KEY_ENV, KEY)
    with SimulatorServer(recras) as server:
        config = AppConfig(
            database_url=database_url, sources=(_source(server),), path=Path("t.toml")
        )
        app = App.open(config)
        try:
            result = app.sync_inline(config.sources[0])
        finally:
            app.close()
    assert result.status == "failed"
    assert result.error is not None and "Geen rechten: viewFactuur" in result.error


def test_the_daemon_carries_the_listed_records_in_its_batch_messages(
    app: App, recras: RecrasSimulator
) -> None:
    from tests.daemon_queue import Queue, daemon_of

    queue = Queue()
    with daemon_of(app) as daemon:
        outcome = daemon.cycle("venue", False, queue.batch, queue.cycle)
        assert outcome.batches == 1 and queue.batches[0][7], "the lines travel in the message"
        first = list(queue.batches[0])
        first[7] = None  # as if redelivered by an older worker: read with embed=regels
        queue.batches[0] = tuple(first)  # type: ignore[assignment]
        queue.drain(daemon)
        assert daemon.app.runs.get(outcome.run_id)["status"] == "ok"  # type: ignore[arg-type]
        assert_mirrors(app, recras)
        assert any("embed=regels%2CKlant" in path for _m, path in recras.requests)

        recras.pay(
            next(i for i in recras.invoice_ids() if recras.invoice(i)["status"] == "verzonden")
        )
        before = len(recras.requests)
        again = daemon.cycle("venue", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        assert daemon.app.runs.get(again.run_id)["status"] == "ok"  # type: ignore[arg-type]
        assert_mirrors(app, recras)
        reads = [path for _method, path in recras.requests[before:]]
        assert any("embed=Klant" in path for path in reads)
        assert not any("embed=regels" in path for path in reads), "listed lines are not read again"


def test_the_daemon_fetches_an_invoice_dated_out_of_the_window_instead_of_deleting_it(
    app: App, recras: RecrasSimulator
) -> None:
    from tests.daemon_queue import Queue, daemon_of

    with RecrasConnector.from_config(_source_of(app), KEY) as connector:
        assert isinstance(connector, RecrasConnector)
        first_day = connector.dates()[0]
    queue = Queue()
    with daemon_of(app) as daemon:
        daemon.cycle("venue", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        inside = sorted(
            i
            for i in recras.invoice_ids()
            if dt.date.fromisoformat(recras.invoice(i)["datum"]) > first_day
        )
        recras.move_invoice(inside[0], first_day - dt.timedelta(days=3))
        recras.delete_invoice(inside[1])

        outcome = daemon.cycle("venue", False, queue.batch, queue.cycle)
        sent = {
            remote_id: version
            for *_, ids, versions, _full, _stream, _listed in queue.batches
            for remote_id, version in zip(ids, versions, strict=True)
        }
        assert sent.get(str(inside[0]), "absent") is None, "sent without a version: fetched"
        queue.drain(daemon)

    assert outcome.run_id is not None
    run = daemon.app.runs.get(outcome.run_id)
    assert run is not None and (run["status"], run["deleted"], run["changed"]) == ("ok", 1, 1)
    rows = mirror_rows(app.engine, "venue")
    assert rows[str(inside[0])]["deleted_at"] is None
    assert rows[str(inside[0])]["invoice_date"] == first_day - dt.timedelta(days=3)
    assert rows[str(inside[1])]["deleted_at"] is not None


def test_a_daemon_run_counts_a_paid_invoice_as_changed_like_an_inline_cycle(
    app: App, recras: RecrasSimulator
) -> None:
    """An unpaid or partly paid invoice is listed without a version (its payments are read every
    cycle): unchanged until its batch writes it, changed once it does."""
    from tests.daemon_queue import Queue, daemon_of

    queue = Queue()
    with daemon_of(app) as daemon:
        daemon.cycle("venue", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        open_ones = [i for i in recras.invoice_ids() if recras.invoice(i)["status"] == "verzonden"]
        recras.pay(open_ones[0], Decimal("10.10"))  # partly paid: still listed without a version
        outcome = daemon.cycle("venue", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        assert outcome.run_id is not None
        run = daemon.app.runs.get(outcome.run_id)
        queue.drain(daemon)

    recras.pay(open_ones[1], Decimal("10.10"))
    inline = app.sync_inline(_source_of(app))

    assert run is not None and run["status"] == "ok"
    assert (run["changed"], run["unchanged"]) == (1, run["listed"] - 1)
    assert (inline.changed, inline.unchanged) == (1, inline.listed - 1)
