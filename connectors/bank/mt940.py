"""MT940 customer statements in the Dutch banks' dialects, read through the `mt-940` package.

The file is read line by line and cut into statements and transactions here; the package parses
one small piece at a time (a statement's header, then chunks of `:61:`/`:86:` pairs re-wrapped
with that header), so memory stays flat however many transactions a statement holds. The `:86:`
field is interpreted here: the package does not know the Dutch SEPA subfields.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import mt940
from stdnum import iban as stdnum_iban

from connectors.bank.base import BankFile
from connectors.bank.records import (
    BankFileError,
    BankTransaction,
    StatementSummary,
    is_iban_shaped,
)

#: transactions handed to the package per call; bounds memory for huge statements
CHUNK = 500
#: MT940 lines are 65 characters; anything far longer is not a statement line
MAX_LINE_CHARS = 8192
#: one field (a `:86:` with its continuation lines, say) may not exceed this
MAX_FIELD_CHARS = 65536
MAX_HEADER_FIELDS = 50
#: the width at which banks wrap `:86:` lines, mid-word
WRAP = 65

_OPTIONS = mt940.Options(
    reversal_sign=True, unbounded_details=True, merge_keeps_values=True, strip_bom=True
)
_ASN_TAGS: dict[int | str, mt940.tags.Tag] = {61: mt940.tags.StatementASNB()}
_ASN_BANKS = ("ASNB", "SNSB", "RBRB")

_TAG_RE = re.compile(r":(\d\d[A-Z]?|NS):", re.ASCII)
_MESSAGE_TYPE_RE = re.compile(r"\{2:[IO](\d{3})", re.ASCII)
_BIC_RE = re.compile(r"[A-Z0-9]{8}(?:[A-Z0-9]{3})?", re.ASCII)
_HEADER_TAGS = frozenset({"13", "13D", "20", "21", "25", "28", "28C", "60", "60F", "60M"})
_OPENING_TAGS = ("60F", "60M", "60")
_CLOSING_TAGS = frozenset({"62", "62F", "62M"})
_TRAILER_TAGS = frozenset({"64", "65", "86", "90C", "90D", "NS"})

_STATEMENT_LINE_RE = re.compile(
    r"(?P<value>\d{6})(?P<entry>\d{4})?(?P<mark>R?[DC])(?P<funds>[A-Z](?=[0-9,]))?(?P<rest>.*)",
    re.ASCII,
)
_AMOUNT_RE = re.compile(r"\d+(?:,\d*)?", re.ASCII)
_TYPE_CODE_RE = re.compile(r"[NSF][A-Z0-9]{3}", re.ASCII)
_BALANCE_RE = re.compile(
    r"(?P<mark>[DC])(?P<date>\d{6})(?P<currency>[A-Z]{3})(?P<amount>.*)", re.ASCII
)

#: subfield codes of the Dutch SEPA `:86:` (ING, Rabobank, ABN AMRO); only these split the text
_CODES = (
    "ADDR|BENM|BIC|BUSP|CD|CDTRREF|CDTRREFTP|CHGS|CNTP|CSID|EREF|EXCH|ID|IBAN|ISDT|ISSR|KREF|"
    "MARF|NAME|NRTX|OCMT|ORDP|ORIG|PREF|PURP|REMI|RTRN|RTYP|SVCL|TRCD|TRTP|ULTB|ULTC|ULTD"
)
_SUBFIELD_RE = re.compile(rf"/({_CODES})(?=/)", re.ASCII)
_STRUCTURED_RE = re.compile(rf"/({_CODES})/", re.ASCII)
_PARTY_GROUPS = frozenset({"BENM", "ORDP", "CNTP", "ULTB", "ULTC", "ULTD"})
_PARTY_FIELDS = frozenset({"NAME", "IBAN", "BIC", "ID", "ADDR"})
_TRIODOS_RE = re.compile(r"\d{3}>\d\d|>\d\d", re.ASCII)
_TRIODOS_SUBFIELD_RE = re.compile(r">(\d\d)", re.ASCII)
_BETALINGSKENMERK_RE = re.compile(
    r"BETALINGSKENM(?:ERK)?\.?:?\s*(\d{4}(?: \d{4}){3}(?!\d)|\d+)", re.ASCII | re.IGNORECASE
)
_ISSUER_REF_RE = re.compile(r"ISSUER:\s*([A-Z]+)\s+REF:\s*(\S+)", re.ASCII | re.IGNORECASE)
_KNAB_RE = re.compile(r"REK:\s*([A-Z]{2}\d{2}[A-Z0-9]+)\s*/\s*NAAM:\s*(.+)", re.ASCII)


def _refusal(file: str, message_type: str, where: str | None) -> BankFileError:
    if message_type == "942":
        problem = (
            "an MT942 interim transaction report, not an MT940 statement; import the "
            "end-of-day MT940 or camt.053 statement instead"
        )
    else:
        problem = f"a SWIFT MT{message_type} message, not an MT940 statement"
    return BankFileError(file, f"MT{message_type}", where, problem)


def sniff(path: Path, head: bytes) -> type[BankFile] | None:
    """MT940 is told by its `:20:` and `:25:` tags; interim reports (MT942) and other SWIFT
    messages look alike, so they are refused by name rather than half-read as statements."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    for match in _MESSAGE_TYPE_RE.finditer(text):
        if match.group(1) != "940":
            raise _refusal(path.name, match.group(1), None)
    lines = [line.strip() for line in text.splitlines()]
    for line in lines:
        if _TAG_RE.match(line):
            break
        if re.fullmatch(r"9\d\d", line, re.ASCII) and line != "940":
            raise _refusal(path.name, line, None)
    if any(line.startswith(":34F:") for line in lines):
        raise _refusal(path.name, "942", None)
    has_reference = any(line.startswith(":20:") for line in lines)
    has_account = any(line.startswith(":25:") for line in lines)
    return Mt940File if has_reference and has_account else None


