"""CSV exports of Dutch banks: Rabobank (`IBAN/BBAN`, `Volgnr`, signed `Bedrag`) and ING
("Af Bij" export, Dutch or English headers).

The dialect is told from the header row, never the file name. Rows are streamed through
`csv.reader`; a running balance check per account is the only state kept, so memory does not grow
with the file.

Choices the data forced:
- Rabobank `Transactiereferentie` becomes `end_to_end_id`: its values differ in shape per payer
  (`NY000...`, `12345678`, `R-123456789012`), as an originator's end-to-end id does, where a
  bank's own numbering would be uniform; Rabobank's older CSV called this column `END_TO_END_ID`.
- Rabobank `bank_reference` is account + "/" + `Volgnr`, the per-account sequence number, which is
  the same however the export's date range is chosen. ING gives nothing stable, so None.
- One statement per account, in order of first appearance (a normal export has one: index 0).
  Balances come from `Saldo na trn` / `Saldo na mutatie` only when every row continues the previous
  one (oldest-first or newest-first); otherwise they stay None.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from connectors.bank.base import BankFile
from connectors.bank.records import BankFileError, BankTransaction, StatementSummary

_DELIMITERS = (";", ",", "\t")
_RABOBANK_REQUIRED = ("IBAN/BBAN", "Munt", "Volgnr", "Datum", "Bedrag")
_ING_COLUMNS = {
    "datum": "date",
    "date": "date",
    "naam / omschrijving": "name",
    "name / description": "name",
    "rekening": "account",
    "account": "account",
    "tegenrekening": "counterparty",
    "counterparty": "counterparty",
    "code": "code",
    "af bij": "direction",
    "debit/credit": "direction",
    "bedrag (eur)": "amount",
    "amount (eur)": "amount",
    "mutatiesoort": "kind",
    "transaction type": "kind",
    "mededelingen": "notes",
    "notifications": "notes",
    "saldo na mutatie": "balance",
    "resulting balance": "balance",
    "tag": "tag",
}
_ING_REQUIRED = {"date", "name", "direction", "amount", "notes"}
_ING_DEBIT = {"af", "debit"}
_ING_CREDIT = {"bij", "credit"}
_SIGNED_AMOUNT = re.compile(r"[+-]?\d{1,15}(,\d{1,2})?\Z")
_UNSIGNED_AMOUNT = re.compile(r"\d{1,15}([,.]\d{1,2})?\Z")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})\Z")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_ING_KEYS = (
    "Naam",
    "Omschrijving",
    "IBAN",
    "BIC",
    "Kenmerk",
    "Machtiging ID",
    "Incassant ID",
    "Valutadatum",
    "Datum/Tijd",
    "Pasvolgnr",
    "Transactie",
    "Term",
    "Name",
    "Description",
    "Reference",
    "Mandate ID",
    "Creditor ID",
    "Value date",
)
_ING_PIECE = re.compile(r"(?:^|\s)(" + "|".join(re.escape(k) for k in _ING_KEYS) + r"):\s*")
_NOTE_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})\Z")
_CHUNK = 1 << 16


def _header(head: bytes) -> tuple[str, list[str]] | None:
    """The delimiter and column names when the first line is a header we know."""
    text = _decode_head(head)
    first = text.splitlines()[0] if text else ""
    for delimiter in _DELIMITERS:
        try:
            columns = next(csv.reader([first], delimiter=delimiter), [])
        except csv.Error:
            continue
        columns = [c.strip() for c in columns]
        if _dialect(columns) is not None:
            return delimiter, columns
    return None


def _dialect(columns: list[str]) -> str | None:
    if all(name in columns for name in _RABOBANK_REQUIRED):
        return "rabobank"
    known = {_ING_COLUMNS.get(c.lower()) for c in columns}
    if _ING_REQUIRED <= known and None not in known:
        return "ing"
    return None


def _decode_head(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def sniff(path: Path, head: bytes) -> type[BankFile] | None:
    return CsvExport if _header(head) is not None else None


@dataclass(slots=True)
class _Chain:
    """Whether an account's running balances line up, oldest-first or newest-first."""

    summary: StatementSummary
    first: tuple[Decimal, Decimal] | None = None
    previous: tuple[Decimal, Decimal] | None = None
    ascending: bool = True
    descending: bool = True

    def add(self, amount: Decimal, balance: Decimal | None) -> None:
        if balance is None:
            self.ascending = self.descending = False
        elif self.previous is None:
            self.first = (amount, balance)
        else:
            before_amount, before = self.previous
            self.ascending = self.ascending and before + amount == balance
            self.descending = self.descending and balance + before_amount == before
        if balance is not None:
            self.previous = (amount, balance)
        summary, first = self.summary, self.first
        if self.ascending and first is not None and balance is not None:
            summary.opening_balance, summary.closing_balance = first[1] - first[0], balance
        elif self.descending and first is not None and balance is not None:
            summary.opening_balance, summary.closing_balance = balance - amount, first[1]
        else:
            summary.opening_balance = summary.closing_balance = None


