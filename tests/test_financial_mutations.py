"""Moneybird's bank transactions (financial mutations): a second stream through the same engine,
into `bank_transactions` with origin `moneybird`, with its own runs, quarantine and guard."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.moneybird.simulator import BANK_ACCOUNT_IBAN, MoneybirdSimulator, SimulatorServer
from store.schema import bank_transactions, sync_errors, sync_runs
from tests.conftest import TOKEN, make_source
from workers.app import App
from workers.config import AppConfig

STREAM = "financial_mutations"


def open_app(database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator) -> App:
    config = AppConfig(
        database_url=database_url,
        redis_url="redis://127.0.0.1:9/0",  # no shared window needed: rate_limit is off
        sources=(make_source(server, simulator, bank=True),),
        path=Path("test.toml"),
    )
    return App.open(config)


@pytest.fixture
def bank_app(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> Iterator[App]:
    app = open_app(database_url, server, simulator)
    try:
        yield app
    finally:
        app.close()


def mirrored(app: App) -> dict[str, dict[str, Any]]:
    with app.engine.connect() as connection:
        rows = connection.execute(
            sa.select(bank_transactions).where(bank_transactions.c.origin == "moneybird")
        )
        return {r.bank_reference: dict(r._mapping) for r in rows}


def sync(app: App, **options: Any) -> Any:
    return app.sync_inline(app.config.sources[0], stream=STREAM, **options)


def test_financial_mutations_mirror_exactly(bank_app: App, simulator: MoneybirdSimulator) -> None:
    first = sync(bank_app)

    assert first.status == "ok", first.error
    assert (first.stream, first.listed, first.new) == (STREAM, 69, 69)
    assert first.requests == 1 + 1 + 1, "accounts, listing, one batch"
    rows = mirrored(bank_app)
    assert set(rows) == set(simulator.mutation_ids())
    for remote_id, row in rows.items():
        payload = simulator.mutation(remote_id)
        assert row["amount"] == Decimal(payload["amount"]) and isinstance(row["amount"], Decimal)
        assert row["booking_date"].isoformat() == payload["date"]
        assert row["account_iban"] == BANK_ACCOUNT_IBAN
        assert row["description"] == (payload["message"] or None)
        assert row["counterparty_name"] == (payload["contra_account_name"] or None)
        assert row["source"] == "acme" and row["remote_version"] == str(payload["version"])
        assert row["dedup_key"] == f"moneybird:{remote_id}" and row["deleted_at"] is None
    sepa = next(r for r in rows.values() if r["end_to_end_id"])
    assert sepa["end_to_end_id"].startswith("E2E")


def test_changes_and_deletions_follow_the_source(
    bank_app: App, simulator: MoneybirdSimulator
) -> None:
    sync(bank_app)
    changed, deleted = simulator.mutation_ids()[:2]
    simulator.change_mutation(changed, message="Factuur 2024-0001 en 2024-0002")
    simulator.delete_mutation(deleted)

    second = sync(bank_app)

    assert (second.changed, second.deleted, second.unchanged) == (1, 1, 67)
    assert second.requests == 1 + 1 + 1
    rows = mirrored(bank_app)
    assert rows[changed]["description"] == "Factuur 2024-0001 en 2024-0002"
    assert rows[deleted]["deleted_at"] is not None
    idle = sync(bank_app)
    assert (idle.changed, idle.new, idle.requests) == (0, 0, 2)


def test_the_two_streams_keep_their_quarantines_apart(
    bank_app: App, simulator: MoneybirdSimulator
) -> None:
    bad_invoice = simulator.ids()[4]
    bad_mutation = simulator.mutation_ids()[4]
    simulator.add_fault("invalid", endpoint="fetch", remote_id=bad_invoice)
    simulator.add_fault("invalid", endpoint="mutations_fetch", remote_id=bad_mutation)

    invoices = bank_app.sync_inline(bank_app.config.sources[0])
    mutations = sync(bank_app)
    again = bank_app.sync_inline(bank_app.config.sources[0])  # the invoice is fixed by now

    assert (invoices.quarantined, mutations.quarantined, again.quarantined) == (1, 1, 0)
    with bank_app.engine.connect() as connection:
        open_errors = connection.execute(
            sa.select(sync_errors.c.stream, sync_errors.c.remote_id, sync_errors.c.error).where(
                sync_errors.c.resolved_at.is_(None)
            )
        ).all()
    assert [(stream, remote_id) for stream, remote_id, _ in open_errors] == [
        (STREAM, bad_mutation)
    ], "the invoice stream resolves its own quarantine and never releases the other's"
    assert "not-a-date" in open_errors[0][2]


def test_a_token_without_the_bank_scope_fails_that_stream_and_says_so(
    database_url: str, token: str
) -> None:
    simulator = MoneybirdSimulator(
        invoices=30, seed=3, token=TOKEN, rate_limit=None, scopes=("sales_invoices", "settings")
    )
    with SimulatorServer(simulator) as server:
        app = open_app(database_url, server, simulator)
        try:
            invoices = app.sync_inline(app.config.sources[0])
            mutations = sync(app)
        finally:
            app.close()

    assert invoices.status == "ok"
    assert mutations.status == "failed" and mutations.requests == 1 + 1, "accounts, listing"
    assert "HTTP 403" in (mutations.error or "") and "`bank` scope" in (mutations.error or "")


def test_without_the_settings_scope_the_account_is_named_by_its_moneybird_id(
    database_url: str, token: str
) -> None:
    simulator = MoneybirdSimulator(
        invoices=30, seed=3, token=TOKEN, rate_limit=None, scopes=("sales_invoices", "bank")
    )
    with SimulatorServer(simulator) as server:
        app = open_app(database_url, server, simulator)
        try:
            result = sync(app)
            accounts = {r["account_iban"] for r in mirrored(app).values()}
        finally:
            app.close()

    assert result.status == "ok", result.error
    assert accounts == {f"moneybird:{simulator.financial_accounts()[0]['id']}"}


def test_the_command_line_syncs_both_streams_of_a_bank_source(
    tmp_path: Path,
    database_url: str,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    token: str,
) -> None:
    from click.testing import CliRunner

    from tests.conftest import TOKEN_ENV
    from workers.cli import cli

    config = tmp_path / "c.toml"
    config.write_text(
        f'database_url = "{database_url}"\n[[sources]]\nname = "acme"\nkind = "moneybird"\n'
        f'base_url = "{server.base_url}"\nadministration_id = "{simulator.administration_id}"\n'
        f'token_env = "{TOKEN_ENV}"\nsince = "2020-01-01"\nrate_limit = 100000\nbank = true\n'
    )

    result = CliRunner().invoke(cli, ["--config", str(config), "sync", "--inline"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split()[:4] == ["acme", "invoices", "120", "120"]
    assert lines[2].split()[:4] == ["acme", STREAM, "69", "69"]
    import json

    status = CliRunner().invoke(cli, ["--config", str(config), "status", "--check", "--json"])
    assert status.exit_code == 0, status.output
    (report,) = json.loads(status.stdout)["sources"]
    assert report["streams"][STREAM]["last_status"] == "ok"
    assert report["streams"][STREAM]["stale"] is False
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        streams = connection.execute(sa.select(sync_runs.c.stream).order_by(sync_runs.c.id))
        assert list(streams.scalars()) == ["invoices", STREAM]
    engine.dispose()


def test_bank_is_only_for_moneybird() -> None:
    from connectors.kinds import source_config

    values = {"name": "x", "kind": "recras", "base_url": "http://x", "token_env": "T"}
    with pytest.raises(ValueError, match="recras.bank\n  Extra inputs are not permitted"):
        source_config({**values, "bank": True})
