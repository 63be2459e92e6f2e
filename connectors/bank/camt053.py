"""ISO 20022 camt.053 (bank-to-customer statement), versions .001.02 to .001.08.

The file is read with `iterparse` and each element is dropped once used, so a statement of any size
is read in constant memory; even a batch entry with thousands of `TxDtls` is streamed detail by
detail. DTDs are refused outright: a statement never needs one, and entity declarations are how
hostile XML (billion laughs, external entities) does its damage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

from connectors.bank.base import BankFile
from connectors.bank.camt053_parts import Part, PartReader, cut
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


# -- what is read from an element ------------------------------------------------------------------
#
# A plan names, by relative path, the descendants an element is read for. They are collected in one
# walk over the element, keeping each path's first match in document order, which is what `find`
# returns. `_FIRST` reads below only the first match of a step (`find("Sts")` then `Cd` in it),
# `_ALL` below every match (`find("RmtInf/Strd/CdtrRefInf")` looks in every `RmtInf`), and
# `_EACH` keeps the texts of all matches under the first parent (`find("RmtInf").findall("Ustrd")`).
# A leaf keeps its text (stripped, None when empty), `_ELEM` the element, a step the element.

_ALL, _FIRST = 0, 1
_EACH, _ELEM = "each", "elem"
_Plan = dict[str, Any]

_DATE_PLAN: _Plan = {"Dt": None, "DtTm": None}
_NTRY_PLAN: _Plan = {
    "Sts": (_FIRST, {"Cd": None, "Prtry": None}),
    "Amt": _ELEM,
    "CdtDbtInd": None,
    "RvslInd": None,
    "BookgDt": (_FIRST, _DATE_PLAN),
    "ValDt": (_FIRST, _DATE_PLAN),
    "AcctSvcrRef": None,
}
_PARTY_PLAN: _Plan = {"Nm": None, "Pty": (_ALL, {"Nm": None})}
_PARTY_ACCOUNT_PLAN: _Plan = {"Id": (_ALL, {"IBAN": None})}
_AMOUNT_PLAN: _Plan = {"Amt": _ELEM}
_CODE_PLAN: _Plan = {"CdOrPrtry": (_ALL, {"Cd": None})}
_TX_PLAN: _Plan = {
    "Refs": (_ALL, {"EndToEndId": None, "AcctSvcrRef": None}),
    "AmtDtls": (_ALL, {"TxAmt": (_ALL, _AMOUNT_PLAN), "CntrValAmt": (_ALL, _AMOUNT_PLAN)}),
    "Amt": _ELEM,
    "CdtDbtInd": None,
    "AddtlTxInf": None,
    "RmtInf": (
        _ALL,
        {
            "Ustrd": _EACH,
            "Strd": (
                _ALL,
                {
                    "CdtrRefInf": (
                        _FIRST,
                        {"Ref": None, "Tp": (_ALL, {"Issr": None, **_CODE_PLAN})},
                    )
                },
            ),
        },
    ),
    "RtrInf": (_ALL, {"Rsn": (_ALL, {"Cd": None, "Prtry": None})}),
    "RltdPties": (
        _ALL,
        {
            "Dbtr": (_ALL, _PARTY_PLAN),
            "DbtrAcct": (_ALL, _PARTY_ACCOUNT_PLAN),
            "Cdtr": (_ALL, _PARTY_PLAN),
            "CdtrAcct": (_ALL, _PARTY_ACCOUNT_PLAN),
        },
    ),
}
_BAL_PLAN: _Plan = {"Tp": (_ALL, _CODE_PLAN), "Amt": _ELEM, "CdtDbtInd": None}
_ACCT_PLAN: _Plan = {"Id": (_ALL, {"IBAN": None, "Othr": (_ALL, {"Id": None})}), "Ccy": None}

#: a plan turned into a function for one namespace: the element in, what was found out
_Reader = Callable[[etree._Element], dict[str, Any]]
_READERS: dict[tuple[str, int], _Reader] = {}


#: a plan with its tags qualified for one namespace: tag -> (relative path, what to keep)
_Compiled = dict[str, tuple[str, Any]]


def _reader(plan: _Plan, ns: str) -> _Reader:
    """The plan for one namespace: one walk over the element's children per step, a dict
    lookup per child (an order of magnitude fewer calls than a `find` per path)."""
    reader = _READERS.get((ns, id(plan)))
    if reader is None:
        compiled = _compile(plan, ns, "")

        def read(elem: etree._Element) -> dict[str, Any]:
            found: dict[str, Any] = {}
            _walk(elem, compiled, found, True)
            return found

        reader = _READERS[ns, id(plan)] = read
    return reader


def _compile(plan: _Plan, ns: str, prefix: str) -> _Compiled:
    compiled: _Compiled = {}
    for name, spec in plan.items():
        key = prefix + name
        if isinstance(spec, tuple):
            mode, sub = spec
            spec = (mode, _compile(sub, ns, key + "/"))
        compiled[f"{{{ns}}}{name}"] = (key, spec)
    return compiled


def _walk(elem: etree._Element, plan: _Compiled, found: dict[str, Any], first: bool) -> None:
    """Keep each path's first match in document order (what `find` returns); `first` says
    whether `elem` is the first match of its own path (`_EACH` collects only under that one)."""
    for child in elem:
        step = plan.get(child.tag)  # type: ignore[call-overload]
        if step is None:
            continue
        key, spec = step
        if spec is None:
            if key not in found:
                found[key] = (child.text or "").strip() or None
        elif spec == _ELEM:
            if key not in found:
                found[key] = child
        elif spec == _EACH:
            if first:
                found.setdefault(key, []).append((child.text or "").strip())
        elif key in found:
            if spec[0] == _ALL:
                _walk(child, spec[1], found, False)
        else:
            found[key] = child
            _walk(child, spec[1], found, True)


#: `Dt` texts already read (statements repeat a few dates thousands of times)
_DATES: dict[str, dt.date] = {}

_SAFE: dict[str, Any] = {
    "remove_comments": True,
    "remove_pis": True,
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
}


@dataclass(slots=True)
class _Entry:
    """What an `Ntry` says before its details, and how far its details have been streamed."""

    line: int | None
    where: str
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

    @property
    def path(self) -> str:
        return f"line {self.line}, {self.where}" if self.line else self.where


@dataclass(slots=True)
class _Detail:
    """One `TxDtls`, parsed, with its own amount if it carries one in the entry's currency."""

    line: int | None
    entry: _Entry
    #: its position in its `NtryDtls`
    ordinal: int
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

    @property
    def path(self) -> str:
        where = f"{self.entry.where}/NtryDtls/TxDtls[{self.ordinal}]"
        return f"line {self.line}, {where}" if self.line else where


