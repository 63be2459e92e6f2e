"""camt.053 parsing: the real samples, our Dutch-bank fixture, refusals and hostile input.

Expected values were read off the XML files by hand, not copied from the parser's output.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.bank import camt053
from connectors.bank.base import HEAD_BYTES, BankFile
from connectors.bank.records import BankFileError, BankTransaction
from tests.bankparsing import FUZZ, open_with, parse_with, parses_or_refuses

DATA = Path(__file__).parent / "data" / "bankfiles"
MULTI = DATA / "camt053_001_02_multi_genkgo.xml"
V8 = DATA / "camt053_001_08_genkgo.xml"
DUTCH = DATA / "ours" / "camt053_001_02_dutch.xml"
NS2 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def open_camt(path: Path) -> BankFile:
    return open_with(camt053, camt053.Camt053File, path)


def parse(path: Path) -> tuple[BankFile, list[BankTransaction]]:
    return parse_with(camt053, camt053.Camt053File, path)


def statement(*entries: str, ns: str = NS2, balances: str = "") -> str:
    body = "".join(entries)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>1</MsgId></GrpHdr><Stmt><Id>S1</Id>"
        "<Acct><Id><IBAN>NL69INGB0123456789</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        f"{balances}{body}</Stmt></BkToCstmrStmt></Document>\n"
    )


def entry(amount: str, indicator: str, details: str = "", extra: str = "", status: str = "") -> str:
    sts = f"<Sts>{status}</Sts>" if status else ""
    dtls = f"<NtryDtls>{details}</NtryDtls>" if details else ""
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>{sts}'
        f"<BookgDt><Dt>2026-11-27</Dt></BookgDt>{extra}{dtls}</Ntry>"
    )


def tx(amount: str | None = None, ref: str | None = None, e2e: str = "E") -> str:
    refs = f"<Refs>{f'<AcctSvcrRef>{ref}</AcctSvcrRef>' if ref else ''}<EndToEndId>{e2e}</EndToEndId></Refs>"
    amt = f'<AmtDtls><TxAmt><Amt Ccy="EUR">{amount}</Amt></TxAmt></AmtDtls>' if amount else ""
    return f"<TxDtls>{refs}{amt}</TxDtls>"


def write(tmp_path: Path, text: str | bytes, name: str = "statement.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# -- the real samples ---------------------------------------------------------------------------


def test_genkgo_two_statements() -> None:
    bank_file, transactions = parse(MULTI)
    assert [t.amount for t in transactions] == [Decimal("8.85"), Decimal("-7.00")]
    assert sum(t.amount for t in transactions) == Decimal("1.85")
    assert {t.account_iban for t in transactions} == {"NL26VAYB8060476890"}
    assert [t.statement for t in transactions] == [0, 1]
    assert [t.end_to_end_id for t in transactions] == ["000000001", "000000002"]
    assert [t.description for t in transactions] == [
        "Transaction Description 1",
        "Transaction Description 2",
    ]
    assert [t.booking_date for t in transactions] == [dt.date(2014, 12, 31)] * 2
    assert [t.value_date for t in transactions] == [dt.date(2015, 1, 2)] * 2
    # no AcctSvcrRef or NtryRef anywhere in this sample
    assert [t.bank_reference for t in transactions] == [None, None]
    # a debit: the creditor is the counterparty
    assert transactions[1].counterparty_name == "Company Name 2"
    assert transactions[1].counterparty_iban == "NL56AGDH9619008421"
    # a credit whose file names only a creditor: the debtor (counterparty) is unknown
    assert transactions[0].counterparty_name is None
    assert transactions[0].raw.startswith("<TxDtls") and "000000001" in transactions[0].raw
    first, second = bank_file.statements
    assert (first.statement_id, second.statement_id) == (
        "253EURNL26VAYB8060476890",
        "254EURNL26VAYB8060476890",
    )
    assert (first.opening_balance, first.closing_balance) == (Decimal("18.15"), Decimal("27.00"))
    assert (second.opening_balance, second.closing_balance) == (Decimal("27.00"), Decimal("20.00"))
    assert (first.transactions, first.total) == (1, Decimal("8.85"))
    assert (second.transactions, second.total) == (1, Decimal("-7.00"))
    assert first.balance_problem() is None and second.balance_problem() is None


def test_genkgo_v8() -> None:
    bank_file, transactions = parse(V8)
    (only,) = transactions
    # the entry's 8.85 EUR was booked; the TxDtls/Amt of 0 SEK is not in the account's currency
    assert (only.amount, only.currency) == (Decimal("8.85"), "EUR")
    assert only.booking_date == dt.date(2014, 12, 31)  # from BookgDt/DtTm
    assert only.account_iban == "NL26VAYB8060476890"  # Acct/Id/Othr/Id
    assert only.bank_reference == "AAAASESS-FP-CN_98765/01"
    assert only.end_to_end_id == "MUELL/FINP/RA12345"
    assert (only.payment_reference, only.payment_reference_issuer) == ("4654654654654654", "BBA")
    assert (only.counterparty_name, only.counterparty_iban) == ("NAME NAME", "NL56AGDH9619008421")
    assert only.description is None
    (summary,) = bank_file.statements
    assert summary.opening_balance == Decimal("18.15")
    # the sample's CLBD says 27.00 DBIT (in SEK): the check reports it rather than hiding it
    assert summary.closing_balance == Decimal("-27.00")
    assert summary.balance_problem() is not None


# -- our Dutch-bank fixture ---------------------------------------------------------------------


def test_dutch_statement() -> None:
    bank_file, transactions = parse(DUTCH)
    assert [t.amount for t in transactions] == [
        Decimal("121.00"),
        Decimal("-100.00"),
        Decimal("-200.00"),
        Decimal("-300.00"),
        Decimal("45.50"),
        Decimal("-2.50"),
    ]
    assert sum(t.amount for t in transactions) == Decimal("-436.00")
    assert {t.account_iban for t in transactions} == {"NL69INGB0123456789"}

    paid = transactions[0]
    assert paid.payment_reference == "8000020260000415"
    assert paid.payment_reference_issuer == "CUR"
    assert paid.end_to_end_id == "E2E-2026-0003"
    assert paid.description == "Factuur 2026-0003 klantnr 42"
    assert (paid.counterparty_name, paid.counterparty_iban) == ("Klant B.V.", "NL91ABNA0417164300")
    assert paid.bank_reference == "ING20261127000001"

    batch = transactions[1:4]
    assert [t.bank_reference for t in batch] == [
        "ING20261127000002/1",
        "ING20261127000002/2",
        "ING20261127000002/3",
    ]
    assert [t.end_to_end_id for t in batch] == ["BATCH-1", None, "BATCH-3"]  # NOTPROVIDED dropped
    assert [t.counterparty_name for t in batch] == [
        "Leverancier Een",
        "Leverancier Twee",
        "Leverancier Drie",
    ]
    assert (batch[1].payment_reference, batch[1].payment_reference_issuer) == (
        "RF18539007547034",
        "ISO",
    )

    reversal = transactions[4]
    assert reversal.reversal is True and reversal.return_reason == "AC06"
    # the original debit's creditor, not ourselves (the Dbtr carries our own IBAN)
    assert (reversal.counterparty_name, reversal.counterparty_iban) == (
        "Energie N.V.",
        "NL86INGB0002445588",
    )

    costs = transactions[5]
    assert costs.bank_reference is None, "an NtryRef alone is not taken as stable"
    assert costs.description == "Kosten zakelijk betalingsverkeer"
    assert costs.raw.startswith("<Ntry")

    assert all("PENDING" not in t.raw for t in transactions)
    (summary,) = bank_file.statements
    assert summary.statement_id == "00045"
    assert summary.currency == "EUR"
    assert (summary.transactions, summary.total) == (6, Decimal("-436.00"))
    assert summary.balance_problem() is None


def test_summaries_fill_while_streaming() -> None:
    bank_file = open_camt(MULTI)
    stream = bank_file.transactions()
    assert isinstance(stream, Iterator)
    assert bank_file.statements == []
    next(stream)
    assert [s.transactions for s in bank_file.statements] == [1]
    list(stream)
    assert [s.transactions for s in bank_file.statements] == [1, 1]


# -- batches, statuses, references --------------------------------------------------------------


def test_batch_with_own_references(tmp_path: Path) -> None:
    details = tx("10.00", "R-1") + tx("20.00", "R-2") + tx("30.00", "R-3")
    path = write(
        tmp_path, statement(entry("60.00", "CRDT", details, "<AcctSvcrRef>B</AcctSvcrRef>"))
    )
    _, transactions = parse(path)
    assert [t.bank_reference for t in transactions] == ["R-1", "R-2", "R-3"]
    assert [t.amount for t in transactions] == [
        Decimal("10.00"),
        Decimal("20.00"),
        Decimal("30.00"),
    ]


def test_details_spread_over_several_ntrydtls(tmp_path: Path) -> None:
    details = tx("10.00", "R-1") + "</NtryDtls><NtryDtls>" + tx("20.00", "R-2")
    path = write(tmp_path, statement(entry("30.00", "CRDT", details)))
    _, transactions = parse(path)
    assert [t.bank_reference for t in transactions] == ["R-1", "R-2"]
    assert [t.amount for t in transactions] == [Decimal("10.00"), Decimal("20.00")]


def test_batch_repeating_the_entry_reference_gets_positions(tmp_path: Path) -> None:
    details = tx("10.00", "B") + tx("20.00", "B")
    path = write(
        tmp_path, statement(entry("30.00", "DBIT", details, "<AcctSvcrRef>B</AcctSvcrRef>"))
    )
    _, transactions = parse(path)
    assert [t.bank_reference for t in transactions] == ["B/1", "B/2"]
    assert [t.amount for t in transactions] == [Decimal("-10.00"), Decimal("-20.00")]


def test_batch_detail_with_its_own_direction(tmp_path: Path) -> None:
    details = tx("50.00") + tx("20.00").replace("</TxDtls>", "<CdtDbtInd>DBIT</CdtDbtInd></TxDtls>")
    path = write(tmp_path, statement(entry("30.00", "CRDT", details)))
    _, transactions = parse(path)
    assert [t.amount for t in transactions] == [Decimal("50.00"), Decimal("-20.00")]
    assert [t.bank_reference for t in transactions] == [None, None]


def test_batch_that_does_not_add_up(tmp_path: Path) -> None:
    details = tx("10.00") + tx("20.00")
    path = write(tmp_path, statement(entry("31.00", "CRDT", details)))
    with pytest.raises(BankFileError, match=r"Ntry\[1\].*differs from the sum"):
        parse(path)


def test_batch_without_amounts_cannot_be_split(tmp_path: Path) -> None:
    path = write(tmp_path, statement(entry("30.00", "CRDT", tx() + tx())))
    with pytest.raises(BankFileError, match=r"TxDtls\[1\].*cannot be split"):
        parse(path)


def test_statuses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        statement(
            entry("1.00", "CRDT", status="<Cd>BOOK</Cd>"),
            entry("2.00", "CRDT", status="<Cd>PDNG</Cd>"),
            entry("4.00", "CRDT", status="INFO"),
            entry("8.00", "CRDT"),
        ),
    )
    _, transactions = parse(path)
    assert [t.amount for t in transactions] == [Decimal("1.00"), Decimal("8.00")]


def test_prefixed_namespace_and_bom(tmp_path: Path) -> None:
    text = statement(entry("5.00", "DBIT")).replace("<", "<c:").replace("<c:/", "</c:")
    text = text.replace("<c:?xml", "<?xml").replace(f'xmlns="{NS2}"', f'xmlns:c="{NS2}"')
    path = write(tmp_path, b"\xef\xbb\xbf" + text.encode())
    _, transactions = parse(path)
    assert [t.amount for t in transactions] == [Decimal("-5.00")]


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "named"),
    [
        ("camt.054.001.02", "camt.054 (debit/credit notification)"),
        ("camt.052.001.08", "camt.052 (intraday account report)"),
        ("camt.053.001.01", "camt.053.001.01 is not supported"),
        ("camt.053.001.09", "camt.053.001.09 is not supported"),
        ("pain.001.001.03", "pain.001 (payment initiation)"),
    ],
)
def test_other_iso_messages_are_refused_by_name(tmp_path: Path, namespace: str, named: str) -> None:
    ns = f"urn:iso:std:iso:20022:tech:xsd:{namespace}"
    path = write(tmp_path, statement(entry("1.00", "CRDT"), ns=ns))
    with pytest.raises(BankFileError) as caught:
        camt053.sniff(path, path.read_bytes())
    assert named in str(caught.value)
    with pytest.raises(BankFileError, match="not supported"):
        list(camt053.Camt053File(path).transactions())


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b":20:STARTUMS\r\n:25:NL69INGB0123456789",
        b'"Datum";"Bedrag"\n',
        b"<html><body/></html>",
    ],
)
def test_not_ours(tmp_path: Path, head: bytes) -> None:
    assert camt053.sniff(tmp_path / "x", head) is None


def test_document_without_namespace_is_ours_to_explain(tmp_path: Path) -> None:
    path = write(tmp_path, statement(entry("1.00", "CRDT"), ns="urn:example:other"))
    with pytest.raises(BankFileError, match=r"line 2: root element Document .*not a camt.053"):
        parse(path)
    path = write(tmp_path, "<Document>")
    with pytest.raises(
        BankFileError, match=r"camt053: line 1: root element Document \(no namespace\)"
    ):
        parse(path)


def test_truncated_sample(tmp_path: Path) -> None:
    data = DUTCH.read_bytes()
    path = write(tmp_path, data[: len(data) // 2])
    with pytest.raises(BankFileError) as caught:
        parse(path)
    assert caught.value.format == "camt053"
    assert caught.value.where is not None and caught.value.where.startswith("line ")
    assert "Stmt[1]" in caught.value.where


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE Document [\n <!ENTITY a "lollollollollollollollollollol">\n'
    + "".join(f' <!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n' for i in range(9))
    + f']>\n<Document xmlns="{NS2}"><BkToCstmrStmt><Stmt><Id>&j;</Id></Stmt></BkToCstmrStmt>'
    "</Document>\n"
)


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    started = time.monotonic()
    with pytest.raises(BankFileError, match="DOCTYPE"):
        camt053.sniff(path, path.read_bytes()[:HEAD_BYTES])
    with pytest.raises(BankFileError, match="DOCTYPE"):
        list(camt053.Camt053File(path).transactions())
    assert time.monotonic() - started < 1


def test_doctype_after_a_long_prologue_is_refused(tmp_path: Path) -> None:
    comment = "<!-- " + "x" * (2 * HEAD_BYTES) + " -->\n"
    hostile = BILLION_LAUGHS.replace("<!DOCTYPE", comment + "<!DOCTYPE", 1)
    path = write(tmp_path, hostile)
    assert camt053.sniff(path, path.read_bytes()[:HEAD_BYTES]) is None  # root not in the head
    with pytest.raises(BankFileError, match="DOCTYPE"):
        list(camt053.Camt053File(path).transactions())


def test_external_entity_is_refused(tmp_path: Path) -> None:
    text = statement(entry("1.00", "CRDT")).replace(
        "<Document", '<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///nonexistent">]>\n<Document', 1
    )
    path = write(tmp_path, text.replace("<Id>S1</Id>", "<Id>&x;</Id>"))
    with pytest.raises(BankFileError, match="DOCTYPE"):
        list(camt053.Camt053File(path).transactions())


def test_wrong_encoding(tmp_path: Path) -> None:
    data = DUTCH.read_bytes().replace(b"Klant B.V.", "Kl\u00e4nt".encode("latin-1"))
    path = write(tmp_path, data)
    with pytest.raises(BankFileError) as caught:
        parse(path)
    assert "encoding" in caught.value.problem
    assert caught.value.where is not None and "Dbtr/Nm" in caught.value.where


def test_bad_amount_names_the_element(tmp_path: Path) -> None:
    path = write(tmp_path, statement(entry("1,00", "CRDT"), entry("12x", "CRDT")))
    with pytest.raises(BankFileError) as caught:
        parse(path)
    assert caught.value.where is not None and "Ntry[1]/Amt" in caught.value.where


def test_bad_indicator_and_date(tmp_path: Path) -> None:
    with pytest.raises(BankFileError, match=r"Ntry\[1\]/CdtDbtInd.*neither CRDT nor DBIT"):
        parse(write(tmp_path, statement(entry("1.00", "CREDIT"))))
    bad_date = statement(entry("1.00", "CRDT")).replace("2026-11-27", "2026-02-30")
    with pytest.raises(BankFileError, match=r"BookgDt/Dt.*not a date"):
        parse(write(tmp_path, bad_date))


# -- fuzzing: every input yields transactions or a BankFileError, nothing else --------------------


def drain(path: Path) -> None:
    parses_or_refuses(camt053, camt053.Camt053File, path)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_any_bytes(tmp_path: Path, data: bytes) -> None:
    drain(write(tmp_path, data, "fuzz.xml"))


SAMPLES = [MULTI.read_bytes(), V8.read_bytes(), DUTCH.read_bytes()]


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
    drain(write(tmp_path, bytes(data), "mutated.xml"))


# -- streaming: what is read in one walk, positions after deletion, constant memory -------------


def _expected(elem, plan, ns: str, prefix: str = "", base=None, first_at: str = ""):  # type: ignore[no-untyped-def]
    """What `find` says for every path of a plan, steps marked `_FIRST` read below their first
    match only, `_EACH` as `find(parent).findall(leaf)`: the reference for `camt053._reader`."""
    base = elem if base is None else base
    expected: dict[str, object] = {}

    def q(path: str) -> str:
        return "/".join(f"{{{ns}}}{step}" for step in path.split("/"))

    for name, spec in plan.items():
        key, rel = prefix + name, (prefix[len(first_at) :] + name)
        if spec == camt053._EACH:
            parent_path = rel.rpartition("/")[0]
            parent = base.find(q(parent_path)) if parent_path else base
            if parent is not None and parent.findall(q(name)):
                expected[key] = [(e.text or "").strip() for e in parent.findall(q(name))]
            continue
        found = base.find(q(rel))
        if found is None:
            continue
        if spec is None:
            expected[key] = (found.text or "").strip() or None
        elif spec == camt053._ELEM:
            expected[key] = found
        else:
            expected[key] = found
            mode, sub = spec
            if mode == camt053._FIRST:
                expected.update(_expected(elem, sub, ns, key + "/", found, key + "/"))
            else:
                expected.update(_expected(elem, sub, ns, key + "/", base, first_at))
    return expected


def test_reader_matches_find(tmp_path: Path) -> None:
    # several RmtInf (Ustrd of the first only, CdtrRefInf from any), a first CdtrRefInf without
    # Ref, empty leaves, parties in v8 style, repeated Refs: all as `find` would have it
    tricky = (
        "<TxDtls><Refs/><Refs><EndToEndId> </EndToEndId><EndToEndId>E2</EndToEndId></Refs>"
        "<RmtInf><Ustrd>a</Ustrd><Ustrd/><Ustrd> b </Ustrd></RmtInf>"
        "<RmtInf><Ustrd>not read</Ustrd><Strd><CdtrRefInf><Tp><Issr>X</Issr></Tp></CdtrRefInf>"
        "<CdtrRefInf><Ref>second</Ref></CdtrRefInf></Strd></RmtInf>"
        "<RltdPties><Dbtr><Pty><Nm>P</Nm></Pty></Dbtr><Dbtr><Nm>late</Nm></Dbtr>"
        "<DbtrAcct><Id/></DbtrAcct><DbtrAcct><Id><IBAN>NL1</IBAN></Id></DbtrAcct></RltdPties>"
        "<RtrInf><Rsn><Prtry>P1</Prtry></Rsn><Rsn><Cd>AC06</Cd></Rsn></RtrInf>"
        '<AmtDtls><TxAmt/><TxAmt><Amt Ccy="EUR">1.00</Amt></TxAmt></AmtDtls></TxDtls>'
    )
    extra = "<Sts>INFO</Sts><Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>x</DtTm></BookgDt>"
    path = write(tmp_path, statement(entry("1.00", "CRDT", tricky, extra)))
    from lxml import etree

    tree = etree.parse(str(path))
    ntry = tree.find(f".//{{{NS2}}}Ntry")
    tx = tree.find(f".//{{{NS2}}}TxDtls")
    assert ntry is not None and tx is not None
    for elem, plan in ((ntry, camt053._NTRY_PLAN), (tx, camt053._TX_PLAN)):
        got = camt053._reader(plan, NS2)(elem)
        assert got == _expected(elem, plan, NS2)
    got = camt053._reader(camt053._TX_PLAN, NS2)(tx)
    assert got["RmtInf/Ustrd"] == ["a", "", "b"]
    assert got["RmtInf/Strd/CdtrRefInf/Tp/Issr"] == "X" and "RmtInf/Strd/CdtrRefInf/Ref" not in got
    assert got["Refs/EndToEndId"] is None


def test_positions_count_what_was_already_dropped(tmp_path: Path) -> None:
    entries = [entry(f"{n}.00", "CRDT", tx(f"{n}.00")) for n in range(1, 40)]
    path = write(tmp_path, statement(*entries, entry("1.00", "CREDIT")))
    with pytest.raises(BankFileError, match=r"Stmt\[1\]/Ntry\[40\]/CdtDbtInd.*neither"):
        parse(path)
    details = "".join(tx("1.00") for _ in range(30)) + tx()
    path = write(tmp_path, statement(entry("1.00", "CRDT"), entry("31.00", "CRDT", details)))
    with pytest.raises(BankFileError, match=r"Ntry\[2\]/NtryDtls/TxDtls\[31\].*cannot be split"):
        parse(path)
    text = statement(*entries).replace('<Amt Ccy="EUR">25.00</Amt>', "<Amt Ccy=EUR>25.00</Amt>")
    with pytest.raises(BankFileError) as caught:
        parse(write(tmp_path, text.replace("</Stmt>", "</Stmt><Stmt>", 1) + "</Stmt>"))
    assert "malformed XML" in caught.value.problem
    assert caught.value.where is not None and "Stmt[1]/Ntry[25]" in caught.value.where


def test_statement_ids_and_second_statement_errors(tmp_path: Path) -> None:
    one = statement(entry("1.00", "CRDT"))
    head, _, rest = one.partition("<Stmt>")
    stmt = "<Stmt>" + rest.partition("</Stmt>")[0] + "</Stmt>"
    second = stmt.replace("<Id>S1</Id>", "<Id>S2</Id>").replace("1.00", "2,00")
    path = write(tmp_path, head + stmt + stmt.replace("S1", "S2") + "</BkToCstmrStmt></Document>")
    bank_file, transactions = parse(path)
    assert [s.statement_id for s in bank_file.statements] == ["S1", "S2"]
    assert [t.statement for t in transactions] == [0, 1]
    path = write(tmp_path, head + stmt + second + "</BkToCstmrStmt></Document>")
    with pytest.raises(BankFileError, match=r"Stmt\[2\]/Ntry\[1\]/Amt"):
        parse(path)


def test_tree_stays_small_while_streaming(tmp_path: Path) -> None:
    """Entries, and the details of one batch entry, are dropped once read."""
    entries = [entry(f"{n}.00", "CRDT", tx(f"{n}.00")) for n in range(1, 2001)]
    batch = entry("2000.00", "DBIT", "".join(tx("1.00") for _ in range(2000)))
    path = write(tmp_path, statement(*entries, batch))
    bank_file = open_camt(path)
    largest = count = 0
    for _ in bank_file.transactions():
        count += 1
        if count % 100 == 0:
            current = bank_file._current  # type: ignore[attr-defined]
            largest = max(largest, sum(1 for _ in current.getroottree().getroot().iter()))
    assert count == 4000
    from lxml import etree

    total = sum(1 for _ in etree.parse(str(path)).iter())
    # what is left is the parser's read-ahead (one 32 KiB chunk), not the file
    assert total > 30_000 and 0 < largest < 3_000
