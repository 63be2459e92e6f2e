"""A large bank file parsed by a child process: the same transactions, summaries and errors as
parsing in process, and no child left behind whichever way the import ends."""

from __future__ import annotations

import datetime as dt
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import workers.bank_import as bank_import
from connectors.bank import BankFileError, open_bank_file
from connectors.bank.child_process import InChildProcess, ParserProcessDied, SplitFailed
from store.bank import BankStore
from store.schema import bank_transactions
from tests.bankgen import Tx, write_camt053, write_mt940
from workers.bank_import import import_bank_file

DATA = Path(__file__).parent / "data" / "bankfiles"
ACCOUNT = "NL91ABNA0417164300"
SAMPLES = sorted(p for p in (*DATA.iterdir(), *(DATA / "ours").iterdir()) if p.is_file())


def parsed(path: Path, processes: int, cut: bool = False) -> tuple[list[object], list[object], str]:
    """Transactions, statements and format, or the error's text as the only transaction."""
    try:
        bank_file = open_bank_file(path)
    except BankFileError as exc:
        return [str(exc)], [], ""
    if processes:
        bank_file = InChildProcess(bank_file, processes, cut=cut)
    try:
        return list(bank_file.transactions()), list(bank_file.statements), bank_file.format
    except BankFileError as exc:
        return [str(exc)], [], bank_file.format


@pytest.mark.parametrize("processes", [1, 2, 3])
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_child_processes_parse_every_sample_as_the_parser_does_in_process(
    path: Path, processes: int
) -> None:
    here = parsed(path, 0)
    there = parsed(path, processes)

    assert there == here
    assert here[0], "every sample yields transactions or an error"


@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_a_sample_cut_into_parts_parses_as_in_process(path: Path, processes: int) -> None:
    here = parsed(path, 0)
    if here[0] and isinstance(here[0][0], str):  # refused or broken: the parts say so too
        with pytest.raises((SplitFailed, BankFileError)):
            bank_file = InChildProcess(open_bank_file(path), processes)
            list(bank_file.transactions())
        return

    assert parsed(path, processes, cut=True) == here


def test_a_cut_file_is_read_in_parts_each_by_its_own_process(tmp_path: Path) -> None:
    write_camt053(tmp_path / "a.xml", ACCOUNT, [payments(1500), payments(2500), payments(700)])
    parser = open_bank_file(tmp_path / "a.xml")
    parts = parser.cut(3)
    assert parts is not None and len(parts) == 3
    assert [p.statement for p in parts] == [0, 1, 1], "cut inside the second statement twice"
    bank_file = InChildProcess(parser, 3)

    transactions = list(bank_file.transactions())

    assert len(bank_file.children) == 3
    assert (transactions, bank_file.statements) == parsed(tmp_path / "a.xml", 0)[:2]
    assert [s.transactions for s in bank_file.statements] == [1500, 2500, 700]


