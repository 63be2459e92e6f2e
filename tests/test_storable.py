"""A value the database cannot hold costs one record, never its batch, its source or a traceback.

Before migration 0003 a 101-character `payment_reference` aborted the whole batch on PostgreSQL
(and every later batch, every cycle) with `StringDataRightTruncation` while SQLite stored it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from connectors.records import InvoiceLine, Payment
from store.schema import sync_errors, sync_runs
from store.storable import unstorable
from tests.conftest import TOKEN, TOKEN_ENV
from tests.invoices import an_invoice
from tests.mirror_check import assert_mirror_equals, mirror_rows
from workers.app import App

ROOT = Path(__file__).resolve().parents[1]


def open_errors(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        rows = connection.execute(
            sa.select(sync_errors.c.remote_id, sync_errors.c.error).where(
                sync_errors.c.resolved_at.is_(None)
            )
        )
        return {remote_id: error for remote_id, error in rows}


def test_long_texts_and_references_are_stored_whole(
    app: App, simulator: MoneybirdSimulator
) -> None:
    first = simulator.ids()[0]
    second = next(i for i in simulator.ids() if simulator.invoice(i)["total_unpaid"] != "0.0")
    reference = "RF18" + "5" * 4996
    simulator.change_invoice(first, payment_reference=reference, invoice_id="N" * 300)
    paid = simulator.pay_invoice(second)
    payment = paid["payments"][-1]
    payment["transaction_identifier"] = "T" * 1000
    payment["manual_payment_action"] = "private_payment_" + "x" * 200
    simulator.change_invoice(second, payments=paid["payments"])

    result = app.sync_inline(app.config.sources[0])

    assert (result.status, result.quarantined, result.error) == ("ok", 0, None)
    rows = mirror_rows(app.engine)
    assert rows[first]["payment_reference"] == reference
    assert rows[first]["number"] == "N" * 300
    stored = {p["remote_id"]: p for p in rows[second]["payments"]}[str(payment["id"])]
    assert stored["transaction_reference"] == "T" * 1000
    assert stored["method"] == payment["manual_payment_action"]
    assert_mirror_equals(app.engine, simulator)


def test_a_nul_in_one_invoice_quarantines_it_by_field_and_the_batch_lands(
    app: App, simulator: MoneybirdSimulator
) -> None:
    bad = simulator.ids()[5]
    simulator.change_invoice(bad, payment_reference="RF18 \x00 5555")

    result = app.sync_inline(app.config.sources[0])

    assert (result.status, result.quarantined) == ("ok", 1)
    rows = mirror_rows(app.engine)
    assert len(rows) == 119 and bad not in rows, "the other 119 landed, on both databases"
    assert open_errors(app) == {
        bad: "cannot be stored: payment_reference: contains a NUL character, which PostgreSQL "
        "text cannot store"
    }

    simulator.change_invoice(bad, payment_reference="RF18 5555")
    again = app.sync_inline(app.config.sources[0])

    assert (again.status, again.quarantined, again.new) == ("ok", 0, 1)
    assert open_errors(app) == {}
    assert_mirror_equals(app.engine, simulator)


def _refuse_on(app: App, reference: str) -> None:
    """A trigger refusing one value: a constraint no check in our code foresees."""
    with app.engine.begin() as connection:
        if app.engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.payment_reference = '{reference}' THEN RAISE EXCEPTION "
                "'this reference is refused' USING ERRCODE = "
                "'check_violation'; END IF; RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON invoices "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON invoices "
                f"WHEN NEW.payment_reference = '{reference}' "
                "BEGIN SELECT RAISE(ABORT, 'reference is refused'); END"
            )


def test_a_refusal_no_check_foresaw_costs_one_record_with_the_databases_words(
    app: App, simulator: MoneybirdSimulator
) -> None:
    bad = simulator.ids()[7]
    simulator.change_invoice(bad, payment_reference="RF00REFUSED")
    _refuse_on(app, "RF00REFUSED")

    result = app.sync_inline(app.config.sources[0])

    assert (result.status, result.quarantined) == ("ok", 1)
    assert set(mirror_rows(app.engine)) == set(simulator.ids()) - {bad}
    (error,) = open_errors(app).values()
    assert error.startswith("the database refused it: ") and "refused" in error[25:]


def test_a_database_error_in_a_cycle_is_recorded_and_printed_in_one_line(
    tmp_path: Path,
    database_url: str,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    token: str,
) -> None:
    """Not a refusal of a value: the database fails the statement itself (here, a trigger
    raising a plain exception on PostgreSQL; a missing table on SQLite)."""
    from workers.config import AppConfig

    config = tmp_path / "c.toml"
    config.write_text(
        f'database_url = "{database_url}"\n[[sources]]\nname = "acme"\nkind = "moneybird"\n'
        f'base_url = "{server.base_url}"\nadministration_id = "{simulator.administration_id}"\n'
        f'token_env = "{TOKEN_ENV}"\nsince = "2020-01-01"\nrate_limit = 100000\n'
    )
    app = App.open(AppConfig(database_url=database_url, path=config))
    with app.engine.begin() as connection:
        if app.engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'the disk said no'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON invoice_lines "
                "FOR EACH STATEMENT EXECUTE FUNCTION boom()"
            )
        else:
            connection.exec_driver_sql("DROP TABLE invoice_lines")
    app.close()

    result = subprocess.run(
        [sys.executable, "-m", "workers", "--config", str(config), "sync", "--inline"],
        cwd=ROOT,
        env={**os.environ, TOKEN_ENV: TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        (run,) = connection.execute(sa.select(sync_runs)).all()
    engine.dispose()
    assert run.status == "failed" and run.error
    expected = "the disk said no" if "postgresql" in database_url else "invoice_lines"
    assert expected in run.error
    assert f"acme: {run.error}" in result.stdout


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"payment_reference": "x" * 100_000}, None),
        ({"customer_name": "a\x00b"}, "customer_name: contains a NUL character"),
        ({"number": "\ud800"}, "number: contains a lone UTF-16 surrogate"),
        ({"remote_version": "7\x00"}, "remote_version: contains a NUL character"),
        ({"total_paid": Decimal("1E+200000")}, "total_paid: has more digits"),
        ({"total_paid": Decimal("NaN")}, "total_paid: NaN is not a finite number"),
        ({"currency": "EURO"}, "currency: is 4 characters long; the column holds at most 3"),
        (
            {"lines": (InvoiceLine(None, 2**31, "x", None, None, None, None),)},
            "lines[0].position: 2147483648 is out of range for a integer column",
        ),
        (
            {"payments": (Payment("8", Decimal(1), None, "bank\x00", None, None),)},
            "payments[0].method: contains a NUL character",
        ),
    ],
)
def test_the_check_names_the_first_value_the_database_would_refuse(
    changes: dict[str, object], problem: str | None
) -> None:
    found = unstorable(an_invoice(**changes))
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found
