"""ISO 20022 camt.053 (bank-to-customer statement), versions .001.02 to .001.08.

The file is read with `iterparse` and each element is dropped once used, so a statement of any size
is read in constant memory; even a batch entry with thousands of `TxDtls` is streamed detail by
detail. DTDs are refused outright: a statement never needs one, and entity declarations are how
hostile XML (billion laughs, external entities) does its damage.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

from connectors.bank.base import BankFile
from connectors.bank.records import BankFileError, BankTransaction, StatementSummary

_ISO_NS = re.compile(r"urn:iso:std:iso:20022:tech:xsd:([a-z]{4})\.(\d{3})\.(\d{3})\.(\d{2})\Z")
_SUPPORTED_VERSIONS = range(2, 9)
_REFUSED = {
    ("camt", "052"): "camt.052 (intraday account report)",
    ("camt", "054"): "camt.054 (debit/credit notification)",
    ("camt", "086"): "camt.086 (bank services billing)",
    ("pain", "001"): "pain.001 (payment initiation)",
    ("pain", "002"): "pain.002 (payment status report)",
    ("pain", "008"): "pain.008 (direct debit initiation)",
}
_AMOUNT = re.compile(r"\d{1,18}(\.\d{0,5})?\Z")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}")
_NUMBERED = {"Stmt", "Bal", "Ntry", "TxDtls"}


def _refusal(family: str, number: str, version: str) -> str | None:
    """Why an ISO 20022 message is not ours to import, or None when it is a camt.053 we read."""
    name = f"{family}.{number}.001.{version}"
    if (family, number) == ("camt", "053"):
        if int(version) in _SUPPORTED_VERSIONS:
            return None
        return f"{name} is not supported (camt.053 versions .001.02 to .001.08 are)"
    label = _REFUSED.get((family, number), f"{family}.{number} (not a bank statement)")
    return f"{label} is not supported; export a camt.053 statement"


def _root_tag(head: bytes) -> tuple[str, str] | None:
    """The root element's name and namespace from the first bytes, skipping the prologue.

    Raises for a DOCTYPE: no statement needs one, so refusing it before the parser sees it keeps
    entity tricks away from every code path.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if not text.startswith("<", pos):
            return None
        if text.startswith("<?", pos):
            end = text.find("?>", pos)
            if end < 0:
                return None
            pos = end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos)
            if end < 0:
                return None
            pos = end + 3
        elif text.startswith("<!", pos):
            raise ValueError("a DOCTYPE or entity declaration is refused in a bank statement")
        else:
            break
    match = re.match(r"<(?:([A-Za-z_][\w.\-]*):)?([A-Za-z_][\w.\-]*)([^>]*)>", text[pos:])
    if match is None:
        return None
    prefix, local, attributes = match.groups()
    attr = "xmlns:" + prefix if prefix else "xmlns"
    ns = re.search(r"(?:^|\s)" + re.escape(attr) + r"\s*=\s*([\"'])(.*?)\1", attributes)
    return local, ns.group(2).strip() if ns else ""


def sniff(path: Path, head: bytes) -> type[BankFile] | None:
    try:
        root = _root_tag(head)
    except ValueError as exc:
        raise BankFileError(path.name, "XML", None, str(exc)) from None
    if root is None:
        return None
    match = _ISO_NS.match(root[1])
    if match is None:
        # an ISO 20022 `Document` whose namespace is missing or mangled: ours to explain
        return Camt053File if root[0] == "Document" else None
    family, number, _variant, version = match.groups()
    problem = _refusal(family, number, version)
    if problem is not None:
        raise BankFileError(path.name, f"{family}.{number}.001.{version}", None, problem)
    return Camt053File


@dataclass(slots=True)
class _Entry:
    """What an `Ntry` says before its details, and how far its details have been streamed."""

    path: str
    booked: bool
    amount: Decimal
    currency: str
    credit: bool
    booking_date: dt.date
    value_date: dt.date | None
    reversal: bool
    reference: str | None
    details: int = 0
    pending: _Detail | None = None
    split_total: Decimal = Decimal(0)
    first_ref: str | None = None
    refs_unique: bool = True