class Camt053File(BankFile):
    """Streams the file asking the parser only for the ends of `Stmt`, `Acct`, `Bal`, `Ntry` and
    `TxDtls`; each is read in one walk, then cleared and its handled siblings deleted. Where an
    element sits (for error messages) is worked out only when something is wrong."""

    format = "camt053"
    shares_entries = True

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._ns = ""
        self._id_tag = ""
        self._find_paths: dict[str, str] = {}
        #: the element being handled, for errors that do not name one
        self._current: etree._Element | None = None
        #: per parent, how many children of each numbered name were deleted (for positions)
        self._gone: dict[etree._Element, dict[str, int]] = {}
        self._stmt: etree._Element | None = None
        self._stmt_where = ""
        #: how many `Ntry` of the current `Stmt` have ended
        self._entries = 0
        self._summary: StatementSummary | None = None
        #: read only this part of the file (`camt053_parts`), as its own document
        self.part: Part | None = None

    def transactions(self) -> Iterator[BankTransaction]:
        try:
            yield from self._stream()
        except BankFileError:
            raise
        except etree.XMLSyntaxError as exc:
            position = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else ""
            if self.part is not None:  # the whole file is read again to say where it broke
                raise self.error(position or None, f"malformed XML: {exc.msg}") from None
            try:
                opened = self._open_path()
            except BankFileError as earlier:
                raise earlier from None
            where = ", in ".join(p for p in (position, opened) if p)
            problem = re.sub(r",? line \d+, column \d+\Z", "", exc.msg or str(exc))
            raise self.error(where or None, f"malformed XML: {problem}") from None
        except (OSError, etree.LxmlError) as exc:
            raise self.error(self._current_path() or None, f"cannot be read: {exc}") from None
        except (ValueError, TypeError, LookupError, InvalidOperation, RecursionError) as exc:
            current = self._current_path() or None
            raise self.error(current, f"unreadable content: {exc}") from None

    # -- streaming ------------------------------------------------------------------------------

    def _stream(self) -> Iterator[BankTransaction]:
        self._gone, self._stmt, self._summary, self._current = {}, None, None, None
        self.position = 0
        mine, of = self.share
        self._check_root()
        ns = self._ns
        stmt_tag, ntry_tag, tx_tag = f"{{{ns}}}Stmt", f"{{{ns}}}Ntry", f"{{{ns}}}TxDtls"
        acct_tag, bal_tag, ntry_dtls_tag = f"{{{ns}}}Acct", f"{{{ns}}}Bal", f"{{{ns}}}NtryDtls"
        summary: StatementSummary | None = None
        entry: _Entry | None = None
        entry_of: etree._Element | None = None  # the `Ntry` that `entry` was read from
        details_of: etree._Element | None = None  # the `NtryDtls` whose `TxDtls` are counted
        details = 0
        context = etree.iterparse(
            self._source(),
            events=("end",),
            tag=(stmt_tag, acct_tag, bal_tag, ntry_tag, tx_tag),
            **_SAFE,
        )
        checked = False
        for _event, elem in context:
            self._current = elem
            if not checked:
                self._check_doctype(elem)
                checked = True
            tag = elem.tag
            parent = elem.getparent()
            if tag == tx_tag:
                if parent is None or parent.tag != ntry_dtls_tag:
                    continue
                if parent is not details_of:
                    details_of, details = parent, 0
                details += 1
                ntry = parent.getparent()
                if ntry is not None and ntry.tag == ntry_tag:
                    if ntry is not entry_of:
                        summary = self._statement(ntry.getparent(), summary)
                        entry = self._entry(ntry) if self.position % of == mine else None
                        entry_of = ntry
                    if entry is not None and entry.booked and summary is not None:
                        yield from self._detail(elem, entry, summary, details)
                self._drop(elem)
                continue
            if tag == stmt_tag:
                summary = self._statement(elem, summary)
                if self._stmt is not None and self._stmt is elem:
                    self._statement_id(self._stmt)
                self._drop(elem)
                continue
            if parent is None or parent.tag != stmt_tag:
                continue
            summary = self._statement(parent, summary)
            if summary is not None:
                if tag == ntry_tag:
                    if self.position % of == mine:
                        if elem is not entry_of:
                            entry = self._entry(elem)
                        assert entry is not None
                        yield from self._finish_entry(elem, entry, summary)
                    entry = entry_of = details_of = None
                elif tag == acct_tag:
                    self._account(elem, summary)
                else:
                    self._balance(elem, summary)
            if tag == ntry_tag and parent is self._stmt:
                self._entries += 1
                self.position += 1
            self._drop(elem)

    def _check_root(self) -> None:
        """Read the root element alone first: its namespace names what the stream asks for."""
        source = self._source()
        with open(source, "rb") if isinstance(source, str) else contextlib.closing(source) as raw:
            for _event, elem in etree.iterparse(raw, events=("start",), **_SAFE):
                self._current = elem
                self._check_doctype(elem)
                qname = etree.QName(elem)
                match = _ISO_NS.match(qname.namespace or "")
                if match is None or qname.localname != "Document":
                    namespace = (
                        f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
                    )
                    raise self.error(
                        f"line {_line(elem)}",
                        f"root element {qname.localname} ({namespace}) is not a camt.053 Document",
                    )
                problem = _refusal(match.group(1), match.group(2), match.group(4))
                if problem is not None:
                    raise self.error(f"line {_line(elem)}", problem)
                self._ns = qname.namespace or ""
                self._id_tag = f"{{{self._ns}}}Id"
                self._find_paths = {}
                self._current = None
                return

    def cut(self, parts: int) -> list[Part] | None:
        return cut(self.path, parts)

    def read_only(self, part: Part) -> None:
        self.part = part

    def _source(self) -> str | PartReader:
        return str(self.path) if self.part is None else PartReader(self.path, self.part)

    def _check_doctype(self, elem: etree._Element) -> None:
        docinfo: Any = elem.getroottree().docinfo
        if docinfo.doctype:
            raise self.error("DOCTYPE", "a DOCTYPE or entity declaration is refused in a statement")

    def _statement(
        self, stmt: etree._Element | None, summary: StatementSummary | None
    ) -> StatementSummary | None:
        """The summary of `stmt`, started when a `Stmt` of the `BkToCstmrStmt` is first met."""
        if stmt is self._stmt or stmt is None or stmt.tag != f"{{{self._ns}}}Stmt":
            return summary
        holder = stmt.getparent()
        if holder is None or _local(holder.tag) != "BkToCstmrStmt":
            return summary
        first = self.part.statement if self.part is not None else 0
        summary = StatementSummary(index=first + len(self.statements), account=None)
        self.statements.append(summary)
        self._stmt, self._summary, self._entries = stmt, summary, 0
        self._stmt_where = self._path_of(stmt)
        self._statement_id(stmt)
        return summary

    def _statement_id(self, stmt: etree._Element) -> None:
        """The statement's `Id` children still in the tree; the last one read is the one kept
        (those already deleted were read by `_drop`)."""
        assert self._summary is not None
        for child in stmt.iterchildren(f"{{{self._ns}}}Id"):
            self._summary.statement_id = _text(child)

    def _drop(self, elem: etree._Element) -> None:
        """Free what has been read: the element's content and the siblings already handled."""
        elem.clear()
        if elem.getprevious() is None:
            return
        parent = elem.getparent()
        assert parent is not None
        counts = self._gone.get(parent)
        if counts is None:
            for old in [k for k in self._gone if k.tag == parent.tag]:
                del self._gone[old]
            counts = self._gone[parent] = {}
        in_statement = parent is self._stmt and self._summary is not None
        while True:
            first = parent[0]
            if first is elem:
                break
            tag = first.tag
            if isinstance(tag, str):
                name = _local(tag)
                if name in _NUMBERED:
                    counts[name] = counts.get(name, 0) + 1
                elif in_statement and tag == self._id_tag:
                    self._summary.statement_id = _text(first)  # type: ignore[union-attr]
            del parent[0]

    # -- where things are -----------------------------------------------------------------------

    def _position(self, elem: etree._Element, name: str) -> int:
        """1-based position among the siblings of the same name, counting those deleted."""
        parent = elem.getparent()
        if parent is None:
            return 1
        gone = self._gone.get(parent)
        position = 1 + (gone.get(name, 0) if gone else 0)
        for sibling in elem.itersiblings(preceding=True):
            if isinstance(sibling.tag, str) and _local(sibling.tag) == name:
                position += 1
        return position

    def _path_of(self, elem: etree._Element) -> str:
        """`Document/BkToCstmrStmt/Stmt[1]/Ntry[3]`: `Stmt`, `Bal`, `Ntry`, `TxDtls` numbered."""
        parts: list[str] = []
        node: etree._Element | None = elem
        while node is not None:
            parent = node.getparent()
            name = _local(node.tag) if isinstance(node.tag, str) else "?"
            if name in _NUMBERED and parent is not None:
                name = f"{name}[{self._position(node, name)}]"
            parts.append(name)
            node = parent
        return "/".join(reversed(parts))

    def _location(self, elem: etree._Element, relative: str = "", line: int | None = None) -> str:
        path = self._path_of(elem) + (f"/{relative}" if relative else "")
        line = line or _line(elem)
        return f"line {line}, {path}" if line else path

    def _current_path(self) -> str:
        return self._path_of(self._current) if self._current is not None else ""

    def _open_path(self) -> str:
        """The elements open where the XML broke, found by reading the file again up to there,
        tracking every element: slow, and only done once the file is known to be unreadable.

        An entry's own fields are checked when its details start; the stream reads them at its
        first `TxDtls`, so an entry whose details break the XML is checked here, and its problem,
        earlier in the file, is the one raised."""
        names: list[str] = []
        self._stmt, self._gone = None, {}
        counts: list[dict[str, int]] = []
        path: list[str] = []
        try:
            for event, elem in etree.iterparse(str(self.path), events=("start", "end"), **_SAFE):
                if not isinstance(elem.tag, str):
                    continue
                if event == "end":
                    if len(names) <= 4:
                        self._drop(elem)
                    names.pop()
                    counts.pop()
                    path.pop()
                    continue
                name = _local(elem.tag)
                if name == "NtryDtls" and names[-1:] == ["Ntry"]:
                    ntry = elem.getparent()
                    if ntry is not None and ntry.find(f"{{{self._ns}}}NtryDtls") is elem:
                        self._entry(ntry, "/".join(path))
                if counts:
                    counts[-1][name] = number = counts[-1].get(name, 0) + 1
                    path.append(f"{name}[{number}]" if name in _NUMBERED else name)
                else:
                    path.append(name)
                names.append(name)
                counts.append({})
        except etree.XMLSyntaxError:
            return "/".join(path)
        except BankFileError:
            raise
        except Exception:  # noqa: BLE001 - only a better message is lost
            return ""
        return ""

    # -- element readers ------------------------------------------------------------------------

    def _find(self, elem: etree._Element, path: str) -> etree._Element | None:
        qualified = self._find_paths.get(path)
        if qualified is None:
            qualified = "/".join(f"{{{self._ns}}}{step}" for step in path.split("/"))
            self._find_paths[path] = qualified
        return elem.find(qualified)

    def _fail(self, elem: etree._Element, relative: str, problem: str) -> BankFileError:
        found = self._find(elem, relative) if relative else None
        line = _line(found) if found is not None else None
        return self.error(self._location(elem, relative, line), problem)

    def _amount(
        self, elem: etree._Element, found: dict[str, Any], path: str
    ) -> tuple[Decimal, str] | None:
        amount = found.get(path)
        if amount is None:
            return None
        text = _text(amount) or ""
        if not _AMOUNT.match(text):
            raise self._fail(elem, path, f"amount {text!r} is not a decimal amount")
        currency = (amount.get("Ccy") or "").strip()
        if not _CURRENCY.match(currency):
            raise self._fail(elem, path, f"currency {currency!r} is not an ISO 4217 code")
        return Decimal(text), currency

    def _credit(self, elem: etree._Element, found: dict[str, Any], required: bool) -> bool | None:
        text = found.get("CdtDbtInd")
        if text is None and not required:
            return None
        if text == "CRDT":
            return True
        if text == "DBIT":
            return False
        raise self._fail(elem, "CdtDbtInd", f"CdtDbtInd {text!r} is neither CRDT nor DBIT")

    def _date(
        self, elem: etree._Element, found: dict[str, Any], path: str, required: bool
    ) -> dt.date | None:
        if path not in found:
            if required:
                raise self._fail(elem, "", f"{path} is missing")
            return None
        relative = path + "/Dt"
        text = found.get(relative)
        if text is not None:
            known = _DATES.get(text)
            if known is not None:
                return known
        day = text if text and _DATE.match(text) else None
        if text is None:
            relative = path + "/DtTm"
            text = found.get(relative)
            match = _DATETIME.match(text or "")
            day = match.group(1) if match else None
        try:
            if day is None:
                raise ValueError(day)
            date = dt.date.fromisoformat(day)
        except ValueError:
            raise self._fail(elem, relative, f"{relative} {text!r} is not a date") from None
        if relative.endswith("/Dt") and text is not None:
            if len(_DATES) > 4096:
                _DATES.clear()
            _DATES[text] = date
        return date

    def _account(self, elem: etree._Element, summary: StatementSummary) -> None:
        found = _reader(_ACCT_PLAN, self._ns)(elem)
        summary.account = found.get("Id/IBAN") or found.get("Id/Othr/Id")
        summary.currency = found.get("Ccy") or summary.currency

    def _balance(self, elem: etree._Element, summary: StatementSummary) -> None:
        found = _reader(_BAL_PLAN, self._ns)(elem)
        kind = found.get("Tp/CdOrPrtry/Cd")
        if kind not in ("OPBD", "PRCD", "CLBD"):
            return
        amount_found = self._amount(elem, found, "Amt")
        if amount_found is None:
            raise self._fail(elem, "", "balance without Amt")
        amount, currency = amount_found
        value = amount if self._credit(elem, found, required=True) else -amount
        if kind == "CLBD":
            if summary.closing_balance is None:
                summary.closing_balance = value
        elif summary.opening_balance is None or kind == "OPBD":
            summary.opening_balance = value
        summary.currency = summary.currency or currency

    def _entry(self, ntry: etree._Element, where: str | None = None) -> _Entry:
        found = _reader(_NTRY_PLAN, self._ns)(ntry)
        booked = True
        status = found.get("Sts")
        if status is not None:
            code = found.get("Sts/Cd") or found.get("Sts/Prtry") or _text(status)
            booked = code == "BOOK"
        amount_found = self._amount(ntry, found, "Amt")
        if amount_found is None:
            raise self._fail(ntry, "", "entry without Amt")
        amount, currency = amount_found
        credit = self._credit(ntry, found, required=True)
        assert credit is not None
        reversal = (found.get("RvslInd") or "").lower() in ("true", "1")
        if where is not None:
            pass
        elif ntry.getparent() is self._stmt:
            where = f"{self._stmt_where}/Ntry[{self._entries + 1}]"
        else:
            where = self._path_of(ntry)
        return _Entry(
            line=_line(ntry),
            where=where,
            booked=booked,
            amount=amount,
            currency=currency,
            credit=credit,
            booking_date=self._date(ntry, found, "BookgDt", required=booked) or dt.date.min,
            value_date=self._date(ntry, found, "ValDt", required=False),
            reversal=reversal,
            # Only the servicer's own reference is taken as stable: some banks number `NtryRef`
            # per statement ("1", "2", ...), and a key that repeats across statements would
            # silently drop real transactions as duplicates. Without it, the content decides.
            reference=found.get("AcctSvcrRef"),
        )

    def _parse_detail(
        self, tx: etree._Element, entry: _Entry, position: int, ordinal: int
    ) -> _Detail:
        found = _reader(_TX_PLAN, self._ns)(tx)
        amount: Decimal | None = None
        for path in ("AmtDtls/TxAmt/Amt", "Amt", "AmtDtls/CntrValAmt/Amt"):
            amount_found = self._amount(tx, found, path)
            if amount_found is not None and amount_found[1] == entry.currency:
                amount = amount_found[0]
                break
        reference, issuer = None, None
        if "RmtInf/Strd/CdtrRefInf" in found:
            reference = found.get("RmtInf/Strd/CdtrRefInf/Ref")
            issuer = found.get("RmtInf/Strd/CdtrRefInf/Tp/Issr")
            if (
                reference
                and issuer is None
                and found.get("RmtInf/Strd/CdtrRefInf/Tp/CdOrPrtry/Cd") == "SCOR"
                and reference.upper().startswith("RF")
            ):
                issuer = "ISO"
        lines = found.get("RmtInf/Ustrd", ())
        description = " ".join(filter(None, lines)) or None
        end_to_end = found.get("Refs/EndToEndId")
        if end_to_end is not None and end_to_end.upper() == "NOTPROVIDED":
            end_to_end = None
        return_reason = found.get("RtrInf/Rsn/Cd") or found.get("RtrInf/Rsn/Prtry")
        return _Detail(
            line=_line(tx),
            entry=entry,
            ordinal=ordinal,
            position=position,
            amount=amount,
            credit=self._credit(tx, found, required=False),
            end_to_end_id=end_to_end,
            description=description or found.get("AddtlTxInf"),
            payment_reference=reference,
            payment_reference_issuer=issuer if reference else None,
            debtor=(
                found.get("RltdPties/Dbtr/Nm") or found.get("RltdPties/Dbtr/Pty/Nm"),
                found.get("RltdPties/DbtrAcct/Id/IBAN"),
            ),
            creditor=(
                found.get("RltdPties/Cdtr/Nm") or found.get("RltdPties/Cdtr/Pty/Nm"),
                found.get("RltdPties/CdtrAcct/Id/IBAN"),
            ),
            reference=found.get("Refs/AcctSvcrRef"),
            return_reason=return_reason,
            raw=etree.tostring(tx, encoding="unicode", with_tail=False),
        )

    def _additional_info(self, ntry: etree._Element) -> str | None:
        for info in ntry.iterchildren(f"{{{self._ns}}}AddtlNtryInf"):
            return _text(info)
        return None

    # -- turning entries and details into transactions ------------------------------------------

    def _detail(
        self, tx: etree._Element, entry: _Entry, summary: StatementSummary, ordinal: int
    ) -> Iterator[BankTransaction]:
        entry.details += 1
        detail = self._parse_detail(tx, entry, entry.details, ordinal)
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
        if detail is None:  # an entry without details is one transaction of its own
            reference = entry.reference
            description = self._additional_info(ntry) if ntry is not None else None
            name = iban = None
        else:
            if not batch:
                reference = detail.reference or entry.reference
            elif entry.refs_unique and detail.reference and detail.reference != entry.reference:
                reference = detail.reference
            else:
                reference = f"{entry.reference}/{detail.position}" if entry.reference else None
            description = detail.description
            if description is None and not batch and ntry is not None:
                description = self._additional_info(ntry)
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
                payment_reference=detail.payment_reference if detail else None,
                payment_reference_issuer=detail.payment_reference_issuer if detail else None,
                end_to_end_id=detail.end_to_end_id if detail else None,
                bank_reference=reference,
                reversal=entry.reversal,
                return_reason=detail.return_reason if detail else None,
                raw=detail.raw if detail else raw,
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


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
