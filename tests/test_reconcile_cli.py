"""The reconciliation commands as an ops person or bookkeeper types them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tests.reconciliation_book import Book
from workers.cli import cli

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Iterator[Path]:
    namespace = f"isync-test-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "invoice-sync.toml"
    path.write_text(
        f'database_url = "{database_url}"\nredis_url = "{REDIS_URL}"\n'
        f'redis_namespace = "{namespace}"\n'
    )
    yield path
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}*"))
    if keys:
        client.delete(*keys)


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_reconcile_review_and_decide_from_the_command_line(config: Path, database_url: str) -> None:
    book = Book(database_url)
    iban = "NL18INGB1095513148"
    paid = book.invoice("2026-0001", "121.00", reference="RF18539007547034", customer="c7")
    first = book.invoice("2026-0010", "50.00", iban=iban)
    second = book.invoice("2026-0011", "50.00", iban=iban)
    book.tx("121.00", reference="RF18539007547034", iban=None)
    tied = book.tx("50.00", text="bedankt", iban=iban)

    code, out, _ = run(config, "reconcile", "--inline")
    assert code == 0
    assert "automatic matches: reference 1; suggestions: 2" in out
    assert "transactions: matched 1, suggested 1" in out
    assert "bank_payment_not_recorded 1" in out and "open 2" in out

    code, out, _ = run(config, "reconcile", "--inline")
    assert "nothing new since the last run" in out

    code, out, _ = run(config, "review")
    assert f"TX {tied}" in out and "2026-0010" in out and "2026-0011" in out
    assert "customer's account; 2 open invoices of this amount" in out
    match_ids = [int(m) for m in re.findall(r"\[match (\d+)\]", out)]
    assert len(match_ids) == 2
    code, out, _ = run(config, "review", "--limit", "1")
    assert code == 0 and f"TX {tied}" in out and "more" not in out  # one waits: all shown

    code, out, _ = run(config, "reject", str(tied), "2026-0010", "--by", "alice")
    assert code == 0 and "rejected by alice" in out
    assert f"transaction {tied}: suggested, 0 of 50.00 allocated" in out
    assert f"invoice {first} (2026-0010): open" in out
    code, out, _ = run(config, "reconcile", "--inline")
    assert "automatic matches: iban_amount 1" in out
    code, out, _ = run(config, "review")
    assert out.strip() == "nothing to review"  # the tie is gone: the other one matched

    code, out, err = run(config, "match", str(tied), "2099-0001")
    assert code == 1 and "no invoice with id or number '2099-0001'" in err
    code, out, err = run(config, "match", str(tied), str(second), "--amount", "abc")
    assert code == 2 and "is not an amount" in err
    code, out, err = run(config, "confirm", "999999")
    assert code == 1 and "no match 999999" in err

    auto = next(m for m in book.matches(tied) if m["invoice_id"] == second)
    code, out, _ = run(config, "confirm", str(auto["id"]), "--by", "bob")
    assert code == 0 and "confirmed by bob" in out
    assert f"transaction {tied}: matched, 50.00 of 50.00 allocated" in out
    decided = {m["invoice_id"]: (m["status"], m["decided_by"]) for m in book.matches(tied)}
    assert decided == {first: ("rejected", "alice"), second: ("confirmed", "bob")}
    assert book.invoice_status(paid)[0] == "bank_payment_not_recorded"
    book.engine.dispose()


def test_reconcile_without_inline_enqueues_for_the_workers_and_warns_when_none_run(
    config: Path,
) -> None:
    code, out, err = run(config, "reconcile")
    assert "reconciliation enqueued, message" in out
    assert code == 1 and "no worker is running" in err


def test_status_shows_the_last_reconciliation_and_check_fails_on_a_failed_one(
    config: Path, database_url: str
) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from store.schema import reconciliation_runs

    book = Book(database_url)
    iban = "NL18INGB1095513148"
    book.invoice("2026-0010", "50.00", iban=iban)
    book.invoice("2026-0011", "50.00", iban=iban)
    book.tx("50.00", text="bedankt", iban=iban)
    run(config, "reconcile", "--inline")
    code, out, _ = run(config, "status")
    assert code == 0
    assert re.search(r"reconciliation: last run \S+, ok; 1 transaction\(s\) to review", out)
    code, out, _ = run(config, "status", "--json")
    assert '"to_review": 1' in out

    now = dt.datetime.now(dt.UTC)
    with book.engine.begin() as c:
        c.execute(
            sa.insert(reconciliation_runs).values(
                started_at=now, finished_at=now, status="failed", full_run=False, error="boom"
            )
        )
    code, out, err = run(config, "status", "--check")
    assert code == 1 and "failed: reconciliation" in err
    assert "last error: boom" in out
    book.engine.dispose()


def test_confirming_one_of_a_tie_leaves_no_stale_suggestion_behind(
    config: Path, database_url: str
) -> None:
    book = Book(database_url)
    iban = "NL18INGB1095513148"
    book.invoice("2026-0010", "50.00", iban=iban)
    book.invoice("2026-0011", "50.00", iban=iban)
    tied = book.tx("50.00", text="bedankt", iban=iban)
    run(config, "reconcile", "--inline")
    first = book.matches(tied)[0]
    code, out, _ = run(config, "confirm", str(first["id"]), "--by", "erin")
    assert code == 0 and f"transaction {tied}: matched" in out
    assert [m["status"] for m in book.matches(tied)] == ["confirmed"]
    book.engine.dispose()
