"""`invoice-sync demo`: the whole product in one command, against the built-in simulator."""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from connectors.source import SourceConfig
from workers.app import App
from workers.cli import format_summary
from workers.config import AppConfig

DEMO_TOKEN_ENV = "INVOICE_SYNC_DEMO_TOKEN"


def run_demo(*, invoices: int, database: str, echo: Callable[[str], None]) -> None:
    path = Path(database)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    simulator = MoneybirdSimulator(invoices=invoices, seed=7, token="demo-token")
    os.environ[DEMO_TOKEN_ENV] = "demo-token"
    with SimulatorServer(simulator) as server:
        source = SourceConfig(
            name="demo",
            kind="moneybird",
            base_url=server.base_url,
            administration_id=simulator.administration_id,
            token_env=DEMO_TOKEN_ENV,
            since=dt.date(2020, 1, 1),
            interval=300.0,
        )
        config = AppConfig(database_url=f"sqlite:///{path}", sources=(source,), path=Path("<demo>"))
        app = App.open(config)
        try:
            echo(f"simulator: {invoices} invoices at {server.base_url}")
            echo(f"mirror: {path}\n")
            echo("first sync (everything is new):")
            echo(format_summary([app.sync_inline(source)]))

            rng = random.Random(7)
            ids = simulator.ids()
            for remote_id in rng.sample(ids, 5):
                simulator.change_invoice(remote_id, reference="Gewijzigd in demo")
            unpaid = [str(p["id"]) for p in simulator.invoices() if Decimal(p["total_unpaid"]) > 0]
            for remote_id in rng.sample(unpaid, min(5, len(unpaid))):
                simulator.pay_invoice(remote_id)
            for remote_id in rng.sample(ids, 3):
                simulator.delete_invoice(remote_id)
            for _ in range(4):
                simulator.create_invoice()
            echo("\nat the simulator: 5 edited, 5 paid, 3 deleted, 4 created")
            echo("second sync (only what changed is fetched):")
            echo(format_summary([app.sync_inline(source)]))
            echo("")
            for status in app.runs.status([source.name]):
                echo(
                    f"status: mirrored {status.mirrored}, deleted {status.deleted}, "
                    f"quarantined {status.quarantined}"
                )
        finally:
            app.close()
