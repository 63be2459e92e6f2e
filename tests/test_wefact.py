"""A WeFact source end to end: the connector against the simulator over loopback HTTP, into
SQLite and PostgreSQL, through the same engine as every other source."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ListingHistory
from connectors.errors import PermanentError
from connectors.simulation import SimulatorServer
from connectors.wefact.config import WeFactSource
from connectors.wefact.connector import CONCURRENCY, WeFactClient, WeFactConnector, _page
from connectors.wefact.normalize import wefact_amount
from connectors.wefact.simulator import WeFactSimulator
from tests.mirror_check import mirror_rows
from workers.app import App
from workers.config import AppConfig

KEY = "wefact-key-93c1"
KEY_ENV = "TEST_WEFACT_KEY"


@pytest.fixture
def wefact() -> WeFactSimulator:
    return WeFactSimulator(token=KEY, invoices=40, seed=6)


@pytest.fixture
def server(wefact: WeFactSimulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(wefact) as running:
        yield running


def _source(server: SimulatorServer, **changes: Any) -> WeFactSource:
    values = {
        "name": "office",
        "kind": "wefact",
        "base_url": server.base_url + "/",
        "token_env": KEY_ENV,
        "timeout": 5,
        **changes,
    }
    return WeFactSource.model_validate(values)


@pytest.fixture
def app(
    database_url: str, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[App]:
    monkeypatch.setenv(KEY_ENV, KEY)
    config = AppConfig(database_url=database_url, sources=(_source(server),), path=Path("t.toml"))
    opened = App.open(config)
    try:
        yield opened
    finally:
        opened.close()


def assert_mirrors(app: App, wefact: WeFactSimulator) -> None:
    """Every invoice against the simulator's own exact amounts, not its spelled answers."""
    rows = mirror_rows(app.engine, "office")
    live = {remote_id: row for remote_id, row in rows.items() if row["deleted_at"] is None}
    assert set(live) == {str(i) for i in wefact.identifiers()}
    for identifier in wefact.identifiers():
        truth, row = wefact.truth(identifier), live[str(identifier)]
        assert (row["total_excl_tax"], row["total_tax"], row["total_incl_tax"]) == (
            truth["excl"],
            truth["tax"],
            truth["incl"],
        )
        assert row["total_paid"] == truth["paid"]
        assert row["total_unpaid"] == truth["incl"] - truth["paid"]
        assert row["state_raw"] == str(truth["status"])
        assert row["remote_version"].split(" ")[:2] == truth["modified"].split(" ")
        assert len(row["lines"]) == truth["lines"]
        assert row["credit_note"] is (truth["status"] == 8)
        payments = row["payments"]
        assert [p["amount"] for p in payments] == ([truth["paid"]] if truth["paid"] else [])


def _calls(wefact: WeFactSimulator, since: int) -> Counter[str]:
    return Counter(action for _controller, action in wefact.calls[since:])


def test_initial_sync_mirrors_every_invoice_exactly(app: App, wefact: WeFactSimulator) -> None:
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok", result.error
    assert result.new == 40
    assert_mirrors(app, wefact)
    assert _calls(wefact, 0) == Counter({"list": 1, "show": 40})


def test_an_incremental_cycle_shows_only_what_changed(app: App, wefact: WeFactSimulator) -> None:
    source = app.config.sources[0]
    app.sync_inline(source)
    ids = wefact.identifiers()
    open_one = next(i for i in ids if wefact.truth(i)["status"] == 2)
    before = len(wefact.calls)
    idle = app.sync_inline(source)
    assert (idle.status, idle.listed, idle.new, idle.changed) == ("ok", 0, 0, 0)
    assert _calls(wefact, before) == Counter({"list": 1}), "nothing shown when nothing changed"

    wefact.pay(open_one, Decimal("10.00"))
    wefact.add_line(next(i for i in ids if i != open_one))
    before = len(wefact.calls)
    result = app.sync_inline(source)

    assert (result.status, result.changed) == ("ok", 2)
    assert _calls(wefact, before) == Counter({"list": 1, "show": 2})
    assert_mirrors(app, wefact)