@dataclass(slots=True)
class _Detail:
    """One `TxDtls`, parsed, with its own amount if it carries one in the entry's currency."""

    path: str
    position: int
    amount: Decimal | None
    credit: bool | None
    end_to_end_id: str | None
    description: str | None
    payment_reference: str | None
    payment_reference_issuer: str | None
    debtor: tuple[str | None, str | None]
    creditor: tuple[str | None, str | None]
    reference: str | None
    return_reason: str | None
    raw: str


class Camt053File(BankFile):
    format = "camt053"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._ns = ""
        self._names: list[str] = []
        self._counts: list[dict[str, int]] = []
        self._path: list[str] = []
        self._find_paths: dict[str, str] = {}

    def transactions(self) -> Iterator[BankTransaction]:
        try:
            yield from self._stream()
        except BankFileError:
            raise
        except etree.XMLSyntaxError as exc:
            position = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else ""
            where = ", in ".join(p for p in (position, "/".join(self._path)) if p)
            problem = re.sub(r",? line \d+, column \d+\Z", "", exc.msg or str(exc))
            raise self.error(where or None, f"malformed XML: {problem}") from None
        except (OSError, etree.LxmlError) as exc:
            raise self.error("/".join(self._path) or None, f"cannot be read: {exc}") from None
        except (ValueError, TypeError, LookupError, InvalidOperation, RecursionError) as exc:
            raise self.error("/".join(self._path) or None, f"unreadable content: {exc}") from None

    # -- streaming ------------------------------------------------------------------------------

    def _stream(self) -> Iterator[BankTransaction]:
        self._ns, self._names, self._counts, self._path = "", [], [], []
        summary: StatementSummary | None = None
        entry: _Entry | None = None
        context = etree.iterparse(
            str(self.path),
            events=("start", "end"),
            remove_comments=True,
            remove_pis=True,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        names = self._names
        for event, elem in context:
            tag = elem.tag
            if not isinstance(tag, str):
                continue
            if event == "start":
                self._enter(tag.rpartition("}")[2])
                if len(names) == 1:
                    self._check_root(elem)
                elif names[-1] == "Stmt" and names[-2] == "BkToCstmrStmt":
                    summary = StatementSummary(index=len(self.statements), account=None)
                    self.statements.append(summary)
                elif names[-1] == "Ntry":
                    entry = None
                elif names[-1] == "NtryDtls" and names[-2] == "Ntry" and entry is None:
                    parent = elem.getparent()
                    assert parent is not None
                    entry = self._entry(parent)
                continue

            name = names[-1]
            parent_name = names[-2] if len(names) > 1 else ""
            if summary is not None and parent_name == "Stmt":
                if name == "Id":
                    summary.statement_id = _text(elem)
                elif name == "Acct":
                    self._account(elem, summary)
                elif name == "Bal":
                    self._balance(elem, summary)
                elif name == "Ntry":
                    if entry is None:
                        entry = self._entry(elem)
                    yield from self._finish_entry(elem, entry, summary)
                    entry = None
            elif name == "TxDtls" and parent_name == "NtryDtls" and entry is not None:
                if entry.booked and summary is not None:
                    yield from self._detail(elem, entry, summary)
            if len(names) <= 4 or (name == "TxDtls" and parent_name == "NtryDtls"):
                _drop(elem)
            names.pop()
            self._counts.pop()
            self._path.pop()

    def _enter(self, name: str) -> None:
        if self._counts:
            counts = self._counts[-1]
            counts[name] = number = counts.get(name, 0) + 1
            self._path.append(f"{name}[{number}]" if name in _NUMBERED else name)
        else:
            self._path.append(name)
        self._names.append(name)
        self._counts.append({})

    def _location(self, elem: etree._Element, relative: str = "", line: int | None = None) -> str:
        depth = sum(1 for _ in elem.iterancestors())
        path = "/".join(self._path[: depth + 1]) + (f"/{relative}" if relative else "")
        line = line or _line(elem)
        return f"line {line}, {path}" if line else path

    def _check_root(self, elem: etree._Element) -> None:
        docinfo: Any = elem.getroottree().docinfo
        if docinfo.doctype:
            raise self.error("DOCTYPE", "a DOCTYPE or entity declaration is refused in a statement")
        qname = etree.QName(elem)
        match = _ISO_NS.match(qname.namespace or "")
        if match is None or qname.localname != "Document":
            namespace = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
            raise self.error(
                f"line {_line(elem)}",
                f"root element {qname.localname} ({namespace}) is not a camt.053 Document",
            )
        problem = _refusal(match.group(1), match.group(2), match.group(4))
        if problem is not None:
            raise self.error(f"line {_line(elem)}", problem)
        self._ns = qname.namespace or ""
        self._find_paths = {}

    # -- element readers ------------------------------------------------------------------------

    def _find(self, elem: etree._Element, path: str) -> etree._Element | None:
        qualified = self._find_paths.get(path)
        if qualified is None:
            qualified = "/".join(f"{{{self._ns}}}{step}" for step in path.split("/"))
            self._find_paths[path] = qualified
        return elem.find(qualified)

    def _text(self, elem: etree._Element, path: str) -> str | None:
        found = self._find(elem, path)
        return _text(found) if found is not None else None

    def _fail(self, elem: etree._Element, relative: str, problem: str) -> BankFileError:
        found = self._find(elem, relative) if relative else None
        line = _line(found) if found is not None else None
        return self.error(self._location(elem, relative, line), problem)

    def _amount(self, elem: etree._Element, path: str) -> tuple[Decimal, str] | None:
        found = self._find(elem, path)
        if found is None:
            return None
        text = _text(found) or ""
        if not _AMOUNT.match(text):
            raise self._fail(elem, path, f"amount {text!r} is not a decimal amount")
        currency = (found.get("Ccy") or "").strip()
        if not _CURRENCY.match(currency):
            raise self._fail(elem, path, f"currency {currency!r} is not an ISO 4217 code")
        return Decimal(text), currency

    def _credit(self, elem: etree._Element, required: bool) -> bool | None:
        text = self._text(elem, "CdtDbtInd")
        if text is None and not required:
            return None
        if text == "CRDT":
            return True
        if text == "DBIT":
            return False
        raise self._fail(elem, "CdtDbtInd", f"CdtDbtInd {text!r} is neither CRDT nor DBIT")

    def _date(self, elem: etree._Element, path: str, required: bool) -> dt.date | None:
        holder = self._find(elem, path)
        if holder is None:
            if required:
                raise self._fail(elem, "", f"{path} is missing")
            return None
        text, relative = self._text(holder, "Dt"), f"{path}/Dt"
        day = text if text and _DATE.match(text) else None
        if text is None:
            text, relative = self._text(holder, "DtTm"), f"{path}/DtTm"
            match = _DATETIME.match(text or "")
            day = match.group(1) if match else None
        try:
            if day is None:
                raise ValueError(day)
            return dt.date.fromisoformat(day)
        except ValueError:
            raise self._fail(elem, relative, f"{relative} {text!r} is not a date") from None

    def _account(self, elem: etree._Element, summary: StatementSummary) -> None:
        summary.account = self._text(elem, "Id/IBAN") or self._text(elem, "Id/Othr/Id")
        summary.currency = self._text(elem, "Ccy") or summary.currency

    def _balance(self, elem: etree._Element, summary: StatementSummary) -> None:
        kind = self._text(elem, "Tp/CdOrPrtry/Cd")
        if kind not in ("OPBD", "PRCD", "CLBD"):
            return
        found = self._amount(elem, "Amt")
        if found is None:
            raise self._fail(elem, "", "balance without Amt")
        amount, currency = found
        value = amount if self._credit(elem, required=True) else -amount
        if kind == "CLBD":
            if summary.closing_balance is None:
                summary.closing_balance = value
        elif summary.opening_balance is None or kind == "OPBD":
            summary.opening_balance = value
        summary.currency = summary.currency or currency

    def _entry(self, ntry: etree._Element) -> _Entry:
        status = self._find(ntry, "Sts")
        booked = True
        if status is not None:
            code = self._text(status, "Cd") or self._text(status, "Prtry") or _text(status)
            booked = code == "BOOK"
        found = self._amount(ntry, "Amt")
        if found is None:
            raise self._fail(ntry, "", "entry without Amt")
        amount, currency = found
        credit = self._credit(ntry, required=True)
        assert credit is not None
        reversal = (self._text(ntry, "RvslInd") or "").lower() in ("true", "1")
        return _Entry(
            path=self._location(ntry),
            booked=booked,
            amount=amount,
            currency=currency,
            credit=credit,
            booking_date=self._date(ntry, "BookgDt", required=booked) or dt.date.min,
            value_date=self._date(ntry, "ValDt", required=False),
            reversal=reversal,
            # Only the servicer's own reference is taken as stable: some banks number `NtryRef`
            # per statement ("1", "2", ...), and a key that repeats across statements would
            # silently drop real transactions as duplicates. Without it, the content decides.
            reference=self._text(ntry, "AcctSvcrRef"),
        )

    def _parse_detail(self, tx: etree._Element, entry: _Entry, position: int) -> _Detail:
        amount: Decimal | None = None
        for path in ("AmtDtls/TxAmt/Amt", "Amt", "AmtDtls/CntrValAmt/Amt"):
            found = self._amount(tx, path)
            if found is not None and found[1] == entry.currency:
                amount = found[0]
                break
        reference, issuer = None, None
        ref_info = self._find(tx, "RmtInf/Strd/CdtrRefInf")
        if ref_info is not None:
            reference = self._text(ref_info, "Ref")
            issuer = self._text(ref_info, "Tp/Issr")
            if (
                reference
                and issuer is None
                and self._text(ref_info, "Tp/CdOrPrtry/Cd") == "SCOR"
                and reference.upper().startswith("RF")
            ):
                issuer = "ISO"
        remittance = self._find(tx, "RmtInf")
        lines = [] if remittance is None else remittance.findall(f"{{{self._ns}}}Ustrd")
        description = " ".join(t for t in (_text(line) for line in lines) if t) or None
        end_to_end = self._text(tx, "Refs/EndToEndId")
        if end_to_end is not None and end_to_end.upper() == "NOTPROVIDED":
            end_to_end = None
        return_reason = self._text(tx, "RtrInf/Rsn/Cd") or self._text(tx, "RtrInf/Rsn/Prtry")
        return _Detail(
            path=self._location(tx),
            position=position,
            amount=amount,
            credit=self._credit(tx, required=False),
            end_to_end_id=end_to_end,
            description=description or self._text(tx, "AddtlTxInf"),
            payment_reference=reference,
            payment_reference_issuer=issuer if reference else None,
            debtor=self._party(tx, "Dbtr"),
            creditor=self._party(tx, "Cdtr"),
            reference=self._text(tx, "Refs/AcctSvcrRef"),
            return_reason=return_reason,
            raw=etree.tostring(tx, encoding="unicode", with_tail=False),
        )

    def _party(self, tx: etree._Element, role: str) -> tuple[str | None, str | None]:
        name = self._text(tx, f"RltdPties/{role}/Nm") or self._text(tx, f"RltdPties/{role}/Pty/Nm")
        return name, self._text(tx, f"RltdPties/{role}Acct/Id/IBAN")

    # -- turning entries and details into transactions ------------------------------------------

    def _detail(
        self, tx: etree._Element, entry: _Entry, summary: StatementSummary
    ) -> Iterator[BankTransaction]:
        entry.details += 1
        detail = self._parse_detail(tx, entry, entry.details)
        if entry.details == 1:
            entry.pending = detail
            entry.first_ref = detail.reference
            return
        if entry.details == 2:
            first = entry.pending
            assert first is not None
            entry.pending = None
            entry.refs_unique = (
                first.reference is not None
                and detail.reference is not None
                and first.reference != detail.reference
                and first.reference != entry.reference
            )
            yield self._emit(self._split(first, entry), entry, first, summary, batch=True)
        elif detail.reference is not None and detail.reference == entry.first_ref:
            entry.refs_unique = False
        yield self._emit(self._split(detail, entry), entry, detail, summary, batch=True)

    def _split(self, detail: _Detail, entry: _Entry) -> Decimal:
        if detail.amount is None:
            raise self.error(
                detail.path,
                f"batch entry detail has no amount in the entry's currency {entry.currency}, "
                "so the entry cannot be split into its transactions",
            )
        credit = entry.credit if detail.credit is None else detail.credit
        signed = detail.amount if credit else -detail.amount
        entry.split_total += signed
        return signed

    def _finish_entry(
        self, ntry: etree._Element, entry: _Entry, summary: StatementSummary
    ) -> Iterator[BankTransaction]:
        if not entry.booked:
            return
        signed = entry.amount if entry.credit else -entry.amount
        if entry.details == 0:
            raw = etree.tostring(ntry, encoding="unicode", with_tail=False)
            yield self._emit(signed, entry, None, summary, batch=False, ntry=ntry, raw=raw)
        elif entry.pending is not None:
            yield self._emit(signed, entry, entry.pending, summary, batch=False, ntry=ntry)
        elif entry.split_total != signed:
            raise self.error(
                entry.path,
                f"batch entry amount {signed} differs from the sum of its {entry.details} "
                f"transactions {entry.split_total}",
            )

    def _emit(
        self,
        amount: Decimal,
        entry: _Entry,
        detail: _Detail | None,
        summary: StatementSummary,
        *,
        batch: bool,
        ntry: etree._Element | None = None,
        raw: str = "",
    ) -> BankTransaction:
        if detail is None:
            description = self._text(ntry, "AddtlNtryInf") if ntry is not None else None
            return self._count(
                summary,
                BankTransaction(
                    account_iban=summary.account,
                    booking_date=entry.booking_date,
                    value_date=entry.value_date,
                    amount=amount,
                    currency=entry.currency,
                    counterparty_name=None,
                    counterparty_iban=None,
                    description=description,
                    payment_reference=None,
                    payment_reference_issuer=None,
                    end_to_end_id=None,
                    bank_reference=entry.reference,
                    reversal=entry.reversal,
                    return_reason=None,
                    raw=raw,
                    statement=summary.index,
                ),
            )
        if batch:
            if entry.refs_unique and detail.reference and detail.reference != entry.reference:
                reference: str | None = detail.reference
            elif entry.reference:
                reference = f"{entry.reference}/{detail.position}"
            else:
                reference = None
        else:
            reference = detail.reference or entry.reference
        description = detail.description
        if description is None and not batch and ntry is not None:
            description = self._text(ntry, "AddtlNtryInf")
        name, iban = self._counterparty(
            amount > 0 or (amount == 0 and entry.credit), entry, detail, summary.account
        )
        return self._count(
            summary,
            BankTransaction(
                account_iban=summary.account,
                booking_date=entry.booking_date,
                value_date=entry.value_date,
                amount=amount,
                currency=entry.currency,
                counterparty_name=name,
                counterparty_iban=iban,
                description=description,
                payment_reference=detail.payment_reference,
                payment_reference_issuer=detail.payment_reference_issuer,
                end_to_end_id=detail.end_to_end_id,
                bank_reference=reference,
                reversal=entry.reversal,
                return_reason=detail.return_reason,
                raw=detail.raw,
                statement=summary.index,
            ),
        )

    @staticmethod
    def _counterparty(
        credit: bool, entry: _Entry, detail: _Detail, account: str | None
    ) -> tuple[str | None, str | None]:
        """The other side: the debtor pays us, we pay the creditor.

        A reversal keeps the original booking's parties, so the roles flip; and a party whose IBAN
        is our own account is us, whatever the direction says.
        """
        party, other = (detail.debtor, detail.creditor)
        if credit == entry.reversal:
            party, other = other, party
        if account and party[1] and party[1].replace(" ", "") == account.replace(" ", ""):
            party = other
        return party

    @staticmethod
    def _count(summary: StatementSummary, transaction: BankTransaction) -> BankTransaction:
        summary.transactions += 1
        summary.total += transaction.amount
        if summary.currency is None:
            summary.currency = transaction.currency
        return transaction


def _text(elem: etree._Element) -> str | None:
    text = (elem.text or "").strip()
    return text or None


def _line(elem: etree._Element) -> int | None:
    line = elem.sourceline
    return line if isinstance(line, int) else None


def _drop(elem: etree._Element) -> None:
    """Free what has been read: the element's content and the siblings already handled."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]