def payments(count: int) -> list[Tx]:
    return [
        Tx(
            booked=dt.date(2026, 3, 1) + dt.timedelta(days=n // 100),
            amount=Decimal(f"{n + 1}.25"),
            name=f"Klant {n}",
            iban="NL18RABO0123459876",
            text=f"Factuur 2026-{n:04d}",
        )
        for n in range(count)
    ]


def test_an_error_in_the_child_is_raised_in_the_parent_with_file_and_place(
    tmp_path: Path,
) -> None:
    write_camt053(tmp_path / "whole.xml", ACCOUNT, [payments(3000)])
    text = (tmp_path / "whole.xml").read_text()
    (tmp_path / "cut.xml").write_text(text[: len(text) * 2 // 3])
    streamed: list[object] = []

    with pytest.raises(BankFileError) as raised:
        bank_file = InChildProcess(open_bank_file(tmp_path / "cut.xml"), cut=False)
        for transaction in bank_file.transactions():
            streamed.append(transaction)

    with pytest.raises(BankFileError) as in_process:
        list(open_bank_file(tmp_path / "cut.xml").transactions())
    assert str(raised.value) == str(in_process.value)
    assert (raised.value.file, raised.value.format) == ("cut.xml", "camt053")
    assert raised.value.where and "line" in raised.value.where
    assert 1000 <= len(streamed) < 3000, "what came before the break was streamed first"


@pytest.mark.parametrize("cut", [True, False])
def test_a_consumer_that_stops_early_leaves_no_child_running(tmp_path: Path, cut: bool) -> None:
    write_camt053(tmp_path / "many.xml", ACCOUNT, [payments(5000)])
    bank_file = InChildProcess(open_bank_file(tmp_path / "many.xml"), 2, cut=cut)
    stream = bank_file.transactions()
    assert isinstance(stream, Generator)

    next(stream)
    children = bank_file.children
    assert len(children) == 2
    if not cut:  # a pipe holds a child back until it is read (parts go to files: they may be done)
        assert all(c.poll() is None for c in children)
    stream.close()

    assert all(c.returncode is not None for c in children)


def test_the_parts_have_no_names_on_disk_once_their_children_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So an importer killed outright (SIGKILL, out of memory) leaves no part file behind: each
    child removes the names of its parts as it opens them, and this process reads through the
    handles it opened first."""
    write_camt053(tmp_path / "many.xml", ACCOUNT, [payments(6000)])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    bank_file = InChildProcess(open_bank_file(tmp_path / "many.xml"), 2)
    stream = bank_file.transactions()
    transactions = [next(stream)]
    assert len(bank_file.children) == 2, "cut into parts, two children"

    deadline = time.monotonic() + 30
    while list(scratch.glob("invoice-sync-part-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    named = list(scratch.glob("invoice-sync-part-*"))
    transactions += list(stream)

    assert named == [], "every child has opened its parts and removed their names"
    assert transactions == parsed(tmp_path / "many.xml", 0)[0]
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("cut", [True, False])
def test_a_child_that_dies_fails_the_stream_with_a_message(tmp_path: Path, cut: bool) -> None:
    write_camt053(tmp_path / "many.xml", ACCOUNT, [payments(20_000)])
    bank_file = InChildProcess(open_bank_file(tmp_path / "many.xml"), 2, cut=cut)
    stream = bank_file.transactions()
    next(stream)
    for child in bank_file.children:  # the one reading the first part is still at it
        child.kill()

    expected = SplitFailed if cut else ParserProcessDied
    with pytest.raises(expected, match=r"many\.xml ended unexpectedly \(exit code -9\)"):
        for _ in stream:
            pass


@pytest.fixture(autouse=True)
def every_file_in_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports here go through the parsing processes whatever the file's size."""
    monkeypatch.setattr(bank_import, "IN_CHILD_FROM_BYTES", 0)


def test_an_import_through_a_child_writes_every_transaction_once(
    store: BankStore, tmp_path: Path
) -> None:
    many = payments(2500)
    write_camt053(tmp_path / "a.xml", ACCOUNT, [many[:1500], many[1500:]])

    first = import_bank_file(store, tmp_path / "a.xml")
    again = import_bank_file(store, tmp_path / "a.xml")

    assert (first.status, first.new, first.present, first.statements) == ("ok", 2500, 0, 2)
    assert first.balance_check == "ok" and first.accounts == (ACCOUNT,)
    assert (again.new, again.present) == (0, 2500)
    with store.engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.sum(bank_transactions.c.amount))).scalar()
    assert total == sum((t.amount for t in many), Decimal(0))


def test_a_broken_file_through_a_child_imports_nothing(store: BankStore, tmp_path: Path) -> None:
    write_camt053(tmp_path / "whole.xml", ACCOUNT, [payments(4000)])
    text = (tmp_path / "whole.xml").read_text()
    (tmp_path / "cut.xml").write_text(text[: len(text) * 3 // 4])

    result = import_bank_file(store, tmp_path / "cut.xml")

    with pytest.raises(BankFileError) as in_process:
        list(open_bank_file(tmp_path / "cut.xml").transactions())
    assert result.status == "failed" and result.error == str(in_process.value)
    with store.engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(bank_transactions))
        assert count.scalar() == 0


@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("broken", [0, 1, 1501, 2999])
def test_an_entry_that_breaks_is_reported_as_in_process_whichever_process_read_it(
    tmp_path: Path, processes: int, broken: int
) -> None:
    write_camt053(tmp_path / "whole.xml", ACCOUNT, [payments(1500), payments(1500)])
    parts = (tmp_path / "whole.xml").read_text().split('<Amt Ccy="EUR">')
    at = broken + 3 + (2 if broken >= 1500 else 0)  # each statement's two balances come first
    parts[at] = parts[at].replace(".25<", ",25<", 1)
    (tmp_path / "bad.xml").write_text('<Amt Ccy="EUR">'.join(parts))

    here = parsed(tmp_path / "bad.xml", 0)
    there = parsed(tmp_path / "bad.xml", processes)

    assert there == here
    assert "is not a decimal amount" in str(here[0][0])
    assert f"Ntry[{broken % 1500 + 1}]" in str(here[0][0])


@pytest.mark.parametrize("broken", [5, 3990])
def test_an_import_of_a_cut_file_that_breaks_says_what_the_whole_file_says(
    store: BankStore, tmp_path: Path, broken: int
) -> None:
    write_camt053(tmp_path / "whole.xml", ACCOUNT, [payments(4000)])
    parts = (tmp_path / "whole.xml").read_text().split('<Amt Ccy="EUR">')
    parts[broken + 3] = parts[broken + 3].replace(".25<", ",25<", 1)
    (tmp_path / "bad.xml").write_text('<Amt Ccy="EUR">'.join(parts))

    result = import_bank_file(store, tmp_path / "bad.xml")

    with pytest.raises(BankFileError) as in_process:
        list(open_bank_file(tmp_path / "bad.xml").transactions())
    assert result.status == "failed" and result.error == str(in_process.value)
    assert f"Ntry[{broken + 1}]" in result.error


@pytest.mark.parametrize(
    "opaque",
    [
        "<!-- </Ntry> <Ntry> -->",
        "<?pi </Ntry> <Ntry>?>",
        "<AddtlInf><![CDATA[</Ntry> <Ntry>]]></AddtlInf>",
    ],
)
def test_a_file_with_comments_cdata_or_instructions_is_not_cut(tmp_path: Path, opaque: str) -> None:
    """In them a `<` need not start a tag, so the byte scan could cut inside one."""
    write_camt053(tmp_path / "plain.xml", ACCOUNT, [payments(3000)])
    text = (tmp_path / "plain.xml").read_text()
    middle = text.index("<Ntry>", len(text) // 2)
    (tmp_path / "odd.xml").write_text(text[:middle] + opaque + text[middle:])

    assert open_bank_file(tmp_path / "plain.xml").cut(2) is not None
    assert open_bank_file(tmp_path / "odd.xml").cut(2) is None
    here = parsed(tmp_path / "odd.xml", 0)
    assert parsed(tmp_path / "odd.xml", 2, cut=True) == here
    assert len(here[0]) == 3000


def test_the_inbox_imports_through_child_processes(store: BankStore, tmp_path: Path) -> None:
    """The daemon's inbox calls the same import: large files go through the children too."""
    from workers.inbox import scan_inbox

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_camt053(inbox / "big.xml", ACCOUNT, [payments(1200), payments(900)])
    text = (inbox / "big.xml").read_text()
    (inbox / "cut.xml").write_text(text[: len(text) // 2])

    results = {r.file: r for r in scan_inbox(store, inbox, settle=0.05)}

    big = results["big.xml"]  # the second statement repeats the first's first 900 payments
    assert (big.status, big.new, big.present, big.statements) == ("ok", 1200, 900, 2)
    assert results["cut.xml"].status == "failed" and "malformed XML" in (
        results["cut.xml"].error or ""
    )
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["big.xml"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["cut.xml", "cut.xml.error"]


@pytest.mark.parametrize("broken", [10, 700, 1199])
def test_mt940_batches_read_by_two_processes_fail_as_in_process(
    tmp_path: Path, broken: int
) -> None:
    """MT940 is shared by batches of `:61:` lines: each process reads every line, and hands
    every other batch to the package; a batch that breaks says what it says in process."""
    write_mt940(tmp_path / "a.sta", ACCOUNT, [payments(1200)])
    whole = parsed(tmp_path / "a.sta", 0)
    lines = (tmp_path / "a.sta").read_bytes().decode().split("\r\n")
    statement_lines = [n for n, line in enumerate(lines) if line.startswith(":61:")]
    at = statement_lines[broken]
    lines[at] = lines[at].replace(",", "x", 1)  # an amount that is no amount
    (tmp_path / "bad.sta").write_bytes("\r\n".join(lines).encode())

    assert len(whole[0]) == 1200 and parsed(tmp_path / "a.sta", 2) == whole
    here = parsed(tmp_path / "bad.sta", 0)
    assert isinstance(here[0][0], str) and f"line {at + 1}" in here[0][0]
    assert parsed(tmp_path / "bad.sta", 2) == here


def _frames(data: bytes) -> list[tuple[str, object, int]]:
    frames = []
    while len(data) >= 8:
        size = int.from_bytes(data[:8], "little")
        frames.append(pickle.loads(data[8 : 8 + size]))
        data = data[8 + size :]
    return frames


def _ended(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.parametrize("orphaned", [True, False])
def test_a_child_whose_importer_was_killed_stops_at_its_next_chunk(
    tmp_path: Path, orphaned: bool
) -> None:
    """A part goes to a file, which a killed importer does not close: the child finds itself
    orphaned before its next message and stops, instead of parsing the rest for nobody."""
    write_camt053(tmp_path / "many.xml", ACCOUNT, [payments(8000)])
    output = tmp_path / "part-0"
    output.touch()
    start = (
        "import os, subprocess, sys; "
        "from connectors.bank.child_process import PARENT_PID_ENV; "
        "child = subprocess.Popen([sys.executable, '-m', 'connectors.bank.child_process', "
        f"'connectors.bank.camt053:Camt053File', {str(tmp_path / 'many.xml')!r}, 'part', '2', "
        f"'0:{output}'], env={{**os.environ, PARENT_PID_ENV: str(os.getpid())}}); "
        "print(child.pid, flush=True); " + ("" if orphaned else "child.wait()")
    )
    with output.open("rb") as written:  # the importer's own handle, as `_part_file` keeps
        parent = subprocess.run(
            [sys.executable, "-c", start], capture_output=True, text=True, check=True, timeout=120
        )
        child = int(parent.stdout.split()[0])
        deadline = time.monotonic() + 60
        while not _ended(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        frames = _frames(written.read())

    assert _ended(child)
    kinds = [kind for kind, _payload, _position in frames]
    if orphaned:
        assert kinds == [], "stopped before sending anything: its importer had gone"
    else:
        assert kinds[-1] == "done" and set(kinds[:-1]) == {"chunk"}, "the whole part, sent"
        assert len(kinds) >= 4, "about half of 8,000 entries, 1,000 a chunk"