def test_a_modified_that_went_back_an_hour_is_still_seen(app: App, wefact: WeFactSimulator) -> None:
    """The autumn clock change: local `Modified` repeats an hour, so a later edit can carry an
    earlier stamp. The changes-only listing looks back far enough, and a different version is
    a change."""
    source = app.config.sources[0]
    app.sync_inline(source)
    target = wefact.identifiers()[2]
    stored = mirror_rows(app.engine, "office")[str(target)]["remote_version"]
    wefact.set_clock(lambda: dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    wefact.add_line(target)
    assert wefact.truth(target)["modified"] != stored

    result = app.sync_inline(source)

    assert (result.status, result.changed) == ("ok", 1)
    assert_mirrors(app, wefact)


def test_the_cursor_covers_the_repeated_hour_of_the_autumn_clock_change() -> None:
    connector = WeFactConnector.__new__(WeFactConnector)
    connector.full_listing_every = dt.timedelta(days=1)
    connector._now = lambda: dt.datetime(2031, 10, 26, 1, 15, tzinfo=dt.UTC)
    # the last run started at 02:35 CEST (00:35 UTC); an edit at 02:10 CET (01:10 UTC) is
    # stamped "02:10:00", earlier in local text than the run that came before it
    last = dt.datetime(2031, 10, 26, 0, 35, tzinfo=dt.UTC)
    since = connector.changed_since(ListingHistory(last_success=last, last_complete=last))
    assert since is not None and since <= "2031-10-26 02:10:00"
    due = connector.changed_since(
        ListingHistory(last_success=last, last_complete=last - dt.timedelta(days=2))
    )
    assert due is None, "a complete listing is due"


def test_deletions_are_seen_by_the_complete_listing_only(
    app: App, wefact: WeFactSimulator, server: SimulatorServer
) -> None:
    app.sync_inline(app.config.sources[0])
    gone = wefact.identifiers()[5]
    wefact.delete_invoice(gone)

    partial = app.sync_inline(app.config.sources[0])
    assert (partial.status, partial.deleted) == ("ok", 0), "a changes-only listing deletes nothing"

    time.sleep(1.1)
    due = _source(server, full_listing_every="1s")
    complete = app.sync_inline(due)

    assert (complete.status, complete.listed, complete.deleted) == ("ok", 39, 1)
    assert mirror_rows(app.engine, "office")[str(gone)]["deleted_at"] is not None
    assert _calls(wefact, 0)["show"] == 40, "the complete listing showed nothing again"


def test_credit_invoices_are_marked_and_negative(app: App, wefact: WeFactSimulator) -> None:
    original = next(i for i in wefact.identifiers() if wefact.truth(i)["status"] == 4)
    credit = wefact.credit(original)
    app.sync_inline(app.config.sources[0])
    rows = mirror_rows(app.engine, "office")
    assert rows[str(original)]["state"] == "cancelled"
    note = rows[str(credit.identifier)]
    assert note["credit_note"] is True and note["total_incl_tax"] < 0
    assert note["state"] == "open" and note["state_raw"] == "8"
    assert_mirrors(app, wefact)


def test_payment_ids_stay_stable_as_amount_paid_grows(app: App, wefact: WeFactSimulator) -> None:
    source = app.config.sources[0]
    target = next(i for i in wefact.identifiers() if wefact.truth(i)["status"] == 2)
    wefact.pay(target, Decimal("5.00"))
    app.sync_inline(source)
    first = mirror_rows(app.engine, "office")[str(target)]["payments"]
    wefact.pay(target)
    app.sync_inline(source)
    app.sync_inline(source, full=True)
    after = mirror_rows(app.engine, "office")[str(target)]["payments"]

    assert [p["remote_id"] for p in first] == [p["remote_id"] for p in after] == [f"{target}:paid"]
    assert first[0]["id"] == after[0]["id"], "the payment keeps its local id"
    assert after[0]["amount"] == wefact.truth(target)["incl"]
    assert mirror_rows(app.engine, "office")[str(target)]["state"] == "paid"


@pytest.mark.parametrize(("fault", "endpoint"), [("429", "list"), ("500", "show"), ("truncate", "list"), ("truncate", "show")])  # fmt: skip
def test_faults_are_retried_and_the_mirror_is_whole(
    app: App, wefact: WeFactSimulator, fault: str, endpoint: str
) -> None:
    wefact.add_fault(fault, endpoint=endpoint, retry_after="0" if fault == "429" else None)
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok", result.error
    assert_mirrors(app, wefact)


def test_a_bad_amount_is_quarantined_by_name_and_the_rest_lands(
    app: App, wefact: WeFactSimulator
) -> None:
    bad = wefact.identifiers()[7]
    wefact.spoil(bad, AmountIncl="12,34,56")
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "ok" and result.quarantined == 1
    assert str(bad) not in mirror_rows(app.engine, "office")
    assert app.runs.status(["office"])[0].quarantined == 1


def test_a_wrong_key_stops_the_source_at_once(
    app: App, wefact: WeFactSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "not-the-key")
    result = app.sync_inline(app.config.sources[0])
    assert result.status == "failed"
    assert result.error is not None and "Invalid API key" in result.error
    assert "not-the-key" not in result.error
    assert len(wefact.calls) == 1, "a refused key is not retried"


def test_a_refused_parameter_is_a_permanent_error_not_retried(
    wefact: WeFactSimulator, server: SimulatorServer
) -> None:
    with WeFactConnector.from_config(_source(server), KEY) as connector:
        client = connector.client
        assert isinstance(client, WeFactClient)
        with pytest.raises(PermanentError, match="'limit'"):
            client.send("invoice", "list", _page, limit="veel")
    assert len(wefact.calls) == 1
    assert CONCURRENCY >= 1


@pytest.mark.parametrize(
    ("spelled", "amount"),
    [
        ("329.64", "329.64"),
        ("329,64", "329.64"),
        ("1.329,64", "1329.64"),
        ("1,329.64", "1329.64"),
        ("-1.234.567,50", "-1234567.50"),
        ("1.234.567", "1234567"),
        ("0.19", "0.19"),
        ("12", "12"),
        (Decimal("398.86"), "398.86"),
        (7, "7"),
    ],
)
def test_amounts_are_read_exactly_in_every_spelling(spelled: object, amount: str) -> None:
    assert wefact_amount(spelled, "AmountIncl") == Decimal(amount)
    assert str(wefact_amount(spelled, "AmountIncl")) == amount


@pytest.mark.parametrize("spelled", ["12,34,56", "1.23.4", "", "veel", True, None, "1e5"])
def test_an_amount_that_is_not_one_is_refused_by_name(spelled: object) -> None:
    with pytest.raises(ValueError, match="AmountIncl"):
        wefact_amount(spelled, "AmountIncl")


def test_the_daemon_lists_changes_between_complete_listings(
    app: App, wefact: WeFactSimulator
) -> None:
    from tests.daemon_queue import Queue, daemon_of

    queue = Queue()
    with daemon_of(app) as daemon:
        first = daemon.cycle("office", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        assert daemon.app.runs.get(first.run_id)["complete_listing"] is True  # type: ignore[arg-type]
        assert_mirrors(app, wefact)

        wefact.add_line(wefact.identifiers()[3])
        wefact.delete_invoice(wefact.identifiers()[4])
        before = len(wefact.calls)
        second = daemon.cycle("office", False, queue.batch, queue.cycle)
        queue.drain(daemon)
        run = daemon.app.runs.get(second.run_id)  # type: ignore[arg-type]
        assert (run["status"], run["complete_listing"], run["changed"], run["deleted"]) == (
            "ok",
            False,
            1,
            0,
        )
        assert _calls(wefact, before) == Counter({"list": 1, "show": 1})