class CsvExport(BankFile):
    format = "csv"

    def transactions(self) -> Iterator[BankTransaction]:
        try:
            yield from self._stream()
        except BankFileError:
            raise
        except _NulLine as exc:
            where = f"line {exc.line}"
            raise self.error(where, "NUL bytes: wrongly encoded or not a text file") from None
        except UnicodeError as exc:
            raise self.error(None, f"wrongly encoded text: {exc}") from None
        except csv.Error as exc:
            raise self.error(None, f"malformed CSV: {exc}") from None
        except OSError as exc:
            raise self.error(None, f"cannot be read: {exc.strerror or exc}") from None
        except (ValueError, LookupError, InvalidOperation, TypeError) as exc:
            raise self.error(None, f"unreadable content: {exc}") from None

    def _stream(self) -> Iterator[BankTransaction]:
        encoding = self._encoding()
        self._chains: dict[str | None, _Chain] = {}
        with self.path.open("r", encoding=encoding, newline="") as handle:
            lines = _Lines(handle)
            header_line = next(lines, "")
            found = _header(header_line.encode("utf-8"))
            if found is None:
                raise self.error("line 1", "the header row is not an ING or Rabobank CSV header")
            delimiter, columns = found
            dialect = _dialect(columns)
            lines.taken.clear()
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
            row_builder = self._rabobank if dialect == "rabobank" else self._ing
            start = 2
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise self.error(f"line {start}", f"malformed CSV: {exc}") from None
                raw = "".join(lines.taken).rstrip("\r\n")
                lines.taken.clear()
                line = start
                start = lines.count + 1
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(columns):
                    raise self.error(
                        f"line {line}", f"expected {len(columns)} columns, found {len(row)}"
                    )
                fields = {name: value.strip() for name, value in zip(columns, row, strict=True)}
                transaction, balance = row_builder(fields, line, raw)
                chain = self._chain(transaction.account_iban, transaction.currency)
                chain.add(transaction.amount, balance)
                summary = chain.summary
                summary.transactions += 1
                summary.total += transaction.amount
                yield _with_statement(transaction, summary.index)

    def _encoding(self) -> str:
        """UTF-8 if the whole file decodes as such, else Windows-1252, else latin-1.

        Decided by a streaming pre-pass: a bank's "latin-1" export is usually Windows-1252 (the
        euro sign), and a wrong guess only shows deep into the file.
        """
        with self.path.open("rb") as handle:
            start = handle.read(4)
        if start.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "utf-16"
        for encoding in ("utf-8-sig", "cp1252"):
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                with self.path.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        decoder.decode(chunk)
                    decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                continue
            return encoding
        return "latin-1"

    def _chain(self, account: str | None, currency: str) -> _Chain:
        chain = self._chains.get(account)
        if chain is None:
            summary = StatementSummary(
                index=len(self.statements), account=account, currency=currency
            )
            self.statements.append(summary)
            chain = self._chains[account] = _Chain(summary)
        return chain

    # -- dialects -------------------------------------------------------------------------------

    def _rabobank(
        self, fields: dict[str, str], line: int, raw: str
    ) -> tuple[BankTransaction, Decimal | None]:
        account = fields["IBAN/BBAN"] or None
        currency = fields["Munt"]
        if not _CURRENCY.match(currency):
            raise self._bad(line, "Munt", currency, "is not a currency code")
        amount = self._signed(fields, "Bedrag", line)
        balance = self._signed(fields, "Saldo na trn", line) if fields.get("Saldo na trn") else None
        value_date = (
            self._iso_date(fields, "Rentedatum", line) if fields.get("Rentedatum") else None
        )
        sequence = fields["Volgnr"]
        reference = fields.get("Betalingskenmerk") or None
        compact = reference.replace(" ", "") if reference else None
        issuer = None
        if compact and compact.isdigit():
            reference, issuer = compact, "CUR"
        elif compact and re.match(r"RF\d\d", compact.upper()):
            reference, issuer = compact.upper(), "ISO"
        description = " ".join(
            fields[name]
            for name in ("Omschrijving-1", "Omschrijving-2", "Omschrijving-3")
            if fields.get(name)
        )
        transaction = BankTransaction(
            account_iban=account,
            booking_date=self._iso_date(fields, "Datum", line),
            value_date=value_date,
            amount=amount,
            currency=currency,
            counterparty_name=fields.get("Naam tegenpartij") or None,
            counterparty_iban=fields.get("Tegenrekening IBAN/BBAN") or None,
            description=description or None,
            payment_reference=reference,
            payment_reference_issuer=issuer,
            end_to_end_id=fields.get("Transactiereferentie") or None,
            bank_reference=f"{account}/{sequence}" if account and sequence else None,
            reversal=False,
            return_reason=fields.get("Reden retour") or None,
            raw=raw,
        )
        return transaction, balance

    def _ing(
        self, fields: dict[str, str], line: int, raw: str
    ) -> tuple[BankTransaction, Decimal | None]:
        by_role = {_ING_COLUMNS[name.lower()]: name for name in fields}
        value = {role: fields[name] for role, name in by_role.items()}
        direction = value["direction"].lower()
        if direction not in _ING_DEBIT | _ING_CREDIT:
            raise self._bad(line, by_role["direction"], value["direction"], "is neither Af nor Bij")
        text = value["amount"]
        if not _UNSIGNED_AMOUNT.match(text):
            raise self._bad(line, by_role["amount"], text, "is not an amount")
        amount = Decimal(text.replace(",", "."))
        if direction in _ING_DEBIT:
            amount = -amount
        balance = None
        if value.get("balance"):
            balance = self._signed({"b": value["balance"]}, "b", line, by_role["balance"])
        match = _COMPACT_DATE.match(value["date"])
        booking_date = None
        if match:
            booking_date = _date(*match.groups())
        if booking_date is None:
            raise self._bad(line, by_role["date"], value["date"], "is not a date (YYYYMMDD)")
        notes = value["notes"]
        pieces = _ing_pieces(notes)
        kenmerk = pieces.get("Kenmerk") or pieces.get("Reference")
        reference = issuer = end_to_end = None
        if kenmerk:
            compact = kenmerk.replace(" ", "")
            if len(compact) == 16 and compact.isdigit():
                reference, issuer = compact, "CUR"
            else:
                end_to_end = kenmerk
        value_text = pieces.get("Valutadatum") or pieces.get("Value date") or ""
        note_date = _NOTE_DATE.match(value_text)
        value_date = _date(*reversed(note_date.groups())) if note_date else None
        transaction = BankTransaction(
            account_iban=value.get("account") or None,
            booking_date=booking_date,
            value_date=value_date,
            amount=amount,
            currency="EUR",
            counterparty_name=value["name"] or pieces.get("Naam") or pieces.get("Name") or None,
            counterparty_iban=value.get("counterparty") or pieces.get("IBAN") or None,
            description=pieces.get("Omschrijving") or pieces.get("Description") or notes or None,
            payment_reference=reference,
            payment_reference_issuer=issuer,
            end_to_end_id=end_to_end,
            bank_reference=None,
            reversal=False,
            return_reason=None,
            raw=raw,
        )
        return transaction, balance

    # -- fields ---------------------------------------------------------------------------------

    def _bad(self, line: int, column: str, value: str, problem: str) -> BankFileError:
        return self.error(f"line {line}, column {column}", f"{value!r} {problem}")

    def _signed(self, fields: dict[str, str], name: str, line: int, label: str = "") -> Decimal:
        text = fields.get(name, "")
        if not _SIGNED_AMOUNT.match(text):
            raise self._bad(line, label or name, text, "is not an amount")
        return Decimal(text.replace(",", "."))

    def _iso_date(self, fields: dict[str, str], name: str, line: int) -> dt.date:
        text = fields.get(name, "")
        day = _date(*text.split("-")) if _ISO_DATE.match(text) else None
        if day is None:
            raise self._bad(line, name, text, "is not a date (YYYY-MM-DD)")
        return day


class _NulLine(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Lines:
    """Feeds `csv.reader` and remembers the physical lines of the current record, verbatim."""

    def __init__(self, handle: Iterator[str]) -> None:
        self._handle = handle
        self.taken: list[str] = []
        self.count = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._handle)
        self.count += 1
        if "\x00" in line:
            raise _NulLine(self.count)
        self.taken.append(line)
        return line


def _date(year: str, month: str, day: str) -> dt.date | None:
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        return None


def _ing_pieces(notes: str) -> dict[str, str]:
    """ING's `Mededelingen` as its labelled pieces: `Naam: X Omschrijving: Y IBAN: Z Kenmerk: K`."""
    matches = list(_ING_PIECE.finditer(notes))
    pieces: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(notes)
        text = notes[match.end() : end].strip()
        if text and match.group(1) not in pieces:
            pieces[match.group(1)] = text
    return pieces


def _with_statement(transaction: BankTransaction, index: int) -> BankTransaction:
    return transaction if index == transaction.statement else replace(transaction, statement=index)
