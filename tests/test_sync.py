"""End to end: the engine against the simulator over real HTTP, into SQLite and PostgreSQL."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, cast

import pytest
import sqlalchemy as sa

import store.mirror
import workers.fetch_list as fetch_list
from connectors.moneybird.simulator import MoneybirdSimulator
from connectors.source import SourceConfig
from connectors.versions import behind
from store.schema import invoices, sync_errors, sync_runs
from tests.comparisons import count_comparisons
from tests.mirror_check import analyze_counts, assert_mirror_equals, mirror_rows
from workers.app import App


def _source(app: App) -> SourceConfig:
    return app.config.sources[0]


def _posts(simulator: MoneybirdSimulator) -> list[int]:
    return [n for method, _path, n in simulator.requests if method == "POST"]


def test_initial_sync_equals_the_simulator_field_by_field(
    app: App, simulator: MoneybirdSimulator
) -> None:
    result = app.sync_inline(_source(app))

    assert result.status == "ok", result.error
    assert (result.listed, result.new, result.changed, result.deleted) == (120, 120, 0, 0)
    assert result.requests == 1 + math.ceil(120 / 100) == len(simulator.requests)
    assert all(n <= 100 for n in _posts(simulator))
    assert_mirror_equals(app.engine, simulator)


def test_a_first_sync_whose_ids_went_to_the_fetch_lists_file_is_as_whole(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_list, "CHUNK", 7)  # 120 ids: 17 chunks through the file

    result = app.sync_inline(_source(app))

    assert (result.status, result.new) == ("ok", 120), result.error
    assert all(n == 100 or n == 20 for n in _posts(simulator))
    assert_mirror_equals(app.engine, simulator)


def test_incremental_sync_fetches_only_changed_ids(app: App, simulator: MoneybirdSimulator) -> None:
    app.sync_inline(_source(app))
    changed = simulator.ids()[:7]
    for remote_id in changed:
        simulator.change_invoice(remote_id, reference="changed")
    created = simulator.create_invoice()
    simulator.requests.clear()

    result = app.sync_inline(_source(app))

    assert (result.new, result.changed, result.unchanged) == (1, 7, 113)
    assert result.requests == 2 == len(simulator.requests)
    assert _posts(simulator) == [8]
    assert_mirror_equals(app.engine, simulator)
    assert str(created["id"]) in mirror_rows(app.engine)


def test_idle_cycle_is_one_request_and_writes_nothing(
    app: App, simulator: MoneybirdSimulator
) -> None:
    app.sync_inline(_source(app))
    before = mirror_rows(app.engine)
    simulator.requests.clear()

    result = app.sync_inline(_source(app))

    assert (result.new, result.changed, result.unchanged, result.requests) == (0, 0, 120, 1)
    assert mirror_rows(app.engine) == before


def test_many_changes_use_batches_of_100(app: App, simulator: MoneybirdSimulator) -> None:
    app.sync_inline(_source(app))
    for remote_id in simulator.ids()[:101]:
        simulator.change_invoice(remote_id, reference="bulk edit")
    simulator.requests.clear()

    result = app.sync_inline(_source(app))

    assert result.changed == 101
    assert result.requests == 1 + math.ceil(101 / 100)
    assert sorted(_posts(simulator)) == [1, 100]


def test_deleted_invoices_are_marked_and_come_back(app: App, simulator: MoneybirdSimulator) -> None:
    app.sync_inline(_source(app))
    gone = simulator.ids()[:3]
    for remote_id in gone:
        simulator.delete_invoice(remote_id)

    result = app.sync_inline(_source(app))

    assert result.deleted == 3
    rows = mirror_rows(app.engine)
    assert len(rows) == 120, "deleted invoices keep their row and history"
    for remote_id in gone:
        assert rows[remote_id]["deleted_at"] is not None
        assert rows[remote_id]["lines"], "lines of a deleted invoice stay"
    assert app.runs.status(["acme"])[0].deleted == 3

    simulator.restore_invoice(gone[0])
    simulator.restore_invoice(gone[1])
    simulator.change_invoice(gone[1], reference="edited while deleted")
    simulator.requests.clear()
    result = app.sync_inline(_source(app))

    assert result.restored == 2
    assert _posts(simulator) == [1], "an unchanged reappearance needs no fetch"
    rows = mirror_rows(app.engine)
    assert rows[gone[0]]["deleted_at"] is None and rows[gone[1]]["deleted_at"] is None
    assert rows[gone[2]]["deleted_at"] is not None
    assert_mirror_equals(app.engine, simulator)


def test_full_resync_refetches_everything(app: App, simulator: MoneybirdSimulator) -> None:
    app.sync_inline(_source(app))
    simulator.requests.clear()

    result = app.sync_inline(_source(app), full=True)

    assert result.status == "ok"
    assert result.requests == 1 + math.ceil(120 / 100)
    assert sum(_posts(simulator)) == 120
    assert (result.new, result.changed, result.unchanged) == (0, 0, 120)
    assert_mirror_equals(app.engine, simulator)


def test_a_malformed_invoice_is_quarantined_while_its_batch_lands(
    app: App, simulator: MoneybirdSimulator
) -> None:
    bad_id = simulator.ids()[5]
    simulator.add_fault("invalid", endpoint="fetch", remote_id=bad_id)

    result = app.sync_inline(_source(app))

    assert result.status == "ok"
    assert result.quarantined == 1
    rows = mirror_rows(app.engine)
    assert bad_id not in rows and len(rows) == 119
    with app.engine.connect() as connection:
        error = connection.execute(sa.select(sync_errors)).one()
    assert error.remote_id == bad_id and error.source == "acme"
    assert error.remote_version == str(simulator.invoice(bad_id)["version"])
    assert "total_price_incl_tax" in error.error or "due_date" in error.error
    assert error.raw and bad_id in error.raw
    assert app.runs.status(["acme"])[0].quarantined == 1

    simulator.requests.clear()
    result = app.sync_inline(_source(app))  # the fault is spent: the record now validates

    assert result.quarantined == 0
    assert _posts(simulator) == [1], "a quarantined id is retried next cycle"
    with app.engine.connect() as connection:
        assert connection.execute(sa.select(sync_errors.c.resolved_at)).scalar_one() is not None
    assert app.runs.status(["acme"])[0].quarantined == 0
    assert_mirror_equals(app.engine, simulator)


def test_every_money_spelling_the_api_allows_is_exact(
    app: App, simulator: MoneybirdSimulator
) -> None:
    remote_id = simulator.ids()[0]
    payload = simulator.invoice(remote_id)
    payload["total_price_excl_tax"] = "10,95"
    payload["total_price_incl_tax"] = "13.2495"
    payload["total_paid"] = "0.0"
    payload["total_unpaid"] = "13.2495"
    payload["payments"] = []
    payload["details"] = payload["details"][:1]
    payload["details"][0]["price"] = "10.95"
    payload["details"][0]["amount_decimal"] = "1.0"
    payload["details"][0]["total_price_excl_tax_with_discount"] = 10.95
    payload["tax_totals"] = []
    simulator.set_raw(remote_id, payload)

    app.sync_inline(_source(app))

    row = mirror_rows(app.engine)[remote_id]
    assert row["total_excl_tax"] == Decimal("10.95")
    assert row["total_incl_tax"] == Decimal("13.2495")
    assert row["total_tax"] == Decimal("2.2995")
    assert row["lines"][0]["amount_excl_tax"] == Decimal("10.95")
    assert '"total_price_excl_tax":"10,95"' in row["raw"].replace(" ", "")
    assert "10.95" in row["raw"], "a JSON number keeps its spelling in raw"


def test_an_older_version_never_replaces_a_newer_one(
    app: App, simulator: MoneybirdSimulator
) -> None:
    from workers.engine import sync_batch

    remote_id = simulator.ids()[0]
    app.sync_inline(_source(app))
    old = simulator.invoice(remote_id)
    simulator.change_invoice(remote_id, reference="newer")
    app.sync_inline(_source(app))
    newer_version = simulator.invoice(remote_id)["version"]

    simulator.set_raw(remote_id, old)  # a late batch carrying the older payload
    with app.connector(_source(app)) as connector:
        result = sync_batch(connector, app.mirror, [remote_id], run_id=None, full=False)

    assert result.not_newer == 1 and result.written == 0
    row = mirror_rows(app.engine)[remote_id]
    assert row["remote_version"] == str(newer_version)
    assert '"newer"' in row["raw"]


def test_a_full_resync_repairs_a_version_that_went_backwards(
    app: App, simulator: MoneybirdSimulator
) -> None:
    remote_id = simulator.ids()[0]
    simulator.change_invoice(remote_id, reference="before the restore")
    app.sync_inline(_source(app))
    stored = int(mirror_rows(app.engine)[remote_id]["remote_version"])
    restored = simulator.invoice(remote_id)
    restored.update(version=stored - 1000, reference="restored from a backup")
    simulator.set_raw(remote_id, restored)  # the source went back in time

    normal = app.sync_inline(_source(app))
    assert (normal.changed, normal.status) == (0, "ok"), "a normal cycle keeps the newer version"
    assert '"before the restore"' in mirror_rows(app.engine)[remote_id]["raw"]

    full = app.sync_inline(_source(app), full=True)

    assert full.status == "ok"
    row = mirror_rows(app.engine)[remote_id]
    assert row["remote_version"] == str(stored - 1000), (
        "under --full the source's word is the mirror"
    )
    assert '"restored from a backup"' in row["raw"]
    assert_mirror_equals(app.engine, simulator)


def test_rerunning_a_batch_changes_nothing(app: App, simulator: MoneybirdSimulator) -> None:
    from workers.engine import sync_batch

    app.sync_inline(_source(app))
    before = mirror_rows(app.engine)
    with app.connector(_source(app)) as connector:
        for _ in range(2):
            result = sync_batch(
                connector, app.mirror, simulator.ids()[:100], run_id=None, full=False
            )
            assert result.written == 0 and result.not_newer == 100

    assert mirror_rows(app.engine) == before


def test_every_cycle_writes_a_sync_runs_row(app: App, simulator: MoneybirdSimulator) -> None:
    app.sync_inline(_source(app))
    simulator.delete_invoice(simulator.ids()[0])
    app.sync_inline(_source(app))

    with app.engine.connect() as connection:
        runs = connection.execute(sa.select(sync_runs).order_by(sync_runs.c.id)).all()
    assert [(r.status, r.new, r.deleted, r.requests) for r in runs] == [
        ("ok", 120, 0, 3),
        ("ok", 0, 1, 1),
    ]
    assert all(r.finished_at >= r.started_at for r in runs)
    assert all(r.started_at.tzinfo is not None for r in runs)


def test_ids_stay_strings_and_money_is_exact_in_the_database(app: App) -> None:
    app.sync_inline(_source(app))
    with app.engine.connect() as connection:
        row = connection.execute(
            sa.select(invoices.c.remote_id, invoices.c.total_incl_tax).limit(1)
        ).one()
    assert isinstance(row.remote_id, str) and len(row.remote_id) >= 15
    assert isinstance(row.total_incl_tax, Decimal)


def test_a_failed_batch_transaction_leaves_the_next_one_working(
    app: App, simulator: MoneybirdSimulator
) -> None:
    import dataclasses

    import sqlalchemy as sa

    from store.schema import sync_errors

    with app.connector(_source(app)) as connector:
        good = [
            connector.normalize(record, raw)
            for record, raw in connector.fetch_batch(simulator.ids()[:2])
        ]
    # the database refuses it: NOT NULL (a wrong type on purpose, hence the cast)
    broken = dataclasses.replace(good[0], currency=cast(str, None))

    refused = app.mirror.write_batch("acme", [broken], [])
    assert (refused.written, refused.quarantined) == (0, 1)
    assert mirror_rows(app.engine) == {}, "nothing of the refused record is half-written"
    with app.engine.connect() as connection:
        (error,) = connection.execute(sa.select(sync_errors.c.error)).scalars()
    assert error.startswith("cannot be stored: currency: is missing")

    result = app.mirror.write_batch("acme", good, [])

    assert result.written == 2
    assert set(mirror_rows(app.engine)) == {good[0].remote_id, good[1].remote_id}


def test_a_quarantined_invoice_deleted_remotely_leaves_quarantine(
    app: App, simulator: MoneybirdSimulator
) -> None:
    bad_id = simulator.ids()[3]
    simulator.add_fault("invalid", endpoint="fetch", remote_id=bad_id)
    app.sync_inline(_source(app))
    assert app.runs.status(["acme"])[0].quarantined == 1

    simulator.delete_invoice(bad_id)
    app.sync_inline(_source(app))

    assert app.runs.status(["acme"])[0].quarantined == 0
    with app.engine.connect() as connection:
        error = connection.execute(sa.select(sync_errors)).one()
    assert error.remote_id == bad_id and error.resolved_at is not None


def test_a_source_without_ordered_versions_takes_any_different_version_as_a_change(
    app: App, simulator: MoneybirdSimulator
) -> None:
    """The engine's side of sources whose version is a content hash or a local timestamp
    (Recras, WeFact): a version that went back is a change, written without the newer-only
    guard, and an equal one is left alone. Moneybird over real HTTP stands in for such a
    source here, its connector told that its versions are unordered."""
    from connectors.moneybird.connector import MoneybirdConnector
    from workers.engine import run_cycle

    class Unordered(MoneybirdConnector):
        ordered_versions = False

    app.sync_inline(_source(app))
    remote_id = simulator.ids()[0]
    stored = int(mirror_rows(app.engine)[remote_id]["remote_version"])
    older = simulator.invoice(remote_id)
    older.update(version=stored - 1000, reference="an older version, now current")
    simulator.set_raw(remote_id, older)

    token = app.config.token(_source(app))
    with Unordered.from_config(_source(app), token) as connector:
        first = run_cycle(connector, app.mirror, app.runs)
        again = run_cycle(connector, app.mirror, app.runs)

    assert (first.changed, first.status) == (1, "ok")
    row = mirror_rows(app.engine)[remote_id]
    assert row["remote_version"] == str(stored - 1000)
    assert '"an older version, now current"' in row["raw"]
    assert (again.changed, again.unchanged) == (0, first.listed), "equal versions are left alone"
    held = app.mirror.stored_versions("acme", [remote_id])  # what a daemon batch compares
    assert behind({remote_id: str(stored)}, held, ordered=False) == [remote_id]
    assert behind({remote_id: str(stored - 1000)}, held, ordered=False) == []
    assert behind({remote_id: str(stored - 2000)}, held, ordered=True) == []


def test_a_partial_listing_fetches_what_it_names_and_deletes_nothing(
    app: App, simulator: MoneybirdSimulator
) -> None:
    """The engine's side of a modified-since listing (WeFact, Flowtly): it names only what
    changed, so what it lacks is not gone. Moneybird over real HTTP stands in, its listing cut
    down to the invoices changed since the first cycle."""
    from connectors.base import NO_HISTORY, Listing, ListingHistory
    from connectors.moneybird.connector import MoneybirdConnector
    from workers.engine import run_cycle

    app.sync_inline(_source(app))
    changed = simulator.ids()[:3]
    for remote_id in changed:
        simulator.change_invoice(remote_id, reference="changed since the cursor")
    simulator.delete_invoice(simulator.ids()[-1])

    class ModifiedSince(MoneybirdConnector):
        def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
            versions = self.list_versions()
            return Listing(versions={i: versions[i] for i in changed}, complete=False)

    token = app.config.token(_source(app))
    with ModifiedSince.from_config(_source(app), token) as connector:
        result = run_cycle(connector, app.mirror, app.runs)

    assert (result.status, result.listed, result.changed, result.deleted) == ("ok", 3, 3, 0)
    rows = mirror_rows(app.engine)
    assert all('"changed since the cursor"' in rows[i]["raw"] for i in changed)
    assert all(row["deleted_at"] is None for row in rows.values()), (
        "a partial listing deletes nothing"
    )


def _digests(app: App) -> list[str | None]:
    with app.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(sync_runs.c.listing_digest).order_by(sync_runs.c.id)
            ).scalars()
        )


def test_a_listing_the_previous_run_left_the_mirror_equal_to_is_not_compared_again(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared = count_comparisons(monkeypatch)
    first = app.sync_inline(_source(app))  # compares, writes all 120 as listed: digest kept
    simulator.requests.clear()

    again = [app.sync_inline(_source(app)) for _ in range(2)]

    assert first.new == 120 and compared == ["acme"], "only the first cycle compared"
    assert [(r.status, r.listed, r.unchanged, r.requests) for r in again] == [
        ("ok", 120, 120, 1)
    ] * 2
    assert [(r.new, r.changed, r.deleted, r.restored) for r in again] == [(0, 0, 0, 0)] * 2
    digests = _digests(app)
    assert digests[0] is not None and len(digests[0]) == 64
    assert digests == [digests[0]] * 3, "the chain goes on while nothing changes"
    assert_mirror_equals(app.engine, simulator)


def test_a_cycle_that_writes_what_its_listing_says_lets_the_next_one_skip(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.sync_inline(_source(app))
    app.sync_inline(_source(app))
    changed, gone = simulator.ids()[:2]
    simulator.change_invoice(changed, reference="after the quiet spell")
    simulator.delete_invoice(gone)
    compared = count_comparisons(monkeypatch)

    result = app.sync_inline(_source(app))  # compares, fetches one, deletes one
    after = app.sync_inline(_source(app))  # the same listing: the mirror is as it says

    assert compared == ["acme"]
    assert (result.changed, result.deleted, result.unchanged) == (1, 1, 118)
    assert (after.changed, after.deleted, after.unchanged, after.listed) == (0, 0, 119, 119)
    assert _digests(app)[2] is not None and _digests(app)[3] == _digests(app)[2]
    assert_mirror_equals(app.engine, simulator)


def test_a_record_changed_again_before_its_fetch_makes_the_next_cycle_compare(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.moneybird.connector import MoneybirdConnector

    app.sync_inline(_source(app))
    target = simulator.ids()[3]
    simulator.change_invoice(target, reference="listed")
    fetch_batch = MoneybirdConnector.fetch_batch

    def changed_meanwhile(self: MoneybirdConnector, ids: Any, *listed: Any) -> Any:
        if target in ids:
            simulator.change_invoice(target, reference="changed after the listing")
        return fetch_batch(self, ids, *listed)

    monkeypatch.setattr(MoneybirdConnector, "fetch_batch", changed_meanwhile)
    result = app.sync_inline(_source(app))
    monkeypatch.setattr(MoneybirdConnector, "fetch_batch", fetch_batch)
    compared = count_comparisons(monkeypatch)
    after = app.sync_inline(_source(app))

    assert result.changed == 1 and _digests(app)[1] is None, "written at a newer version"
    assert compared == ["acme"], "so the next cycle compares (and finds the mirror equal)"
    assert (after.changed, after.unchanged) == (0, 120) and _digests(app)[2] is not None
    assert '"changed after the listing"' in mirror_rows(app.engine)[target]["raw"]
    assert_mirror_equals(app.engine, simulator)


def test_any_other_run_in_between_makes_the_next_cycle_compare(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.sync_inline(_source(app))
    app.sync_inline(_source(app))
    full = app.sync_inline(_source(app), full=True)  # rewrites the mirror: not trusted after
    compared = count_comparisons(monkeypatch)

    result = app.sync_inline(_source(app))

    assert full.status == "ok" and compared == ["acme"]
    assert (result.status, result.unchanged) == ("ok", 120)
    with app.engine.begin() as connection:  # a run that failed, after an equal one
        connection.execute(sa.update(sync_runs).values(status="failed"))
    app.sync_inline(_source(app))
    assert compared == ["acme", "acme"]


def test_a_listed_quarantined_invoice_keeps_every_cycle_comparing(
    app: App, simulator: MoneybirdSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_id = simulator.ids()[5]
    simulator.add_fault("invalid", endpoint="fetch", remote_id=bad_id, times=10)
    app.sync_inline(_source(app))
    compared = count_comparisons(monkeypatch)

    results = [app.sync_inline(_source(app)) for _ in range(2)]

    assert compared == ["acme", "acme"], "a quarantined id is fetched again each cycle"
    assert [r.quarantined for r in results] == [1, 1]
    assert _digests(app)[1:] == [None, None]


def test_a_cycle_that_wrote_a_tenth_of_the_mirror_analyzes_its_tables(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL only: without statistics (autovacuum off, or not yet round) the planner took
    the loaded tables for empty and the next cycle's line deletes scanned them whole."""
    monkeypatch.setattr(store.mirror, "ANALYZE_AFTER", 100)

    first = app.sync_inline(_source(app))
    idle = app.sync_inline(_source(app))

    assert (first.status, first.new, idle.status, idle.new) == ("ok", 120, "ok", 0)
    if app.engine.dialect.name != "postgresql":
        assert not app.mirror.analyze_if_grown(written=10_000, listed=10_000)
        return
    assert analyze_counts(app) == {
        "invoices": 1,
        "invoice_lines": 1,
        "payments": 1,
        "sync_runs": 0,
    }, "the first cycle analyzed the tables it wrote; the idle one did not"
    assert not app.mirror.analyze_if_grown(written=99, listed=99), "below ANALYZE_AFTER"
    assert not app.mirror.analyze_if_grown(written=120, listed=1201), "under a tenth"
