"""`push-payments` as an ops person runs it, including a worker killed between the POST and its
commit: the payment is found at the source, never sent twice."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from store.db import make_engine
from tests.conftest import TOKEN, TOKEN_ENV
from tests.reconciliation_book import Book
from workers.cli import cli


@pytest.fixture
def setup(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return configure(tmp_path, server, simulator, database_url, "apply")


def configure(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    write_back: str,
) -> Path:
    path = tmp_path / "invoice-sync.toml"
    path.write_text(
        f"""
database_url = "{database_url}"
redis_namespace = "isync-test-{uuid.uuid4().hex[:12]}"

[[sources]]
name = "acme"
kind = "moneybird"
base_url = "{server.base_url}"
administration_id = "{simulator.administration_id}"
token_env = "{TOKEN_ENV}"
since = "2020-01-01"
timeout = 5
write_back = "{write_back}"
""",
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def posts(simulator: MoneybirdSimulator) -> int:
    return sum(1 for _, path, _ in simulator.requests if path.endswith("/payments.json"))


def paid_at_bank(config: Path, database_url: str, count: int) -> list[tuple[str, str]]:
    """Sync, pay `count` open invoices at the bank, reconcile: (remote id, number) of each."""
    assert run(config, "sync", "--inline")[0] == 0
    book = Book(database_url)
    with book.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT remote_id, number, total_incl_tax, total_paid, payment_reference "
                "FROM invoices WHERE state IN ('open', 'late') AND payment_reference IS NOT NULL "
                "ORDER BY id"
            )
        ).all()
    picked = [r for r in rows if float(r[3]) == 0 and float(r[2]) > 0][:count]
    for row in picked:
        book.tx(str(row[2]), reference=row[4], booked=dt.date.today())
    book.engine.dispose()
    assert run(config, "reconcile", "--inline")[0] == 0
    return [(r[0], r[1]) for r in picked]


def test_dry_run_prints_the_plan_and_apply_sends_each_payment_once(
    setup: Path, database_url: str, simulator: MoneybirdSimulator
) -> None:
    invoices = paid_at_bank(setup, database_url, 2)
    code, out, _ = run(setup, "push-payments")
    assert code == 0
    for remote_id, number in invoices:
        assert f"acme  invoice {number} [{remote_id}]  EUR " in out
    assert "rule reference" in out and "acme: 2 payment(s) planned, nothing sent" in out
    assert posts(simulator) == 0

    code, out, _ = run(setup, "status")
    assert "write-back (apply): payments planned 2, sending 0, sent 0, confirmed 0, failed 0" in out

    code, out, _ = run(setup, "push-payments", "--apply")
    assert code == 0, out
    assert out.count("-> sent: payment ") == 2 and "acme: 2 sent" in out
    assert posts(simulator) == 2

    code, out, _ = run(setup, "push-payments", "--apply")
    assert code == 0 and "acme: nothing to send" in out
    assert posts(simulator) == 2

    assert run(setup, "sync", "--inline")[0] == 0
    assert run(setup, "reconcile", "--inline")[0] == 0
    run(setup, "push-payments")
    code, out, _ = run(setup, "status")
    assert "payments planned 0, sending 0, sent 0, confirmed 2, failed 0" in out

    engine = make_engine(database_url)
    with engine.connect() as connection:
        tx, invoice, payment = connection.execute(
            sa.text(
                "SELECT bank_transaction_id, invoice_id, remote_payment_id FROM payment_pushes LIMIT 1"
            )
        ).one()
    engine.dispose()
    code, out, err = run(setup, "reject", str(tx), str(invoice), "--by", "carol")
    assert code == 0 and "rejected by carol" in out
    assert "already registered this payment at acme" in err and f"payment {payment}" in err
    assert "undo it there" in err and "invoice-sync undo-payment" in err

    engine = make_engine(database_url)
    with engine.connect() as connection:
        push_id, remote_id = connection.execute(
            sa.text(
                "SELECT p.id, i.remote_id FROM payment_pushes p JOIN invoices i "
                "ON i.id = p.invoice_id WHERE p.remote_payment_id = :r"
            ),
            {"r": payment},
        ).one()
    code, out, _ = run(setup, "undo-payment", str(push_id), "--by", "carol")
    assert code == 0 and f"undone at the source by carol: payment {payment} deleted" in out
    assert [p for p in simulator.payments_of(remote_id) if p["id"] == payment] == []
    with engine.connect() as connection:
        status = connection.execute(
            sa.text("SELECT status FROM payment_pushes WHERE id = :i"), {"i": push_id}
        ).scalar_one()
    engine.dispose()
    assert status == "cancelled"
    code, _, err = run(setup, "undo-payment", str(push_id))
    assert code == 1 and f"push {push_id} is cancelled" in err
    code, _, err = run(setup, "undo-payment", "999999")
    assert code == 1 and "no payment push 999999" in err


def test_apply_on_a_source_not_switched_on_says_so_and_sends_nothing(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = configure(tmp_path, server, simulator, database_url, "dry-run")
    paid_at_bank(config, database_url, 1)
    code, out, _ = run(config, "push-payments", "--apply")
    assert code == 0
    assert 'acme: write_back is "dry-run": --apply sends nothing' in out
    assert "acme: 1 payment(s) planned, nothing sent" in out
    config = configure(tmp_path, server, simulator, database_url, "off")
    code, out, _ = run(config, "push-payments", "--apply")
    assert code == 0 and 'acme: write_back is "off": nothing planned or sent' in out
    assert posts(simulator) == 0


def test_a_worker_killed_between_the_post_and_the_commit_never_pays_twice(
    setup: Path, database_url: str, simulator: MoneybirdSimulator
) -> None:
    [(remote_id, _number)] = paid_at_bank(setup, database_url, 1)
    simulator.fail_after_write = ["hang"]  # recorded, then no answer: the worker waits
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers", "--config", str(setup), "push-payments", "--apply"],
        env={**os.environ, TOKEN_ENV: TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not simulator.payments_of(remote_id):
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    landed = [p for p in simulator.payments_of(remote_id) if p["transaction_identifier"]]
    assert len(landed) == 1
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)

    engine = make_engine(database_url)
    status = "SELECT status, remote_payment_id, attempts FROM payment_pushes"
    with engine.connect() as connection:
        assert connection.execute(sa.text(status)).one() == ("sending", None, 1)

    code, out, _ = run(setup, "push-payments", "--apply")
    assert code == 1 and "1 payment(s) being sent by another worker, or of unknown outcome" in out
    assert posts(simulator) == 1

    with engine.begin() as connection:  # the lease runs out
        connection.execute(
            sa.text("UPDATE payment_pushes SET updated_at = :t"),
            {"t": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)},
        )
    code, out, _ = run(setup, "push-payments", "--apply")
    assert code == 0, out
    assert f"-> already there: payment {landed[0]['id']} carries its marker" in out
    assert posts(simulator) == 1
    assert len(simulator.payments_of(remote_id)) == 1
    with engine.connect() as connection:
        assert connection.execute(sa.text(status)).one() == ("sent", landed[0]["id"], 1)
    engine.dispose()
