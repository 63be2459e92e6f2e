"""Shared fixtures: a real simulator over loopback, real SQLite files and real PostgreSQL.

Each PostgreSQL test gets its own schema (via `search_path`), so tests run in parallel without
seeing each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.moneybird.config import MoneybirdSource
from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from store.bank import BankStore
from store.db import make_engine, upgrade
from workers.app import App
from workers.config import AppConfig

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TOKEN = "sim-token-7f3a9c2e51b8"
TOKEN_ENV = "TEST_MONEYBIRD_TOKEN"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mirror.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[sa.Engine]:
    """A database at the latest migration, on each backend."""
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def store(migrated_engine: sa.Engine) -> BankStore:
    """The bank side of a migrated database, on each backend."""
    return BankStore(migrated_engine)


@pytest.fixture
def simulator() -> MoneybirdSimulator:
    return MoneybirdSimulator(invoices=120, seed=3, token=TOKEN, rate_limit=None)


@pytest.fixture
def server(simulator: MoneybirdSimulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(simulator) as running:
        yield running


def make_source(
    server: SimulatorServer, simulator: MoneybirdSimulator, **overrides: object
) -> MoneybirdSource:
    values: dict[str, object] = {
        "name": "acme",
        "kind": "moneybird",
        "base_url": server.base_url,
        "administration_id": simulator.administration_id,
        "token_env": TOKEN_ENV,
        "since": "2020-01-01",
        "interval": "5m",
        "rate_limit": None,
        "timeout": 5,
    }
    values.update(overrides)
    return MoneybirdSource.model_validate(values)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


@pytest.fixture
def app(
    database_url: str, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> Iterator[App]:
    config = AppConfig(
        database_url=database_url,
        sources=(make_source(server, simulator),),
        path=Path("test.toml"),
    )
    opened = App.open(config)
    try:
        yield opened
    finally:
        opened.close()
