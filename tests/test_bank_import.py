"""Importing statement files: every transaction once, a bad file nothing, on SQLite and PostgreSQL.

The command line (`import-bank`) and the daemon's inbox call the same `import_bank_file`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from store.bank import BankStore
from store.schema import bank_imports, bank_transactions
from tests.bankgen import Tx, write_camt053
from workers.bank_import import import_bank_file
from workers.cli import cli
from workers.inbox import scan_inbox, settled_files

DATA = Path(__file__).parent / "data" / "bankfiles"
ACCOUNT = "NL91ABNA0417164300"  # a valid IBAN (checksum included)


def rows(store: BankStore) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        result = connection.execute(sa.select(bank_transactions).order_by(bank_transactions.c.id))
        return [dict(r._mapping) for r in result]


def tx(day: int, amount: str, text: str = "Factuur 2026-0001", **extra: Any) -> Tx:
    values: dict[str, Any] = {
        "booked": dt.date(2026, 3, day),
        "amount": Decimal(amount),
        "name": "Bakkerij de Wit",
        "iban": "NL18RABO0123459876",
        "text": text,
    }
    values.update(extra)
    return Tx(**values)


def test_a_camt053_sample_imports_and_a_second_import_adds_nothing(
    store: BankStore, tmp_path: Path
) -> None:
    sample = DATA / "camt053_001_02_multi_genkgo.xml"

    first = import_bank_file(store, sample)
    second = import_bank_file(store, sample)

    assert first.status == "ok", first.error
    assert first.format == "camt053" and first.accounts == ("NL26VAYB8060476890",)
    assert first.new == len(rows(store)) > 0 and first.present == 0
    assert (second.new, second.present) == (0, first.new)
    stored = rows(store)
    assert {r["origin"] for r in stored} == {"camt053"}
    assert all(r["origin_file"].startswith(f"{sample.name} sha256:") for r in stored)
    assert all(isinstance(r["amount"], Decimal) for r in stored)


def test_overlapping_statements_never_double_and_identical_payments_stay_two(
    store: BankStore, tmp_path: Path
) -> None:
    twin = tx(2, "25.00", "contributie maart")  # no bank reference: keyed by content
    early = [tx(1, "100.00"), twin, twin, tx(2, "-12.50", "Bankkosten")]
    late = [twin, twin, tx(2, "-12.50", "Bankkosten"), tx(3, "40.00", "Factuur 2026-0002")]
    write_camt053(tmp_path / "a.xml", ACCOUNT, [early])
    write_camt053(tmp_path / "b.xml", ACCOUNT, [late])

    a = import_bank_file(store, tmp_path / "a.xml")
    b = import_bank_file(store, tmp_path / "b.xml")

    assert (a.new, a.present) == (4, 0)
    assert (b.new, b.present) == (1, 3)
    amounts = sorted(r["amount"] for r in rows(store))
    assert amounts == [
        Decimal("-12.50"),
        Decimal("25.00"),
        Decimal("25.00"),
        Decimal("40.00"),
        Decimal("100.00"),
    ]


def test_a_file_whose_statements_overlap_writes_the_shared_transaction_once(
    store: BankStore, tmp_path: Path
) -> None:
    """On PostgreSQL a first import COPYs a chunk straight into the table; this chunk names one
    key twice, so that COPY fails on the unique key and the chunk is staged and merged."""
    shared = tx(2, "25.00", "contributie maart")
    write_camt053(tmp_path / "both.xml", ACCOUNT, [[tx(1, "100.00"), shared], [shared]])

    result = import_bank_file(store, tmp_path / "both.xml")

    assert (result.status, result.new, result.present) == ("ok", 2, 1)
    assert sorted(r["amount"] for r in rows(store)) == [Decimal("25.00"), Decimal("100.00")]


def test_a_large_file_is_written_in_chunks_all_or_nothing(
    store: BankStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks and merges stand in for the 2,000-row chunks and 20,000-row merges."""
    import store.bank as bank

    monkeypatch.setattr(bank, "_CHUNK", 7)
    monkeypatch.setattr(bank, "_MERGE_EVERY", 20)
    many = [tx(1 + n // 30, f"{n + 1}.00", f"payment {n}") for n in range(95)]
    write_camt053(tmp_path / "many.xml", ACCOUNT, [many[:60], many[40:]])  # 20 overlap

    result = import_bank_file(store, tmp_path / "many.xml")

    assert (result.status, result.new, result.present) == ("ok", 95, 20)
    assert len(rows(store)) == 95
    other = "NL02ABNA0123456789"
    write_camt053(tmp_path / "other.xml", other, [many])
    text = (tmp_path / "other.xml").read_text()
    (tmp_path / "cut.xml").write_text(text[: len(text) * 3 // 4])  # breaks after 3+ merges
    assert import_bank_file(store, tmp_path / "cut.xml").status == "failed"
    assert [r for r in rows(store) if r["account_iban"] == other] == [], (
        "the chunks merged before the break were rolled back with the rest"
    )


def test_a_database_failure_mid_file_fails_the_import_without_hanging(
    store: BankStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader thread may be blocked on a full queue when the writer fails: it must stop."""
    import store.bank as bank

    monkeypatch.setattr(bank, "_CHUNK", 5)
    monkeypatch.setattr(bank, "_MERGE_EVERY", 10)
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'disk full'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER full_disk BEFORE INSERT ON bank_transactions "
                "FOR EACH STATEMENT EXECUTE FUNCTION full_disk()"
            )
        else:
            connection.exec_driver_sql(
                "CREATE TRIGGER full_disk BEFORE INSERT ON bank_transactions "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
    many = [tx(1 + n // 100, f"{n + 1}.00", f"payment {n}") for n in range(400)]
    write_camt053(tmp_path / "many.xml", ACCOUNT, [many])
    started = time.monotonic()

    result = import_bank_file(store, tmp_path / "many.xml")

    assert time.monotonic() - started < 20
    assert result.status == "failed" and "disk full" in (result.error or "")
    assert rows(store) == []


def test_a_bank_reference_identifies_a_transaction_whatever_its_text(
    store: BankStore, tmp_path: Path
) -> None:
    write_camt053(tmp_path / "a.xml", ACCOUNT, [[tx(1, "10.00", bank_ref="AB123")]])
    write_camt053(tmp_path / "b.xml", ACCOUNT, [[tx(1, "10.00", "other text", bank_ref="AB123")]])

    assert import_bank_file(store, tmp_path / "a.xml").new == 1
    again = import_bank_file(store, tmp_path / "b.xml")

    assert (again.new, again.present) == (0, 1)


def test_a_broken_file_imports_nothing_and_says_where(store: BankStore, tmp_path: Path) -> None:
    many = [tx(1, f"{n}.00", f"payment {n}") for n in range(1, 60)]
    write_camt053(tmp_path / "whole.xml", ACCOUNT, [many])
    text = (tmp_path / "whole.xml").read_text()
    (tmp_path / "cut.xml").write_text(text[: len(text) * 2 // 3])

    result = import_bank_file(store, tmp_path / "cut.xml")

    assert result.status == "failed" and result.new == 0
    assert result.error is not None and result.error.startswith("cut.xml: camt053: ")
    assert rows(store) == [], "nothing of the broken file was written"
    with store.engine.connect() as connection:
        (recorded,) = connection.execute(sa.select(bank_imports)).all()
    assert (recorded.status, recorded.error) == ("failed", result.error)


def test_a_file_without_an_iban_needs_account(store: BankStore) -> None:
    knab = DATA / "mt940_knab.sta"  # :25:123456789, not an IBAN

    refused = import_bank_file(store, knab)
    accepted = import_bank_file(store, knab, ACCOUNT)

    assert refused.status == "failed"
    assert "names its account '123456789', which is not an IBAN; pass --account IBAN" in (
        refused.error or ""
    )
    assert accepted.status == "ok" and accepted.accounts == (ACCOUNT,)
    assert {r["account_iban"] for r in rows(store)} == {ACCOUNT}


def test_account_must_agree_with_the_file(store: BankStore, tmp_path: Path) -> None:
    write_camt053(tmp_path / "a.xml", ACCOUNT, [[tx(1, "1.00")]])
    result = import_bank_file(store, tmp_path / "a.xml", "NL02ABNA0123456789")
    assert result.status == "failed"
    assert f"the file is for account {ACCOUNT}, but --account says NL02ABNA0123456789" in (
        result.error or ""
    )


def test_a_statement_that_does_not_balance_imports_with_a_warning(
    store: BankStore, tmp_path: Path
) -> None:
    write_camt053(tmp_path / "a.xml", ACCOUNT, [[tx(1, "10.00")]], closing_off_by=Decimal("0.01"))

    result = import_bank_file(store, tmp_path / "a.xml")

    assert result.status == "ok" and result.new == 1
    assert result.balance_check is not None and "1010.01" in result.balance_check
    assert "WARNING: does not balance" in result.line()


def test_import_bank_command_prints_a_line_per_file_and_fails_if_one_did(
    database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'database_url = "{database_url}"\n')
    write_camt053(tmp_path / "good.xml", ACCOUNT, [[tx(1, "10.00"), tx(2, "-3.10")]])
    (tmp_path / "bad.xml").write_text("<Document><BkToCstmrStmt>")

    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "import-bank",
            str(tmp_path / "good.xml"),
            str(tmp_path / "bad.xml"),
        ],
    )

    assert result.exit_code == 1
    good, bad = result.stdout.splitlines()
    assert good.startswith(f"good.xml: camt053, account {ACCOUNT}, 1 statement(s), 2 new, 0 ")
    assert bad.startswith("bad.xml: FAILED: bad.xml: ")
    status = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert f"bank {ACCOUNT}: 2 transactions, newest booked 2026-03-02; last import" in (
        status.stdout
    )


def test_a_malformed_account_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'database_url = "{database_url}"\n')
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "import-bank",
            str(DATA / "mt940_knab.sta"),
            "--account",
            "NL00NOPE",
        ],
    )
    assert result.exit_code == 2 and "is not a valid IBAN" in result.stderr


def test_the_inbox_imports_settled_files_once_and_sorts_them(
    store: BankStore, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_camt053(inbox / "march.xml", ACCOUNT, [[tx(1, "10.00"), tx(2, "20.00")]])
    (inbox / "junk.xml").write_text("<Document>")
    shutil.copy(DATA / "mt940_rabobank_iban.sta", inbox / "rabo.sta")

    results = scan_inbox(store, inbox, settle=0.05)

    assert sorted((r.file, r.status) for r in results) == [
        ("junk.xml", "failed"),
        ("march.xml", "ok"),
        ("rabo.sta", "ok"),
    ]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["march.xml", "rabo.sta"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["junk.xml", "junk.xml.error"]
    assert "junk.xml: camt053" in (inbox / "failed" / "junk.xml.error").read_text()
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []
    assert scan_inbox(store, inbox, settle=0.05) == [], "the subfolders are not scanned"


def test_a_file_still_being_written_waits_for_the_next_scan(tmp_path: Path) -> None:
    growing = tmp_path / "growing.xml"
    growing.write_text("<Document>")
    (tmp_path / "done.xml").write_text("<Document/>")

    def keep_writing() -> None:
        for _ in range(10):
            time.sleep(0.02)
            with growing.open("a") as handle:
                handle.write("<more/>")

    writer = threading.Thread(target=keep_writing)
    writer.start()
    settled = [p.name for p in settled_files(tmp_path, 0.1)]
    writer.join()

    assert settled == ["done.xml"]
    assert sorted(p.name for p in settled_files(tmp_path, 0.05)) == ["done.xml", "growing.xml"]
