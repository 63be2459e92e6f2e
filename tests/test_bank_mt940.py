"""MT940 parsing: the real Dutch samples, our own fixtures per dialect, broken files and fuzz.

Expected values were read off the files by hand, not copied from the parser's output.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.bank import mt940
from connectors.bank.mt940 import Mt940File, sniff
from connectors.bank.records import BankFileError, BankTransaction, StatementSummary
from tests.bankparsing import FUZZ, parses_or_refuses

DATA = Path(__file__).parent / "data" / "bankfiles"
OURS = DATA / "ours"

SAMPLES = sorted(DATA.glob("mt940_*")) + sorted(OURS.glob("mt940_*"))


def read(path: Path) -> tuple[list[BankTransaction], list[StatementSummary]]:
    assert sniff(path, path.read_bytes()[:4096]) is Mt940File
    parsed = Mt940File(path)
    transactions = list(parsed.transactions())
    return transactions, parsed.statements


def parse_error(path: Path) -> BankFileError:
    with pytest.raises(BankFileError) as caught:
        list(Mt940File(path).transactions())
    return caught.value


# --- the public samples -------------------------------------------------------------------


def test_abnamro_legacy() -> None:
    txs, statements = read(DATA / "mt940_abnamro_legacy.sta")

    assert len(txs) == 10
    assert [s.transactions for s in statements] == [8, 2]
    assert [s.total for s in statements] == [Decimal("-321.44"), Decimal("-24.49")]
    assert [s.account for s in statements] == ["517852257", "517852257"]
    assert [s.statement_id for s in statements] == [
        "ABN AMRO BANK NV/19321/1",
        "ABN AMRO BANK NV/19322/1",
    ]
    assert [(s.opening_balance, s.closing_balance) for s in statements] == [
        (Decimal("3236.28"), Decimal("876.84")),
        (Decimal("2876.84"), Decimal("1849.75")),
    ]
    first = txs[0]
    assert first.amount == Decimal("-9") and first.currency == "EUR"
    assert first.payment_reference == "000000042188659"
    assert first.payment_reference_issuer == "CUR"
    assert first.description == (
        "GIRO 428428 KPN - DIGITENNE BETALINGSKENM. 000000042188659 5314606715 "
        "BETREFT FACTUUR D.D. 20-05-2011 INCL. 1,44 BTW"
    )
    assert first.bank_reference is None, "NONREF is a customer reference, not the bank's id"
    # :61:1105210523D11,59: value date 21 May, entered 23 May
    assert (txs[1].value_date, txs[1].booking_date) == (dt.date(2011, 5, 21), dt.date(2011, 5, 23))
    assert txs[-1].description == "52.89.39.882 MYCOM DEN HAAG"
    assert [t.statement for t in txs] == [0] * 8 + [1] * 2


def test_rabobank_iban() -> None:
    txs, statements = read(DATA / "mt940_rabobank_iban.sta")

    assert len(txs) == 4
    assert sum(t.amount for t in txs) == Decimal("-70.00")
    assert [(s.opening_balance, s.closing_balance) for s in statements] == [
        (Decimal("1000.00"), Decimal("965.00")),
        (Decimal("965.00"), Decimal("930.00")),
    ]
    assert all(s.balance_problem() is None for s in statements)
    assert {s.account for s in statements} == {"NL71RABO0123456789"}
    first, second = txs[0], txs[1]
    assert first.end_to_end_id == "01-01-2013 12:00 0030000987654321"
    # the :86: line ends 'CONTRA ACCOUN' and continues 'T HOLDER'
    assert first.counterparty_name == "CONTRA ACCOUNT HOLDER"
    assert first.counterparty_iban == "NL70ABNA0987654321", "from the line after :61:"
    assert first.description is None, "/REMI/ is empty"
    assert second.counterparty_name == "JOHN DOE"
    assert second.counterparty_iban is None, "P001234567 is no IBAN"
    assert second.description == "Reference 201301234"
    assert second.end_to_end_id is None
    assert txs[2].end_to_end_id == "08-01-2013 12:00 0030000987654321"
    assert [t.booking_date for t in txs] == [
        dt.date(2013, 1, 1),
        dt.date(2013, 1, 2),
        dt.date(2013, 1, 8),
        dt.date(2013, 1, 9),
    ]


def test_knab() -> None:
    txs, statements = read(DATA / "mt940_knab.sta")

    assert [t.amount for t in txs] == [Decimal("500"), Decimal("-7260"), Decimal("500")]
    assert [(s.opening_balance, s.closing_balance) for s in statements] == [
        (Decimal("0"), Decimal("500")),
        (Decimal("3058.98"), Decimal("798.98")),
    ]
    assert [t.bank_reference for t in txs] == [
        "B4E07XM00J000023",
        "B4G29PGCVO7Q06US",
        "B4G29PGDCK1QFV3E",
    ]
    assert txs[0].description == (
        "HIER EEN MOOIE OMSCHRIJVING IN HOOFDLETTERS "
        "WANT DAT IS ZOALS DE NEDERLANDSE BANKEN COMMUNICEREN"
    )
    assert (txs[1].counterparty_iban, txs[1].counterparty_name) == ("NL65INGB0123456789", "PICQER")
    assert (txs[2].counterparty_iban, txs[2].counterparty_name) == (
        "NL84INGB0234561789",
        "MMS ONLINE NEDERLAND B.V.",
    )
    assert statements[0].account == "123456789"


def test_triodos() -> None:
    txs, statements = read(DATA / "mt940_triodos.sta")

    assert [t.amount for t in txs] == [Decimal("-15.70"), Decimal("-700.00")]
    assert statements[0].account == "TRIODOSBANK/0390123456"
    assert txs[0].account_iban == "TRIODOSBANK/0390123456"
    assert (statements[0].opening_balance, statements[0].closing_balance) == (
        Decimal("4975.09"),
        Decimal("4370.79"),
    )
    assert statements[0].total == Decimal("-715.70"), "the sample does not balance; we report it"
    # >20, >21 and >22 are 27-character pieces of one text
    assert (
        txs[0].description == "ALGEMENE TUSSENREKENING KOSTEN VAN 01-10-2010 TOT EN MET 31-12-2010"
    )
    assert txs[0].counterparty_iban == "0390123456"
    assert txs[1].description == "HUUR KANTOOR - FEB 2010"
    assert txs[1].counterparty_iban is None


def test_asn() -> None:
    txs, statements = read(DATA / "mt940_asn.940.txt")

    assert len(statements) == 31, "one statement per day, most of them empty"
    assert sum(s.transactions for s in statements) == len(txs) == 8
    assert [t.amount for t in txs] == [
        Decimal("-65.00"),
        Decimal("1000.00"),
        Decimal("-801.55"),
        Decimal("-1.65"),
        Decimal("828.72"),
        Decimal("-1000.00"),
        Decimal("1000.18"),
        Decimal("-903.76"),
    ]
    assert (statements[0].opening_balance, statements[-1].closing_balance) == (
        Decimal("444.29"),
        Decimal("501.23"),
    )
    assert all(s.balance_problem() is None for s in statements)
    assert {s.account for s in statements} == {"NL81ASNB9999999999"}
    first = txs[0]
    assert (first.counterparty_iban, first.counterparty_name) == (
        "NL47INGB9999999999",
        "hr gjlm paulissen",
    )
    assert first.description == "NL47INGB9999999999 hr gjlm paulissen Betaling sieraden"
    # 'Betaling aan I' fills its line to 65 characters; the next line goes on with 'CS'
    assert "Betaling aan ICS 99999999999" in (txs[2].description or "")
    assert "Transfer Solutions BV-DIVIDEND 28/01/2020" in (txs[4].description or "")
    assert txs[3].counterparty_iban is None and txs[3].description == (
        "Kosten gebruik betaalrekening inclusief 1 betaalpas"
    )
    assert txs[3].statement == 24


def test_raw_is_the_transactions_lines_verbatim() -> None:
    txs, _ = read(DATA / "mt940_asn.940.txt")
    lines = (DATA / "mt940_asn.940.txt").read_text().splitlines()
    start = lines.index(":61:2001010101D65,00NOVBNL47INGB9999999999")
    assert txs[0].raw == "\n".join(lines[start : start + 8])
    assert txs[0].raw.endswith("Betaling sieraden" + " " * 48 + ("\n" + " " * 65) * 3)


# --- our own fixtures ----------------------------------------------------------------------


def check_rabobank_structured(path: Path) -> None:
    txs, statements = read(path)
    assert len(statements) == 2 and statements[1].transactions == 0
    assert [(s.opening_balance, s.closing_balance) for s in statements] == [
        (Decimal("2500.00"), Decimal("3062.65")),
        (Decimal("3062.65"), Decimal("3062.65")),
    ]
    assert {s.account for s in statements} == {"NL44RABO0123456789"}, "' EUR' dropped"
    assert [t.amount for t in txs] == [Decimal("605.00"), Decimal("-42.35")]
    paid, spent = txs
    assert paid.end_to_end_id == "E2E-2026-0007"
    assert (paid.counterparty_name, paid.counterparty_iban) == (
        "Bakkerij de Wit B.V.",
        "NL20INGB0001234567",
    )
    assert paid.description == "Factuur 2026-0007 en factuur 2026-0008 per maart"
    assert (spent.counterparty_name, spent.counterparty_iban) == (
        "Drukkerij Vos",
        "NL91ABNA0417164300",
    )
    assert spent.description == "Klantnummer 5521 drukwerk februari"
    assert "\r" not in paid.raw and paid.raw.startswith(":61:260302C000000000605,00N541NONREF\n")


def test_rabobank_structured_crlf() -> None:
    path = OURS / "mt940_rabobank_structured_crlf.swi"
    assert b"\r\n" in path.read_bytes()
    check_rabobank_structured(path)


def test_ing_sepa() -> None:
    txs, statements = read(OURS / "mt940_ing_sepa.sta")

    (statement,) = statements
    assert statement.account == "NL69INGB0123456789", "ING's glued 'EUR' is dropped"
    assert (statement.opening_balance, statement.closing_balance) == (
        Decimal("1500.00"),
        Decimal("2620.05"),
    )
    assert statement.balance_problem() is None
    structured, free = txs
    assert structured.amount == Decimal("1210.00")
    assert structured.payment_reference == "12234534622567"
    assert structured.payment_reference_issuer == "CUR"
    assert structured.description is None
    assert structured.end_to_end_id == "INV-2026-0003-E2E"
    assert (structured.counterparty_iban, structured.counterparty_name) == (
        "NL20INGB0001234567",
        "BAKKERIJ DE WIT B.V.",
    )
    assert structured.bank_reference == "26064000123456"
    assert free.amount == Decimal("-89.95")
    assert free.end_to_end_id is None, "NOTPROVIDED"
    assert free.description == "Factuur F2026-0042 klantnr 8812, bedankt voor uw bestelling"
    assert free.counterparty_name == "KANTOORHANDEL JANSEN"
    assert free.bank_reference == "26064000123457"


def test_abnamro_sepa() -> None:
    txs, statements = read(OURS / "mt940_abnamro_sepa.sta")

    assert statements[0].account == "NL91ABNA0417164300"
    assert statements[0].balance_problem() is None
    received, paid = txs
    assert received.amount == Decimal("2450.00")
    assert (received.counterparty_iban, received.counterparty_name) == (
        "NL36INGB0007654321",
        "JANSEN EN ZN B.V.",
    )
    assert received.description == "FACTUUR 2026-0011 KLANTNUMMER 4471"
    assert received.end_to_end_id == "JZ-2026-0311-01", "wrapped as 'JZ' + '-2026-0311-01'"
    assert paid.amount == Decimal("-120.00") and paid.end_to_end_id is None
    assert paid.counterparty_name == "VERHUUR PAND" and paid.description == "HUUR MAART 2026"


def test_returned_direct_debit() -> None:
    txs, statements = read(OURS / "mt940_return_ac06.sta")

    collected, returned = txs
    assert collected.return_reason is None and collected.amount == Decimal("95.00")
    assert returned.return_reason == "AC06"
    assert returned.amount == Decimal("-95.00")
    assert returned.end_to_end_id == collected.end_to_end_id == "DD-2026-0020"
    assert returned.counterparty_iban == "NL20INGB0001234567"
    assert statements[0].total == Decimal("0.00")
    assert statements[0].balance_problem() is None


def test_reversals() -> None:
    txs, statements = read(OURS / "mt940_reversals.sta")

    rd, rc, plain = txs
    assert (rd.amount, rd.reversal) == (Decimal("25.00"), True), "RD: a debit undone, money in"
    assert (rc.amount, rc.reversal) == (Decimal("-40.00"), True), "RC: a credit undone, money out"
    assert (plain.amount, plain.reversal) == (Decimal("10.00"), False)
    assert plain.bank_reference is None, "//NONREF is no reference"
    assert statements[0].balance_problem() is None


def test_mt942_is_refused_by_name() -> None:
    path = OURS / "mt942_interim_ing.sta"
    with pytest.raises(BankFileError, match="MT942") as sniffed:
        sniff(path, path.read_bytes()[:4096])
    assert sniffed.value.format == "MT942"
    assert "MT942" in str(parse_error(path))


def test_mt942_without_block_header_is_refused(tmp_path: Path) -> None:
    text = (OURS / "mt942_interim_ing.sta").read_text().splitlines()[1:]
    path = tmp_path / "interim.sta"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(BankFileError, match="MT942"):
        sniff(path, path.read_bytes())
    assert "line 4" in str(parse_error(path)), ":34F: is on line 4"

    abn = tmp_path / "abn942.sta"
    abn.write_text("ABNANL2A\n942\nABNANL2A\n" + "\n".join(text) + "\n")
    with pytest.raises(BankFileError, match="MT942"):
        sniff(abn, abn.read_bytes())


def test_an_mt942_message_later_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.sta"
    ing = (OURS / "mt940_ing_sepa.sta").read_text()
    path.write_text(ing + (OURS / "mt942_interim_ing.sta").read_text())
    error = parse_error(path)
    assert "MT942" in str(error) and "line 20" in str(error), "the ING file has 19 lines"


def test_other_content_is_not_mt940(tmp_path: Path) -> None:
    for other in DATA.glob("c*"):
        assert sniff(other, other.read_bytes()[:4096]) is None
    text = tmp_path / "notes.txt"
    text.write_bytes(b"just some text\n:20: but no account\n")
    assert sniff(text, text.read_bytes()) is None
    other_mt = tmp_path / "mt950.sta"
    other_mt.write_bytes(b"{1:F01INGBNL2AXXXX0000000000}{2:O950INGBNL2AXXXXN}{4:\n:20:X\n")
    with pytest.raises(BankFileError, match="MT950"):
        sniff(other_mt, other_mt.read_bytes())


# --- broken and unusual files -------------------------------------------------------------


def test_a_file_cut_in_the_middle_of_a_61_names_the_line(tmp_path: Path) -> None:
    lines = (OURS / "mt940_ing_sepa.sta").read_text().splitlines()
    assert lines[9].startswith(":61:2603050305D89,95")
    cut = tmp_path / "cut.sta"

    cut.write_text("\n".join(lines[:9]) + "\n:61:2603050305D89")
    error = parse_error(cut)
    assert error.where == "line 10" and "transaction type" in error.problem

    cut.write_text("\n".join(lines[:9]) + "\n:61:2603050305D89,95NDDTEREF//2606")
    error = parse_error(cut)
    assert error.where == "line 10" and "without a closing balance" in error.problem
    assert "starts on line 2" in error.problem


def test_a_bad_amount_names_line_and_value(tmp_path: Path) -> None:
    text = (DATA / "mt940_knab.sta").read_text()
    path = tmp_path / "bad.sta"
    path.write_text(text.replace(":61:1405070507C500,NTRF", ":61:1405070507C12x,5NTRF"))
    error = parse_error(path)
    assert str(error) == "bad.sta: mt940: line 5: :61: amount '12x,5' is not an amount"

    path.write_text(text.replace(":60F:C140729EUR3058,98", ":60F:C140729EUR30.58,98"))
    assert parse_error(path).where == "line 13"


def test_bad_dates_are_errors_not_crashes(tmp_path: Path) -> None:
    text = (DATA / "mt940_knab.sta").read_text()
    path = tmp_path / "bad.sta"
    path.write_text(text.replace(":61:1405070507", ":61:1413070507"))
    assert "value date '141307'" in str(parse_error(path))
    path.write_text(text.replace(":62F:C140508", ":62F:C140532"))
    assert parse_error(path).where == "line 8"


def test_the_booking_date_takes_the_year_across_new_year(tmp_path: Path) -> None:
    path = tmp_path / "newyear.sta"
    path.write_text(
        ":20:Y\n:25:NL69INGB0123456789\n:60F:C251231EUR0,00\n"
        ":61:2512310102C1,00NTRFNONREF\n:86:late\n"
        ":61:2601021231C2,00NTRFNONREF\n:86:early\n:62F:C260102EUR3,00\n-\n"
    )
    txs, _ = read(path)
    assert (txs[0].value_date, txs[0].booking_date) == (dt.date(2025, 12, 31), dt.date(2026, 1, 2))
    assert (txs[1].value_date, txs[1].booking_date) == (dt.date(2026, 1, 2), dt.date(2025, 12, 31))


def test_latin1_and_utf8(tmp_path: Path) -> None:
    body = (
        ":20:L\n:25:NL69INGB0123456789\n:60F:C260101EUR0,00\n"
        ":61:260102C5,00NTRFNONREF\n:86:/REMI/USTD//Caf\u00e9 M\u00fcller factuur 7/\n"
        ":62F:C260102EUR5,00\n-\n"
    )
    latin1 = tmp_path / "latin1.sta"
    latin1.write_bytes(body.encode("latin-1"))
    utf8 = tmp_path / "utf8.sta"
    utf8.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    for path in (latin1, utf8):
        ((tx,), _) = read(path)
        assert tx.description == "Caf\u00e9 M\u00fcller factuur 7"


def test_garbage_between_statements_is_an_error(tmp_path: Path) -> None:
    text = (DATA / "mt940_knab.sta").read_text().replace("-\n:20:B4G", "-\nhello there\n:20:B4G")
    path = tmp_path / "garbage.sta"
    path.write_text(text)
    error = parse_error(path)
    assert error.where == "line 10" and "outside a statement" in error.problem


def test_a_file_without_statements_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.sta"
    path.write_text(":940:\n\n")
    assert "no statement" in parse_error(path).problem


def test_a_line_far_too_long_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "long.sta"
    path.write_text(":20:X\n:25:NL69INGB0123456789\n:86:" + "A" * 100_000 + "\n")
    assert parse_error(path).where == "line 3"


def test_summaries_fill_while_streaming() -> None:
    parsed = Mt940File(DATA / "mt940_knab.sta")
    stream = parsed.transactions()
    next(stream)
    assert parsed.statements[0].transactions == 1
    assert parsed.statements[0].total == Decimal("500")
    rest = list(stream)
    assert len(rest) == 2 and parsed.statements[1].transactions == 2
    assert parsed.statements[1].total == Decimal("-6760")


def write_big(path: Path, count: int) -> None:
    with path.open("w") as handle:
        handle.write(":940:\n:20:BIG\n:25:NL44RABO0123456789 EUR\n:28C:1\n:60F:C260101EUR0,00\n")
        for n in range(count):
            handle.write(f":61:260102C1,00N541NONREF//B{n:014d}\nNL20INGB0001234567\n")
            handle.write(
                f":86:/EREF/E2E{n:012d}/ORDP//NAME/Klant {n} B.V./REMI/Factuur 2026-{n:05d}"
                " betaling van de\nmaand maart/ISDT/2026-01-02\n"
            )
        handle.write(f":62F:C260102EUR{count},00\n")


def peak_memory(path: Path) -> tuple[int, StatementSummary]:
    parsed = Mt940File(path)
    tracemalloc.start()
    try:
        for _ in parsed.transactions():
            pass
        return tracemalloc.get_traced_memory()[1], parsed.statements[0]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_for_a_huge_statement(tmp_path: Path) -> None:
    write_big(tmp_path / "small.sta", 1_000)
    write_big(tmp_path / "large.sta", 10_000)
    small, _ = peak_memory(tmp_path / "small.sta")
    large, summary = peak_memory(tmp_path / "large.sta")
    assert summary.transactions == 10_000 and summary.balance_problem() is None
    assert large < small + 512 * 1024, (small, large)


# --- fuzz -----------------------------------------------------------------------------------


@FUZZ
@given(content=st.binary(max_size=2000))
def test_fuzz_any_bytes(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "fuzz.sta").write_bytes(content)
    parses_or_refuses(mt940, Mt940File, tmp_path / "fuzz.sta")


SAMPLE_BYTES = [p.read_bytes() for p in SAMPLES]


def mutation() -> st.SearchStrategy[Callable[[bytes], bytes]]:
    def truncate(at: int) -> Callable[[bytes], bytes]:
        return lambda data: data[: at % (len(data) + 1)]

    def flip(at: int, value: int) -> Callable[[bytes], bytes]:
        def apply(data: bytes) -> bytes:
            if not data:
                return data
            i = at % len(data)
            return data[:i] + bytes([value]) + data[i + 1 :]

        return apply

    def delete_line(at: int) -> Callable[[bytes], bytes]:
        def apply(data: bytes) -> bytes:
            lines = data.split(b"\n")
            del lines[at % len(lines)]
            return b"\n".join(lines)

        return apply

    def duplicate_line(at: int) -> Callable[[bytes], bytes]:
        def apply(data: bytes) -> bytes:
            lines = data.split(b"\n")
            i = at % len(lines)
            return b"\n".join(lines[: i + 1] + lines[i:])

        return apply

    position = st.integers(min_value=0, max_value=100_000)
    return st.one_of(
        position.map(truncate),
        st.builds(flip, position, st.integers(0, 255)),
        st.builds(flip, position, st.sampled_from(b":-/,\n\r{}CDR0123456789 ")),
        position.map(delete_line),
        position.map(duplicate_line),
    )


@FUZZ
@given(
    sample=st.sampled_from(SAMPLE_BYTES),
    mutations=st.lists(mutation(), min_size=1, max_size=4),
)
def test_fuzz_mutated_samples(
    tmp_path: Path, sample: bytes, mutations: list[Callable[[bytes], bytes]]
) -> None:
    for mutate in mutations:
        sample = mutate(sample)
    (tmp_path / "mutated.sta").write_bytes(sample)
    parses_or_refuses(mt940, Mt940File, tmp_path / "mutated.sta")


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_parses_and_sums(path: Path) -> None:
    txs, statements = read(path)
    assert statements, "at least one statement"
    assert sum(s.transactions for s in statements) == len(txs)
    assert sum((s.total for s in statements), Decimal(0)) == sum(
        (t.amount for t in txs), Decimal(0)
    )
    for tx in txs:
        assert tx.currency == "EUR" and tx.raw.startswith(":61:")
        assert tx.account_iban == statements[tx.statement].account
