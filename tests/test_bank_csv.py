"""Bank CSV exports (Rabobank, ING): the real sample, our fixtures, errors and fuzzing.

Expected values were read off the CSV files by hand, not copied from the parser's output.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.bank import csv_export
from connectors.bank.base import HEAD_BYTES, BankFile
from connectors.bank.records import BankFileError, BankTransaction
from tests.bankparsing import FUZZ, open_with, parse_with, parses_or_refuses

DATA = Path(__file__).parent / "data" / "bankfiles"
RABO_SAMPLE = DATA / "csv_rabobank_nl_headers.csv"
RABO_OURS = DATA / "ours" / "csv_rabobank_betalingskenmerk.csv"
ING = DATA / "ours" / "csv_ing_semicolon.csv"
ING_NO_ACCOUNT = DATA / "ours" / "csv_ing_no_account.csv"

ING_HEADER = (
    '"Datum";"Naam / Omschrijving";"Rekening";"Tegenrekening";"Code";"Af Bij";"Bedrag (EUR)";'
    '"Mutatiesoort";"Mededelingen"'
)
RABO_HEADER = RABO_OURS.read_bytes().split(b"\r\n", 1)[0].decode("latin-1")


def open_csv(path: Path) -> BankFile:
    return open_with(csv_export, csv_export.CsvExport, path)


def parse(path: Path) -> tuple[BankFile, list[BankTransaction]]:
    return parse_with(csv_export, csv_export.CsvExport, path)


def write(tmp_path: Path, text: str | bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def ing_row(date: str = "20261127", direction: str = "Bij", amount: str = "10,00") -> str:
    return (
        f'"{date}";"Klant";"NL69INGB0123456789";"NL91ABNA0417164300";"OV";"{direction}";'
        f'"{amount}";"Overschrijving";"Naam: Klant Omschrijving: F1"'
    )


def rabo_row(number: str, amount: str, balance: str, account: str = "NL44RABO0123456789") -> str:
    fields = [account, "EUR", "RABONL2U", number, "2026-11-27", "2026-11-27", amount, balance]
    return ",".join(f'"{f}"' for f in fields + [""] * 18)


# -- the real sample ----------------------------------------------------------------------------


def test_rabobank_sample() -> None:
    bank_file, transactions = parse(RABO_SAMPLE)
    assert [t.amount for t in transactions] == [
        Decimal("442.98"),
        Decimal("-30.00"),
        Decimal("-435.00"),
        Decimal("-41.93"),
        Decimal("-241.00"),
    ]
    assert sum(t.amount for t in transactions) == Decimal("-304.95")
    assert {t.account_iban for t in transactions} == {"NL00RABO1234567890"}
    assert {t.currency for t in transactions} == {"EUR"}
    assert [t.bank_reference for t in transactions] == [
        f"NL00RABO1234567890/00000000000000{n}" for n in range(6408, 6413)
    ]
    assert [t.end_to_end_id for t in transactions] == [
        "NY00012345678901234567890",
        None,
        None,
        "12345678",
        "R-123456789012",
    ]
    assert {t.payment_reference for t in transactions} == {None}
    assert [t.counterparty_name for t in transactions] == [f"Tegenpartij {n}" for n in range(1, 6)]
    assert transactions[3].counterparty_iban == "NL01INGB1234567890"
    assert transactions[2].description == "Lorem ipsum"  # the " " of Omschrijving-2 is dropped
    assert {t.booking_date for t in transactions} == {dt.date(2020, 7, 1)}
    assert transactions[0].raw.startswith(
        '"NL00RABO1234567890","EUR","RABONL2U","000000000000006408"'
    )
    (summary,) = bank_file.statements
    # Saldo na trn: first 3436,04 after +442,98; last 2688,11
    assert (summary.opening_balance, summary.closing_balance) == (
        Decimal("2993.06"),
        Decimal("2688.11"),
    )
    assert (summary.transactions, summary.total) == (5, Decimal("-304.95"))
    assert summary.balance_problem() is None


# -- our fixtures -------------------------------------------------------------------------------


def test_rabobank_with_betalingskenmerk() -> None:
    bank_file, transactions = parse(RABO_OURS)
    assert [t.amount for t in transactions] == [
        Decimal("121.00"),
        Decimal("-45.50"),
        Decimal("45.50"),
        Decimal("-12.50"),
    ]
    paid = transactions[0]
    assert (paid.payment_reference, paid.payment_reference_issuer) == ("8000020260000415", "CUR")
    assert paid.end_to_end_id == "E2E-2026-0003"
    assert paid.description == "Factuur 2026-0003"
    assert paid.bank_reference == "NL44RABO0123456789/000000000000000101"
    returned = transactions[2]
    assert returned.return_reason == "AC06"
    assert returned.description == "Terugboeking Termijn november"
    card = transactions[3]
    assert card.counterparty_name == "Café De Hoek"  # latin-1 decoded
    assert card.counterparty_iban is None
    (summary,) = bank_file.statements
    assert (summary.opening_balance, summary.closing_balance) == (
        Decimal("1000.00"),
        Decimal("1108.50"),
    )
    assert (summary.transactions, summary.total) == (4, Decimal("108.50"))


def test_ing_semicolon_newest_first() -> None:
    bank_file, transactions = parse(ING)
    assert [t.amount for t in transactions] == [
        Decimal("-60.00"),
        Decimal("121.00"),
        Decimal("-35.50"),
    ]
    assert sum(t.amount for t in transactions) == Decimal("25.50")
    assert {t.account_iban for t in transactions} == {"NL69INGB0123456789"}
    assert {t.bank_reference for t in transactions} == {None}
    debit, credit, card = transactions
    assert debit.end_to_end_id == "DD-2026-12-0042"  # a Kenmerk that is no betalingskenmerk
    assert debit.payment_reference is None
    assert debit.description == "Termijn december"
    assert (credit.payment_reference, credit.payment_reference_issuer) == (
        "8000020260000415",
        "CUR",
    )
    assert (credit.counterparty_name, credit.counterparty_iban) == (
        "Klant B.V.",
        "NL91ABNA0417164300",
    )
    assert credit.description == "Factuur 2026-0003"
    assert credit.value_date == dt.date(2026, 11, 27)
    assert card.counterparty_iban is None
    assert card.booking_date == dt.date(2026, 11, 26)
    assert card.description is not None and card.description.startswith("Pasvolgnr: 001")
    (summary,) = bank_file.statements
    # newest first: opening = oldest saldo 964,50 before -35,50; closing = newest saldo 1025,50
    assert (summary.opening_balance, summary.closing_balance) == (
        Decimal("1000.00"),
        Decimal("1025.50"),
    )
    assert summary.balance_problem() is None


def test_ing_without_account_column() -> None:
    bank_file, transactions = parse(ING_NO_ACCOUNT)
    assert [t.amount for t in transactions] == [Decimal("1250.00"), Decimal("-99.95")]
    assert {t.account_iban for t in transactions} == {None}
    assert transactions[0].description == "F2026-0007 en F2026-0008"
    # "Kenmerk: 8000 0202 6000 0415": 16 digits once the spaces are gone
    assert transactions[1].payment_reference == "8000020260000415"
    assert transactions[1].payment_reference_issuer == "CUR"
    (summary,) = bank_file.statements
    assert summary.account is None
    assert (summary.opening_balance, summary.closing_balance) == (None, None)
    assert (summary.transactions, summary.total) == (2, Decimal("1150.05"))


# -- detection ----------------------------------------------------------------------------------


def test_detected_from_the_header_not_the_name(tmp_path: Path) -> None:
    path = write(tmp_path, ING.read_bytes(), "statement.txt")
    assert csv_export.sniff(path, path.read_bytes()[:HEAD_BYTES]) is csv_export.CsvExport


def test_english_ing_header(tmp_path: Path) -> None:
    header = (
        '"Date","Name / Description","Account","Counterparty","Code","Debit/credit",'
        '"Amount (EUR)","Transaction type","Notifications"'
    )
    row = '"20261127","Klant","NL69INGB0123456789","","GT","Debit","5,25","Online banking",""'
    _, transactions = parse(write(tmp_path, f"{header}\n{row}\n"))
    assert [t.amount for t in transactions] == [Decimal("-5.25")]


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b'"Date","Amount","Payee"\n"2026-01-01","1.00","x"\n',
        b"<?xml version='1.0'?><Document/>",
        b":20:STARTUMS\r\n",
        "\ufeffDatum;Bedrag\n".encode(),
    ],
)
def test_not_ours(tmp_path: Path, head: bytes) -> None:
    assert csv_export.sniff(tmp_path / "x.csv", head) is None


# -- balances and accounts ----------------------------------------------------------------------


def test_rows_out_of_order_give_no_balances(tmp_path: Path) -> None:
    rows = [rabo_row("1", "+10,00", "+110,00"), rabo_row("3", "+5,00", "+200,00")]
    bank_file, _ = parse(write(tmp_path, "\n".join([RABO_HEADER, *rows]) + "\n"))
    (summary,) = bank_file.statements
    assert (summary.opening_balance, summary.closing_balance) == (None, None)
    assert summary.total == Decimal("15.00")


def test_one_statement_per_account(tmp_path: Path) -> None:
    rows = [
        rabo_row("1", "+10,00", "+110,00"),
        rabo_row("1", "-1,00", "+49,00", account="NL18RABO0123459876"),
        rabo_row("2", "+2,00", "+112,00"),
    ]
    bank_file, transactions = parse(write(tmp_path, "\n".join([RABO_HEADER, *rows]) + "\n"))
    assert [t.statement for t in transactions] == [0, 1, 0]
    first, second = bank_file.statements
    assert (first.account, first.opening_balance, first.closing_balance, first.total) == (
        "NL44RABO0123456789",
        Decimal("100.00"),
        Decimal("112.00"),
        Decimal("12.00"),
    )
    assert (second.account, second.opening_balance, second.closing_balance) == (
        "NL18RABO0123459876",
        Decimal("50.00"),
        Decimal("49.00"),
    )


def test_quoted_newline_keeps_raw_and_line_numbers(tmp_path: Path) -> None:
    multi = ing_row().replace("Omschrijving: F1", "Omschrijving: F1\nregel twee")
    text = "\n".join([ING_HEADER, multi, ing_row(), ing_row(amount="x")]) + "\n"
    with pytest.raises(BankFileError) as caught:
        parse(write(tmp_path, text))
    assert caught.value.where == "line 5, column Bedrag (EUR)"
    bank_file = open_csv(write(tmp_path, "\n".join([ING_HEADER, multi]) + "\n"))
    (only,) = bank_file.transactions()
    assert only.raw == multi
    assert only.description == "F1\nregel twee"


def test_cp1252_euro_sign(tmp_path: Path) -> None:
    row = ing_row().replace("Omschrijving: F1", "Omschrijving: \u20ac 10 retour")
    _, (only,) = parse(write(tmp_path, f"{ING_HEADER}\r\n{row}\r\n".encode("cp1252")))
    assert only.description == "\u20ac 10 retour"


# -- errors -------------------------------------------------------------------------------------


def test_bad_amount_names_line_and_column(tmp_path: Path) -> None:
    rows = [ing_row(), ing_row(amount="12,3,4")]
    with pytest.raises(BankFileError) as caught:
        parse(write(tmp_path, "\n".join([ING_HEADER, *rows]) + "\n"))
    assert caught.value.format == "csv"
    assert caught.value.where == "line 3, column Bedrag (EUR)"
    assert "12,3,4" in caught.value.problem


def test_bad_rabobank_amount_and_date(tmp_path: Path) -> None:
    text = RABO_SAMPLE.read_text("utf-8").replace('"-435,00"', '"-435.00"')
    with pytest.raises(BankFileError, match=r"line 4, column Bedrag"):
        parse(write(tmp_path, text))
    text = RABO_SAMPLE.read_text("utf-8").replace('"2020-07-01"', '"2020-13-01"', 1)
    with pytest.raises(BankFileError, match=r"line 2, column Datum"):
        parse(write(tmp_path, text))


@pytest.mark.parametrize(
    ("row", "where", "problem"),
    [
        (ing_row(date="27-11-2026"), "line 2, column Datum", "not a date"),
        (ing_row(date="20260230"), "line 2, column Datum", "not a date"),
        (ing_row(direction="Debet"), "line 2, column Af Bij", "neither Af nor Bij"),
        (ing_row() + ';"extra"', "line 2", "expected 9 columns, found 10"),
    ],
)
def test_bad_ing_rows(tmp_path: Path, row: str, where: str, problem: str) -> None:
    with pytest.raises(BankFileError) as caught:
        parse(write(tmp_path, f"{ING_HEADER}\n{row}\n"))
    assert caught.value.where == where
    assert problem in caught.value.problem


def test_wrong_encoding(tmp_path: Path) -> None:
    # a UTF-16 export without byte order mark: every other byte is NUL
    data = f"{ING_HEADER}\n{ing_row()}\n".encode("utf-16-le")
    path = write(tmp_path, data)
    assert csv_export.sniff(path, data[:HEAD_BYTES]) is None
    with pytest.raises(BankFileError):
        list(csv_export.CsvExport(path).transactions())
    # NUL bytes inside an otherwise valid file
    path = write(tmp_path, f"{ING_HEADER}\n{ing_row()}\x00\x00\n".encode())
    with pytest.raises(BankFileError, match="line 2.*NUL"):
        parse(path)


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    data = f"{ING_HEADER}\r\n{ing_row()}\r\n".encode("utf-16")
    _, transactions = parse(write(tmp_path, data))
    assert [t.amount for t in transactions] == [Decimal("10.00")]


def test_unterminated_quote(tmp_path: Path) -> None:
    row = ing_row().replace('"Overschrijving"', '"Overschrijving') + "\n" * 3
    with pytest.raises(BankFileError) as caught:
        parse(write(tmp_path, f"{ING_HEADER}\n{row}"))
    assert caught.value.where is not None and caught.value.where.startswith("line 2")


# -- fuzzing: every input yields transactions or a BankFileError, nothing else --------------------


def drain(path: Path) -> None:
    parses_or_refuses(csv_export, csv_export.CsvExport, path, sniff_may_refuse=False)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_any_bytes(tmp_path: Path, data: bytes) -> None:
    drain(write(tmp_path, data, "fuzz.csv"))


SAMPLES = [p.read_bytes() for p in (RABO_SAMPLE, RABO_OURS, ING, ING_NO_ACCOUNT)]


@FUZZ
@given(
    sample=st.sampled_from(SAMPLES),
    cut=st.floats(min_value=0, max_value=1),
    flips=st.lists(st.tuples(st.floats(min_value=0, max_value=1), st.integers(0, 255)), max_size=8),
)
def test_fuzz_mutated_samples(
    tmp_path: Path, sample: bytes, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(sample[: max(1, int(len(sample) * cut))] if cut < 0.9 else sample)
    for where, byte in flips:
        data[min(len(data) - 1, int(len(data) * where))] = byte
    drain(write(tmp_path, bytes(data), "mutated.csv"))