@dataclass(slots=True)
class _Field:
    tag: str
    line: int
    #: the field's lines as in the file (without line endings), the first one with its tag
    lines: list[str]
    size: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def content(self) -> list[str]:
        return [self.lines[0][len(self.tag) + 2 :], *self.lines[1:]]

    @property
    def value(self) -> str:
        return self.content[0].strip()


@dataclass(slots=True)
class _End:
    line: int


@dataclass(slots=True)
class _Block:
    line: int
    text: str


@dataclass(slots=True)
class _Loose:
    line: int
    text: str


_Token = _Field | _End | _Block | _Loose


@dataclass(slots=True)
class _Statement:
    line: int
    header: list[_Field]
    bank_header: str
    groups: list[list[_Field]] = field(default_factory=list)
    summary: StatementSummary | None = None
    asn: bool = False
    closed: bool = False
    last_line: int = 0


@dataclass(slots=True)
class _Details:
    description: str | None = None
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    payment_reference: str | None = None
    payment_reference_issuer: str | None = None
    end_to_end_id: str | None = None
    return_reason: str | None = None


class Mt940File(BankFile):
    """An MT940 file of one or more statements (ING, Rabobank, ABN AMRO, ASN/SNS, Triodos, Knab)."""

    format = "mt940"
    #: an "entry" here is one batch of `:61:` lines handed to the package (`CHUNK`): a process
    #: reading another's share still reads every line, but leaves the package parse to it
    shares_entries = True

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._line = 0

    def transactions(self) -> Iterator[BankTransaction]:
        """Any failure, the package's included, becomes a `BankFileError` naming the line."""
        try:
            yield from self._statements()
        except BankFileError:
            raise
        except OSError as exc:
            raise self.error(None, f"cannot be read: {exc.strerror or exc}") from None
        except Exception as exc:
            raise self.error(f"line {self._line}", f"cannot be read ({exc!r})") from None

    def _encoding(self) -> str:
        """A file is UTF-8 only if all of it is; checked in a first pass so that a late
        non-UTF-8 byte cannot change how earlier transactions were decoded."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        with self.path.open("rb") as handle:
            try:
                while chunk := handle.read(1 << 16):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                return "latin-1"
        return "utf-8-sig"

    def _raw_lines(self) -> Iterator[tuple[int, str]]:
        with self.path.open(encoding=self._encoding(), newline="") as handle:
            number = 0
            while raw := handle.readline(MAX_LINE_CHARS + 2):
                number += 1
                self._line = number
                text = raw.rstrip("\r\n")
                if len(text) > MAX_LINE_CHARS:
                    raise self.error(f"line {number}", f"longer than {MAX_LINE_CHARS} characters")
                if number == 1:
                    text = text.lstrip("\ufeff")
                yield number, text

    def _tokens(self) -> Iterator[_Token]:
        current: _Field | None = None
        for number, raw in self._raw_lines():
            pending = [raw]
            while pending:
                text = pending.pop()
                stripped = text.strip()
                if not text:
                    continue
                if stripped == "-" or stripped.startswith("-}"):
                    if current is not None:
                        yield current
                        current = None
                    yield _End(number)
                    continue
                if stripped.startswith("{") or stripped == ":940:":
                    if current is not None:
                        yield current
                        current = None
                    if stripped == ":940:":
                        yield _Loose(number, stripped)
                    else:
                        head, _, rest = text.partition("{4:")
                        yield _Block(number, head)
                        pending.append(rest)
                    continue
                tag = _TAG_RE.match(text)
                if tag is not None:
                    if current is not None:
                        yield current
                    current = _Field(tag.group(1), number, [text], len(text))
                elif current is not None:
                    current.lines.append(text)
                    current.size += len(text) + 1
                    if current.size > MAX_FIELD_CHARS:
                        raise self.error(
                            f"line {number}",
                            f":{current.tag}: from line {current.line} is longer than "
                            f"{MAX_FIELD_CHARS} characters",
                        )
                else:
                    yield _Loose(number, stripped)
        if current is not None:
            yield current

    def _statements(self) -> Iterator[BankTransaction]:
        statement: _Statement | None = None
        bank_header = ""
        self.position = 0
        for token in self._tokens():
            if isinstance(token, _Field):
                if statement is not None:
                    statement.last_line = token.line + len(token.lines) - 1
                if token.tag == "20":
                    if statement is not None:
                        yield from self._finish(statement)
                    statement = _Statement(token.line, [token], bank_header)
                    statement.last_line = token.line + len(token.lines) - 1
                elif token.tag == "34F":
                    raise _refusal(self.name, "942", f"line {token.line}")
                elif statement is None:
                    raise self.error(
                        f"line {token.line}",
                        f":{token.tag}: outside a statement (no :20: starts one before it)",
                    )
                else:
                    yield from self._add(statement, token)
            elif isinstance(token, _End):
                if statement is not None:
                    yield from self._finish(statement)
                    statement = None
            elif isinstance(token, _Block):
                if statement is not None:
                    yield from self._finish(statement)
                    statement = None
                for match in _MESSAGE_TYPE_RE.finditer(token.text):
                    if match.group(1) != "940":
                        raise _refusal(self.name, match.group(1), f"line {token.line}")
                if "{1:" in token.text or "{2:" in token.text:
                    bank_header = token.text
            else:
                self._check_loose(token)
        if statement is not None:
            yield from self._finish(statement)
        if not self.statements:
            raise self.error(None, "no statement in the file (:20: ... :62F:)")

    def _check_loose(self, token: _Loose) -> None:
        """Between statements only the banks' envelope lines may appear (`:940:`, ABN AMRO's
        `ABNANL2A`/`940`, SWIFT blocks); anything else means the file is not what it seems."""
        text = token.text
        if not text or text == ":940:" or text == "940" or _BIC_RE.fullmatch(text):
            return
        if re.fullmatch(r"9\d\d", text, re.ASCII):
            raise _refusal(self.name, text, f"line {token.line}")
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise self.error(f"line {token.line}", f"unexpected text {shown!r} outside a statement")

    def _add(self, statement: _Statement, item: _Field) -> Iterator[BankTransaction]:
        tag = item.tag
        if statement.closed:
            if tag in _TRAILER_TAGS:
                return
            raise self.error(
                f"line {item.line}", f":{tag}: after the statement's closing balance (:62F:)"
            )
        if tag in _HEADER_TAGS:
            if statement.summary is not None:
                raise self.error(f"line {item.line}", f":{tag}: after the statement's :61: lines")
            if len(statement.header) >= MAX_HEADER_FIELDS:
                raise self.error(f"line {item.line}", "too many fields before the first :61:")
            statement.header.append(item)
        elif tag == "61":
            self._check_statement_line(item)
            if statement.summary is None:
                self._open(statement)
            if len(statement.groups) >= CHUNK:
                yield from self._flush(statement)
            statement.groups.append([item])
        elif tag == "86":
            if not statement.groups:
                return
            group = statement.groups[-1]
            if len(group) > 1:
                raise self.error(
                    f"line {item.line}", f"a second :86: for the :61: on line {group[0].line}"
                )
            group.append(item)
        elif tag in _CLOSING_TAGS:
            if statement.summary is None:
                self._open(statement)
            yield from self._flush(statement)
            self._close(statement, item)
        elif tag in _TRAILER_TAGS:
            return
        else:
            raise self.error(f"line {item.line}", f"unknown tag :{tag}:")

    def _finish(self, statement: _Statement) -> Iterator[BankTransaction]:
        if not statement.closed:
            raise self.error(
                f"line {statement.last_line}",
                f"the statement that starts on line {statement.line} ends without a closing "
                "balance (:62F:); the file is cut short or damaged",
            )
        return iter(())

    def _parse(self, fields: list[_Field], asn: bool) -> mt940.models.Transactions:
        parsed = mt940.models.Transactions(tags=_ASN_TAGS if asn else None, options=_OPTIONS)
        parsed.parse("\n".join(f.text for f in fields))
        return parsed

    def _parse_located(
        self, prefix: list[_Field], parts: list[list[_Field]], asn: bool
    ) -> mt940.models.Transactions:
        """Parse all parts at once; if the package fails, find the part it failed on."""
        try:
            return self._parse(prefix + [f for part in parts for f in part], asn)
        except Exception as failure:
            for part in parts:
                try:
                    self._parse(prefix + part, asn)
                except Exception as exc:
                    tag = part[0].tag
                    raise self.error(
                        f"line {part[0].line}", f":{tag}: cannot be read: {_describe(exc)}"
                    ) from None
            raise self.error(
                f"line {parts[0][0].line if parts else 0}",
                f"cannot be read: {_describe(failure)}",
            ) from None

    def _check_balance(self, item: _Field) -> None:
        if any(line.strip() for line in item.lines[1:]):
            raise self.error(f"line {item.line + 1}", f"unexpected text after :{item.tag}:")
        match = _BALANCE_RE.fullmatch(item.value)
        if match is None:
            raise self.error(
                f"line {item.line}",
                f":{item.tag}: {item.value!r} is not a balance (mark C/D, YYMMDD, currency, "
                "amount)",
            )
        if _date(match.group("date")) is None:
            raise self.error(
                f"line {item.line}", f":{item.tag}: date {match.group('date')!r} is not a date"
            )
        if not _AMOUNT_RE.fullmatch(match.group("amount")):
            raise self.error(
                f"line {item.line}",
                f":{item.tag}: amount {match.group('amount')!r} is not an amount",
            )

    def _check_statement_line(self, item: _Field) -> None:
        where = f"line {item.line}"
        first = item.content[0]
        match = _STATEMENT_LINE_RE.fullmatch(first)
        if match is None:
            raise self.error(
                where,
                f":61: {first.strip()!r} does not start with a value date (YYMMDD), an optional "
                "entry date (MMDD) and a debit/credit mark",
            )
        value = match.group("value")
        if _date(value, lenient_february=True) is None:
            raise self.error(where, f":61: value date {value!r} is not a date")
        entry = match.group("entry")
        if entry is not None and _date("00" + entry) is None:
            raise self.error(where, f":61: entry date {entry!r} is not a date (MMDD)")
        rest = match.group("rest")
        code = _TYPE_CODE_RE.search(rest)
        amount = rest[: code.start()] if code else rest
        if not amount:
            raise self.error(where, ":61: has no amount")
        if not _AMOUNT_RE.fullmatch(amount):
            raise self.error(where, f":61: amount {amount!r} is not an amount")
        if code is None:
            raise self.error(where, ":61: has no transaction type (such as NTRF) after the amount")

    def _open(self, statement: _Statement) -> None:
        header = statement.header
        tags = {f.tag: f for f in reversed(header)}
        start = f"line {statement.line}"
        if "25" not in tags:
            raise self.error(start, "the statement has no account (:25:)")
        opening = next((tags[t] for t in _OPENING_TAGS if t in tags), None)
        if opening is None:
            raise self.error(start, "the statement has no opening balance (:60F:)")
        self._check_balance(opening)
        account = _normalize_account(" ".join(tags["25"].content))
        statement.asn = any(bank in statement.bank_header for bank in _ASN_BANKS) or (
            account is not None and account[4:8] in _ASN_BANKS
        )
        parsed = self._parse_located([], [[f] for f in header], statement.asn)
        data = parsed.data
        balance = _coalesce(data, "final_opening_balance", "intermediate_opening_balance")
        balance = balance or data.get("opening_balance")
        reference = tags["20"].value if "20" in tags else ""
        number_field = tags.get("28C") or tags.get("28")
        number = number_field.value if number_field else ""
        statement.summary = StatementSummary(
            index=len(self.statements),
            account=account,
            statement_id="/".join(p for p in (reference, number) if p) or None,
            currency=parsed.currency,
            opening_balance=_balance_amount(balance),
        )
        self.statements.append(statement.summary)

    def _close(self, statement: _Statement, item: _Field) -> None:
        self._check_balance(item)
        parsed = self._parse_located(statement.header, [[item]], statement.asn)
        balance = _coalesce(
            parsed.data, "final_closing_balance", "intermediate_closing_balance", "closing_balance"
        )
        assert statement.summary is not None
        statement.summary.closing_balance = _balance_amount(balance)
        statement.closed = True

    def _flush(self, statement: _Statement) -> Iterator[BankTransaction]:
        groups, statement.groups = statement.groups, []
        if not groups:
            return
        summary = statement.summary
        assert summary is not None
        if summary.currency is None:
            raise self.error(f"line {statement.line}", "the statement names no currency")
        mine, of = self.share
        if self.position % of != mine:  # another process's batch
            self.position += 1
            return
        parsed = self._parse_located(statement.header, groups, statement.asn)
        if len(parsed.transactions) != len(groups):
            raise self.error(
                f"line {groups[0][0].line}",
                f"{len(groups)} :61: lines read as {len(parsed.transactions)} transactions",
            )
        chunk = [parsed_tx.data for parsed_tx in parsed.transactions]
        # each package transaction points back at its collection: break that cycle so a chunk
        # is freed as soon as it is done, not whenever the cyclic collector runs
        parsed.transactions.clear()
        for group, data in zip(groups, chunk, strict=True):
            self._line = group[0].line
            tx = self._transaction(statement, summary, group, data)
            summary.transactions += 1
            summary.total += tx.amount
            yield tx
        self.position += 1

    def _transaction(
        self,
        statement: _Statement,
        summary: StatementSummary,
        group: list[_Field],
        data: dict[str, Any],
    ) -> BankTransaction:
        line61 = group[0]
        status = str(data.get("status") or "")
        amount = abs(data["amount"].amount)
        if status not in ("C", "RD"):
            amount = -amount
        value_date = _plain_date(data["date"])
        entry = data.get("entry_date")
        booking_date = _plain_date(entry) if entry is not None else value_date
        bank_reference = (data.get("bank_reference") or "").strip()
        if bank_reference.upper() in ("", "NONREF"):
            bank_reference = ""
        supplementary = (data.get("extra_details") or "").strip()
        details = _details(group[1].content) if len(group) > 1 else _Details()
        if statement.asn:
            customer = _compact(data.get("customer_reference") or "")
            if details.counterparty_iban is None and is_iban_shaped(customer):
                details.counterparty_iban = customer
            if details.counterparty_name is None and supplementary:
                details.counterparty_name = supplementary
        elif details.counterparty_iban is None and is_iban_shaped(_compact(supplementary)):
            details.counterparty_iban = _compact(supplementary)
        return BankTransaction(
            account_iban=summary.account,
            booking_date=booking_date,
            value_date=value_date,
            amount=amount,
            currency=summary.currency or "",
            counterparty_name=details.counterparty_name,
            counterparty_iban=details.counterparty_iban,
            description=details.description,
            payment_reference=details.payment_reference,
            payment_reference_issuer=details.payment_reference_issuer,
            end_to_end_id=details.end_to_end_id,
            bank_reference=bank_reference or None,
            reversal=status.startswith("R"),
            return_reason=details.return_reason,
            raw="\n".join(line61.lines + (group[1].lines if len(group) > 1 else [])),
            statement=summary.index,
        )


def _describe(exc: Exception) -> str:
    if isinstance(exc, RuntimeError) and len(exc.args) >= 3:
        return f"{str(exc.args[2])[:80]!r} does not match the field's format"
    return f"{type(exc).__name__}: {exc}"[:200]


def _date(yymmdd: str, lenient_february: bool = False) -> dt.date | None:
    try:
        year, month, day = 2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
        if lenient_february and month == 2 and 28 < day <= 31:
            day = 28
        return dt.date(year, month, day)
    except ValueError:
        return None


def _plain_date(value: dt.date) -> dt.date:
    return dt.date(value.year, value.month, value.day)


def _coalesce(data: dict[str, Any], *keys: str) -> Any:
    return next((data[k] for k in keys if data.get(k) is not None), None)


def _balance_amount(balance: Any) -> Decimal | None:
    amount = getattr(getattr(balance, "amount", None), "amount", None)
    return amount if isinstance(amount, Decimal) else None


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text).upper()


def _normalize_account(raw: str) -> str | None:
    """As the file gives it, minus spaces and a currency after the account (`NL..RABO.. EUR`,
    ING's glued `NL..INGB..EUR` only when what remains is a valid IBAN)."""
    text = raw.strip()
    spaced = re.fullmatch(r"(.*\S)\s+[A-Z]{3}", text, re.ASCII)
    if spaced:
        text = spaced.group(1)
    text = re.sub(r"\s+", "", text)
    glued = re.fullmatch(r"([A-Z]{2}\d{2}[A-Z0-9]+?)/?[A-Z]{3}", text, re.ASCII)
    if glued and stdnum_iban.is_valid(glued.group(1)) and not stdnum_iban.is_valid(text):
        text = glued.group(1)
    return text or None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    return re.sub(r"\s+", " ", text).strip() or None


def _join_wrapped(lines: list[str], structured: bool) -> str:
    """Banks wrap `:86:` at 65 characters mid-word. Subfield dialects (SEPA `/CODE/`, Triodos
    `>NN`) break lines only to wrap or before a subfield, so their lines are concatenated; the
    free-text dialects also break between phrases, so a shorter line is joined with a space."""
    if structured:
        return "".join(lines)
    joined = lines[0]
    for previous, line in zip(lines, lines[1:], strict=False):
        joined += line if len(previous) == WRAP else " " + line
    return joined


def _details(content: list[str]) -> _Details:
    first = content[0].lstrip()
    if _STRUCTURED_RE.match(first):
        return _structured(_join_wrapped(content, structured=True))
    if _TRIODOS_RE.match(first):
        return _triodos(_join_wrapped(content, structured=True))
    return _free_text(_join_wrapped(content, structured=False))


def _structured(text: str) -> _Details:
    details = _Details()
    matches = list(_SUBFIELD_RE.finditer(text))
    top: dict[str, str] = {}
    parties: dict[str, dict[str, str]] = {}
    group: str | None = None
    remittances: list[str] = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        code = match.group(1)
        end = following.start() if following is not None else len(text)
        value = text[match.end() + 1 : end].strip()
        if code in _PARTY_GROUPS:
            group = code
            party = parties.setdefault(code, {})
            if code == "CNTP":
                parts = [*value.split("/"), "", "", ""]
                for key, part in zip(("IBAN", "BIC", "NAME", "CITY"), parts, strict=False):
                    if part.strip():
                        party.setdefault(key, part.strip())
            continue
        if code in _PARTY_FIELDS:
            target = parties[group] if group is not None else top
            target.setdefault(code, value.rstrip("/").strip())
            continue
        group = None
        if code == "REMI":
            remittances.append(value)
        else:
            top.setdefault(code, value.rstrip("/").strip())
    counterparty = next(
        (parties[g] for g in ("BENM", "ORDP", "CNTP") if g in parties and parties[g]), top
    )
    details.counterparty_name = _clean(counterparty.get("NAME"))
    iban = counterparty.get("IBAN")
    details.counterparty_iban = _compact(iban) if iban else None
    eref = _clean(top.get("EREF"))
    details.end_to_end_id = eref if eref and eref.upper() != "NOTPROVIDED" else None
    rtrn = top.get("RTRN", "").split("/")[0].strip()
    details.return_reason = rtrn or None
    remittance = next((r for r in remittances if r.strip("/ ")), "")
    if remittance.startswith("USTD//"):
        details.description = _clean(remittance[6:].removesuffix("/"))
    elif remittance.startswith("STRD/"):
        issuer, _, reference = remittance[5:].partition("/")
        details.payment_reference = _clean(reference.split("/")[0])
        details.payment_reference_issuer = _clean(issuer) if details.payment_reference else None
    elif remittance:
        details.description = _clean(remittance.removesuffix("/"))
    if details.payment_reference is None and top.get("CDTRREF"):
        details.payment_reference = _clean(top["CDTRREF"])
        details.payment_reference_issuer = _clean(top.get("ISSR"))
    if details.payment_reference is None and details.description:
        issued = _ISSUER_REF_RE.search(details.description)
        if issued:
            details.payment_reference = issued.group(2)
            details.payment_reference_issuer = issued.group(1).upper()
    return details


def _triodos(text: str) -> _Details:
    parts = _TRIODOS_SUBFIELD_RE.split(text)
    subfields: dict[str, str] = {}
    for code, value in zip(parts[1::2], parts[2::2], strict=True):
        subfields[code] = subfields.get(code, "") + value
    description = "".join(subfields.get(str(n), "") for n in range(20, 30))
    details = _free_text(description) if description.strip() else _Details()
    account = _clean(subfields.get("31"))
    details.counterparty_iban = _compact(account) if account else None
    return details


def _free_text(text: str) -> _Details:
    details = _Details(description=_clean(text))
    reference = _BETALINGSKENMERK_RE.search(text)
    if reference:
        details.payment_reference = reference.group(1).replace(" ", "")
        details.payment_reference_issuer = "CUR"
    knab = _KNAB_RE.search(text)
    if knab:
        details.counterparty_iban = knab.group(1)
        details.counterparty_name = _clean(knab.group(2))
    return details
