"""`invoice-sync demo`: the whole product in one command, against the built-in simulators."""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.flowtly.config import FlowtlySource
from connectors.flowtly.simulator import FlowtlySimulator
from connectors.moneybird.config import MoneybirdSource
from connectors.moneybird.simulator import MoneybirdSimulator
from connectors.recras.config import RecrasSource
from connectors.recras.simulator import RecrasSimulator
from connectors.simulation import SimulatorServer
from connectors.wefact.config import WeFactSource
from connectors.wefact.simulator import WeFactSimulator
from workers.app import App
from workers.cli import format_summary
from workers.config import AppConfig

DEMO_TOKEN_ENV = "INVOICE_SYNC_DEMO_TOKEN"


def run_demo(*, invoices: int, database: str, echo: Callable[[str], None]) -> None:
    path = Path(database)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    today = dt.date.today()
    moneybird = MoneybirdSimulator(invoices=invoices, seed=7, token="demo-token")
    # the smaller sources: a third as many invoices, dated over the last 300 days
    small: dict[str, Any] = {
        "invoices": max(invoices // 3, 1),
        "seed": 7,
        "token": "demo-token",
        "start_date": today - dt.timedelta(days=300),
        "days": 290,
    }
    recras, wefact, flowtly = (
        RecrasSimulator(**small),
        WeFactSimulator(**small),
        FlowtlySimulator(**small),
    )
    os.environ[DEMO_TOKEN_ENV] = "demo-token"
    with (
        SimulatorServer(moneybird) as server,
        SimulatorServer(recras) as recras_server,
        SimulatorServer(wefact) as wefact_server,
        SimulatorServer(flowtly) as flowtly_server,
    ):
        shared: dict[str, Any] = {"token_env": DEMO_TOKEN_ENV, "interval": 300.0}
        sources = (
            MoneybirdSource(
                name="demo",
                kind="moneybird",
                base_url=server.base_url,
                administration_id=moneybird.administration_id,
                since=dt.date(2020, 1, 1),
                write_back="apply",
                **shared,
            ),
            RecrasSource(
                name="demo-venue",
                kind="recras",
                base_url=recras_server.base_url,
                **shared,
            ),
            WeFactSource(
                name="demo-office",
                kind="wefact",
                base_url=wefact_server.base_url,
                **shared,
            ),
            FlowtlySource(
                name="demo-studio",
                kind="flowtly",
                base_url=flowtly_server.base_url,
                **shared,
            ),
        )
        config = AppConfig(database_url=f"sqlite:///{path}", sources=sources, path=Path("<demo>"))
        app = App.open(config)
        try:
            echo(f"Moneybird simulator: {invoices} invoices at {server.base_url}")
            venue = len(recras.invoice_ids())
            echo(f"Recras simulator: {venue} invoices at {recras_server.base_url}")
            office = len(wefact.identifiers())
            echo(f"WeFact simulator: {office} invoices at {wefact_server.base_url}")
            studio = len(flowtly.invoice_ids())
            echo(f"Flowtly simulator: {studio} invoices at {flowtly_server.base_url}")
            echo(f"mirror: {path}\n")
            echo("first sync (everything is new):")
            echo(format_summary([app.sync_inline(source) for source in sources]))

            rng = random.Random(7)
            _change_moneybird(moneybird, rng)
            _change_recras(recras, rng, today)
            _change_wefact(wefact, rng, today)
            _change_flowtly(flowtly, rng, today)
            echo("\nat Moneybird: 5 edited, 5 paid, 3 deleted, 4 created")
            echo("at Recras: 2 paid, 1 line added, 1 deleted, 2 created")
            echo("at WeFact: 3 paid, 1 credited (its credit invoice is new), 1 created")
            echo("at Flowtly: 2 paid, 1 deleted, 1 soft-deleted, 1 created")
            echo("second sync (only what changed is fetched):")
            echo(format_summary([app.sync_inline(source) for source in sources]))
            echo("")
            for status in app.runs.status([source.name for source in sources]):
                echo(
                    f"status {status.source}: mirrored {status.mirrored}, deleted "
                    f"{status.deleted}, quarantined {status.quarantined}"
                )
            _bank_and_write_back(app, sources[0], moneybird, path, echo)
        finally:
            app.close()


def _bank_and_write_back(
    app: App,
    source: MoneybirdSource,
    moneybird: MoneybirdSimulator,
    database: Path,
    echo: Callable[[str], None],
) -> None:
    """Three open Moneybird invoices paid at the bank (a Rabobank CSV export), reconciled, the
    payments registered at Moneybird by write-back, and a sync that sees them."""
    from store.pushes import PushStore
    from workers.bank_import import import_bank_file
    from workers.cli import format_reconciliation
    from workers.reconciliation.engine import reconcile
    from workers.write_back import plan, plan_line, planned, push_source

    paying = [
        p
        for p in moneybird.invoices()
        if p["state"] in ("open", "late")
        and p["payment_reference"]
        and not Decimal(p["total_paid"])
    ][:3]
    export = database.with_name(f"{database.stem}-rabobank.csv")
    export.write_text(_rabobank_csv(paying, dt.date.today()), encoding="utf-8")
    echo(f"\nat the bank: {len(paying)} open Moneybird invoices paid by transfer")
    echo(import_bank_file(app.bank, export).line())
    echo(format_reconciliation(app, reconcile(app.engine)))
    store = PushStore(app.engine)
    plan(store, [source.name])
    echo("\nwrite-back, the plan (`push-payments`):")
    for push in planned(store, source.name):
        echo(plan_line(push))
    with app.connector(source) as connector:
        result = push_source(store, connector, source.name)
    echo("write-back, sent (`push-payments --apply`):")
    for outcome in result.outcomes:
        echo(outcome.line())
    app.sync_inline(source)
    confirmed = plan(store, [source.name]).confirmed
    echo(f"the next sync shows them at Moneybird: {confirmed} payment(s) confirmed")
    echo(format_reconciliation(app, reconcile(app.engine)))


def _rabobank_csv(invoices: list[dict[str, Any]], day: dt.date) -> str:
    """A Rabobank CSV export: one transfer per invoice, its reference in `Betalingskenmerk`."""
    header = (
        '"IBAN/BBAN","Munt","BIC","Volgnr","Datum","Rentedatum","Bedrag","Saldo na trn",'
        '"Tegenrekening IBAN/BBAN","Naam tegenpartij","Code","Transactiereferentie",'
        '"Betalingskenmerk","Omschrijving-1"'
    )
    rows = [header]
    balance = Decimal("1000.00")
    for number, invoice in enumerate(invoices, start=1):
        amount = Decimal(invoice["total_price_incl_tax"])
        balance += amount
        cells = (
            "NL91RABO0315273637",
            "EUR",
            "RABONL2U",
            f"{number:018d}",
            day.isoformat(),
            day.isoformat(),
            f"+{amount:.2f}".replace(".", ","),
            f"+{balance:.2f}".replace(".", ","),
            "NL18INGB1095513148",
            "Klant van de demo",
            "cb",
            f"DEMO{number:08d}",
            invoice["payment_reference"],
            f"Betaling factuur {invoice['invoice_id']}",
        )
        rows.append(",".join(f'"{cell}"' for cell in cells))
    return "\n".join(rows) + "\n"


def _change_moneybird(simulator: MoneybirdSimulator, rng: random.Random) -> None:
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


def _change_flowtly(simulator: FlowtlySimulator, rng: random.Random, today: dt.date) -> None:
    ids = simulator.invoice_ids()
    unpaid = [i for i in ids if simulator.totals(i)["paid"] == 0]
    for invoice_id in rng.sample(unpaid, min(2, len(unpaid))):
        simulator.pay(invoice_id)
    gone = rng.sample([i for i in ids if i not in unpaid], 2)
    simulator.delete_invoice(gone[0])
    simulator.soft_delete(gone[1])
    simulator.create_invoice(issue_date=today, rows=2, nested=True)


def _change_wefact(simulator: WeFactSimulator, rng: random.Random, today: dt.date) -> None:
    ids = simulator.identifiers()
    unpaid = [i for i in ids if simulator.truth(i)["status"] in (2, 3)]
    for identifier in rng.sample(unpaid, min(3, len(unpaid))):
        simulator.pay(identifier)
    simulator.credit(unpaid[-1] if unpaid else ids[0])
    simulator.create_invoice(date=today, lines=2)


def _change_recras(simulator: RecrasSimulator, rng: random.Random, today: dt.date) -> None:
    ids = simulator.invoice_ids()
    unpaid = [i for i in ids if simulator.invoice(i)["status"] in ("verzonden", "deels_betaald")]
    for invoice_id in rng.sample(unpaid, min(2, len(unpaid))):
        simulator.pay(invoice_id)
    simulator.add_line(rng.choice(ids))
    simulator.delete_invoice(rng.choice(ids))
    for days_ago in (1, 2):
        simulator.add_invoice(datum=today - dt.timedelta(days=days_ago), lines=2)
