"""The receivables report on a hand-made ledger, on SQLite and PostgreSQL: the ageing buckets and
exceptions a bookkeeper acts on, checked to the cent in all three renderings, and the command.

Every expected amount below is written out by hand from the ledger in `ledger`, not computed
from the report's own code.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import lxml.html
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from stdnum.iso7064 import mod_97_10

from store.report import InvoiceRow, TransactionRow
from store.schema import invoices
from tests.reconciliation_book import NOW, Book
from workers.cli import cli
from workers.reconciliation.engine import reconcile
from workers.reconciliation.report import (
    CSV_COLUMNS,
    Report,
    bucket_for,
    build_report,
    days_overdue,
    load_report,
    money,
    plain,
    render_csv,
    render_html,
    render_text,
)
from workers.reconciliation.review import match

TODAY = dt.date(2026, 6, 1)
SCRIPT = "<script>alert(1)</script>"


def rf(body: str) -> str:
    """A valid RF creditor reference (ISO 11649) for `body`."""
    return "RF" + mod_97_10.calc_check_digits(body + "RF") + body


@dataclass
class Ledger:
    book: Book
    ids: dict[str, int]


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    """Today is 2026-06-01. Receivables (positive total, open amount not zero):

    | number    | customer        | due        | days | bucket      | open    | status                     |
    | 2026-0001 | Bakkerij Jansen | 2026-06-10 |    0 | not yet due |  100.00 | not_due                    |
    | 2026-0002 | Garage De Vries | 2026-05-20 |   12 | 1-30        |  200.00 | open                       |
    | 2026-0003 | Garage De Vries | 2026-04-15 |   47 | 31-60       |  300.50 | open                       |
    | 2026-0004 | <script>...     | 2026-03-10 |   83 | 61-90       |  400.00 | open                       |
    | 2026-0005 | Hotel Zon & Zee | 2026-01-15 |  137 | over 90     |  750.00 | partially_paid (bank 250)  |
    | 2026-0006 | Bakkerij Jansen | 2026-05-01 |   31 | 31-60       |  121.00 | paid_without_bank_evidence |
    | 2026-0009 | Hotel Zon & Zee | 2026-05-15 |   17 | 1-30        |  -20.00 | overpaid (bank 70 on 50)   |
    | 2026-0015 | Drukkerij Noord | 2026-05-25 |    7 | 1-30        |   50.00 | partially_paid (bank 100)  |

    Not receivable: 2026-0008 (80.00, bank paid it, source does not know: an exception),
    2026-0010 (reconciled), 2026-0011 (a credit note of -25.00, listed apart), a draft, a
    cancelled and a deleted invoice.

    Incoming money still waiting: 45.00 (2026-04-20, unmatched), 300.00 (2026-04-25, 100.00 of
    it confirmed on 2026-0015), 200.00 (2026-05-01, suggested for 2026-0002 by name), 34.00
    (2026-05-17, 15 days: old), 33.00 (2026-05-18, 14 days: not old yet); -500.00 goes out.
    """
    book = Book(database_url)
    ids: dict[str, int] = {}
    ids["0001"] = book.invoice("2026-0001", "100.00", customer="c1", due=dt.date(2026, 6, 10))
    ids["0002"] = book.invoice(
        "2026-0002", "200.00", customer="c2", name="Garage De Vries", due=dt.date(2026, 5, 20)
    )
    ids["0003"] = book.invoice(
        "2026-0003", "300.50", customer="c2", name="Garage De Vries", due=dt.date(2026, 4, 15)
    )
    ids["0004"] = book.invoice(
        "2026-0004", "400.00", customer="c3", name=SCRIPT, due=dt.date(2026, 3, 10)
    )
    ids["0005"] = book.invoice(
        "2026-0005",
        "1000.00",
        customer="c4",
        name="Hotel Zon & Zee",
        state="late",
        paid="250.00",
        reference=rf("A1005"),
        due=dt.date(2026, 1, 15),
    )
    ids["0006"] = book.invoice(
        "2026-0006", "121.00", customer="c1", state="paid", paid="121.00", due=dt.date(2026, 5, 1)
    )
    ids["0008"] = book.invoice(
        "2026-0008",
        "80.00",
        customer="c2",
        name="Garage De Vries",
        reference=rf("B2007"),
        due=dt.date(2026, 5, 5),
    )
    ids["0009"] = book.invoice(
        "2026-0009",
        "50.00",
        customer="c4",
        name="Hotel Zon & Zee",
        state="paid",
        paid="50.00",
        reference=rf("C3009"),
        due=dt.date(2026, 5, 15),
    )
    ids["0010"] = book.invoice(
        "2026-0010",
        "60.00",
        customer="c1",
        state="paid",
        paid="60.00",
        reference=rf("D4001"),
        due=dt.date(2026, 4, 1),
    )
    ids["0011"] = book.invoice(
        "2026-0011", "-25.00", customer="c2", name="Garage De Vries", due=dt.date(2026, 5, 1)
    )
    ids["0015"] = book.invoice(
        "2026-0015",
        "150.00",
        customer="c5",
        name="Drukkerij Noord",
        state="partially_paid",
        paid="100.00",
        due=dt.date(2026, 5, 25),
    )
    book.invoice("2026-0012", "999.00", customer="c1", state="draft")
    book.invoice("2026-0013", "888.00", customer="c1", state="cancelled")
    ids["0014"] = book.invoice("2026-0014", "777.00", customer="c1", due=dt.date(2026, 1, 1))

    book.tx("250.00", reference=rf("A1005"), iban=None, booked=dt.date(2026, 5, 5))
    book.tx("80.00", reference=rf("B2007"), iban=None, booked=dt.date(2026, 5, 6))
    book.tx("70.00", reference=rf("C3009"), iban=None, booked=dt.date(2026, 5, 7))
    book.tx("60.00", reference=rf("D4001"), iban=None, booked=dt.date(2026, 5, 8))
    ids["gift"] = book.tx(
        "45.00",
        text="gift",
        name="Onbekende Stichting",
        iban="NL02ABNA0123456789",
        booked=dt.date(2026, 4, 20),
    )
    ids["partial"] = book.tx(
        "300.00",
        text="diverse facturen",
        name="Drukkerij Noord",
        iban="NL44RABO0123456789",
        booked=dt.date(2026, 4, 25),
    )
    ids["by_name"] = book.tx(
        "200.00",
        text="factuur mei",
        name="Garage de Vries",
        iban="NL69INGB0123456789",
        booked=dt.date(2026, 5, 1),
    )
    ids["fifteen_days"] = book.tx(
        "34.00",
        text="contant",
        name="Kiosk",
        iban="NL27INGB0000026500",
        booked=dt.date(2026, 5, 17),
    )
    ids["fourteen_days"] = book.tx(
        "33.00",
        text="contant",
        name="Kiosk",
        iban="NL27INGB0000026500",
        booked=dt.date(2026, 5, 18),
    )
    ids["outgoing"] = book.tx(
        "-500.00",
        text="huur",
        name="Verhuurder",
        iban="NL10INGB0001234567",
        booked=dt.date(2026, 4, 1),
    )

    match(book.engine, ids["partial"], "2026-0015", Decimal("100.00"), "alice")
    reconcile(book.engine, today=TODAY)
    with book.engine.begin() as c:  # its status row stays behind: the report must ignore it
        c.execute(sa.update(invoices).where(invoices.c.id == ids["0014"]).values(deleted_at=NOW))
    yield Ledger(book, ids)
    book.engine.dispose()


@pytest.fixture
def report(ledger: Ledger) -> Report:
    return load_report(ledger.book.engine, TODAY)


def D(value: str) -> Decimal:
    return Decimal(value)


# -- the numbers ---------------------------------------------------------------------------------


def test_the_ageing_buckets_add_up_to_the_cent(ledger: Ledger, report: Report) -> None:
    buckets = {(b.currency, b.bucket): (b.count, b.amount) for b in report.buckets}
    assert buckets == {
        ("EUR", "not yet due"): (1, D("100.00")),
        ("EUR", "1-30"): (3, D("230.00")),  # 200.00 - 20.00 + 50.00
        ("EUR", "31-60"): (2, D("421.50")),  # 300.50 + 121.00
        ("EUR", "61-90"): (1, D("400.00")),
        ("EUR", "over 90"): (1, D("750.00")),
    }
    assert [b.bucket for b in report.buckets] == [
        "not yet due",
        "1-30",
        "31-60",
        "61-90",
        "over 90",
    ]
    (total,) = report.totals
    assert (total.receivables, total.open_amount, total.overdue_amount) == (
        8,
        D("1901.50"),
        D("1801.50"),
    )
    assert (total.credit_notes, total.credit_note_amount) == (1, D("-25.00"))
    assert (total.unmatched, total.unmatched_amount) == (4, D("479.00"))  # 45 + 200 + 200 + 34


def test_receivables_are_the_live_invoices_still_open(ledger: Ledger, report: Report) -> None:
    got = {
        r.number: (r.days_overdue, r.bucket, r.open_amount, r.status) for r in report.receivables
    }
    assert got == {
        "2026-0001": (0, "not yet due", D("100.00"), "not_due"),
        "2026-0002": (12, "1-30", D("200.00"), "open"),
        "2026-0003": (47, "31-60", D("300.50"), "open"),
        "2026-0004": (83, "61-90", D("400.00"), "open"),
        "2026-0005": (137, "over 90", D("750.00"), "partially_paid"),
        "2026-0006": (31, "31-60", D("121.00"), "paid_without_bank_evidence"),
        "2026-0009": (17, "1-30", D("-20.00"), "overpaid"),
        "2026-0015": (7, "1-30", D("50.00"), "partially_paid"),
    }
    assert [r.number for r in report.receivables][:2] == ["2026-0005", "2026-0004"]  # oldest first
    assert [(r.number, r.open_amount) for r in report.credit_notes] == [("2026-0011", D("-25.00"))]
    customers = [(c.customer, c.count, c.open_amount, c.overdue_amount) for c in report.customers]
    assert customers == [
        ("Hotel Zon & Zee", 2, D("730.00"), D("730.00")),
        ("Garage De Vries", 2, D("500.50"), D("500.50")),
        (SCRIPT, 1, D("400.00"), D("400.00")),
        ("Bakkerij Jansen B.V.", 2, D("221.00"), D("121.00")),
        ("Drukkerij Noord", 1, D("50.00"), D("50.00")),
    ]


def test_each_exception_kind_is_reported(ledger: Ledger, report: Report) -> None:
    got = [
        (e.kind, e.number, e.total, e.paid_at_source, e.bank_amount, e.open_amount)
        for e in report.exceptions
    ]
    assert got == [
        ("paid_without_bank_evidence", "2026-0006", D("121.00"), D("121.00"), D("0"), D("121.00")),
        ("bank_payment_not_recorded", "2026-0008", D("80.00"), D("0"), D("80.00"), D("0.00")),
        ("overpaid", "2026-0009", D("50.00"), D("50.00"), D("70.00"), D("-20.00")),
    ]
    ids = ledger.ids
    money_ = [
        (u.transaction_id, u.booking_date, u.age_days, u.amount, u.unallocated, u.status)
        for u in report.unmatched
    ]
    assert money_ == [
        (ids["gift"], dt.date(2026, 4, 20), 42, D("45.00"), D("45.00"), "unmatched"),
        (
            ids["partial"],
            dt.date(2026, 4, 25),
            37,
            D("300.00"),
            D("200.00"),
            "partially_allocated",
        ),
        (ids["by_name"], dt.date(2026, 5, 1), 31, D("200.00"), D("200.00"), "suggested"),
        (ids["fifteen_days"], dt.date(2026, 5, 17), 15, D("34.00"), D("34.00"), "unmatched"),
    ]
    assert report.unmatched[0].counterparty == "Onbekende Stichting"
    assert report.unmatched[0].description == "gift"


def test_status_counts_are_of_live_rows(ledger: Ledger, report: Report) -> None:
    assert report.invoice_statuses == {
        "not_due": 1,
        "open": 4,  # 0002, 0003, 0004 and the credit note; not the deleted 0014
        "partially_paid": 2,
        "paid_without_bank_evidence": 1,
        "bank_payment_not_recorded": 1,
        "overpaid": 1,
        "reconciled": 1,
    }
    assert report.transaction_statuses == {
        "matched": 4,
        "partially_allocated": 1,
        "suggested": 1,
        "unmatched": 3,
        "not_receivable": 1,
    }
    assert report.reconciled_at is not None


# -- the three renderings ------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """The text's lines with the column padding collapsed."""
    return [" ".join(line.split()) for line in text.splitlines()]


def test_text_reads_as_aligned_columns(ledger: Ledger, report: Report) -> None:
    text = render_text(report)
    lines = _words(text)
    assert lines[0] == "Receivables report for 2026-06-01"
    assert "EUR open receivables: 1,901.50 in 8 invoice(s), of which overdue 1,801.50" in lines
    assert "EUR open credit notes: -25.00 in 1 credit note(s)" in lines
    assert "EUR old unmatched money: 479.00 unallocated in 4 transaction(s)" in lines
    assert (
        "Invoices by status: reconciled 1, partially_paid 2, overpaid 1, "
        "paid_without_bank_evidence 1, bank_payment_not_recorded 1, open 4, not_due 1"
    ) in lines
    for expected in (
        "EUR not yet due 1 100.00",
        "EUR 1-30 3 230.00",
        "EUR 31-60 2 421.50",
        "EUR 61-90 1 400.00",
        "EUR over 90 1 750.00",
        "EUR total 8 1,901.50",
        "Hotel Zon & Zee acme 2 EUR 730.00 730.00 137",
        "2026-0005 acme Hotel Zon & Zee 2026-01-01 2026-01-15 137 EUR 750.00 partially_paid",
        "2026-0009 acme Hotel Zon & Zee 2026-05-01 2026-05-15 17 EUR -20.00 overpaid",
        "2026-0011 acme Garage De Vries 2026-04-17 2026-05-01 31 EUR -25.00 open",
        "Paid without bank evidence: the source says paid, no bank money (1)",
        "2026-0006 acme Bakkerij Jansen B.V. 2026-05-01 EUR 121.00 121.00 0.00",
        "2026-0008 acme Garage De Vries 2026-05-05 EUR 80.00 0.00 80.00",
        "2026-0009 acme Hotel Zon & Zee 2026-05-15 EUR 50.00 50.00 70.00",
        f"{ledger.ids['gift']} 2026-04-20 42 EUR 45.00 45.00 unmatched Onbekende Stichting gift",
        f"{ledger.ids['partial']} 2026-04-25 37 EUR 300.00 200.00 partially_allocated "
        "Drukkerij Noord diverse facturen",
    ):
        assert expected in lines, expected
    assert "2026-0010" not in text and "2026-0012" not in text and "2026-0014" not in text
    assert f"{ledger.ids['fourteen_days']} 2026-05-18" not in text
    # the columns line up: every row of the ageing table is as wide as its header rule
    start = lines.index("Ageing of open receivables (days past due)")
    raw = text.splitlines()[start + 1 : start + 9]
    assert len({len(line) for line in raw}) == 1, raw


def test_csv_parses_and_the_amounts_are_plain_decimals(ledger: Ledger, report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert rows and list(rows[0]) == list(CSV_COLUMNS)
    sections: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        sections.setdefault(row["section"], []).append(row)
    assert set(sections) == {
        "receivable",
        "credit_note",
        "bucket",
        "customer",
        "exception",
        "unmatched_money",
    }
    assert {(r["bucket"], r["count"], r["open_amount"]) for r in sections["bucket"]} == {
        ("not yet due", "1", "100.00"),
        ("1-30", "3", "230.00"),
        ("31-60", "2", "421.50"),
        ("61-90", "1", "400.00"),
        ("over 90", "1", "750.00"),
    }
    receivables = {r["number"]: r for r in sections["receivable"]}
    assert len(receivables) == 8
    assert receivables["2026-0003"]["open_amount"] == "300.50"
    assert receivables["2026-0003"]["days"] == "47"
    assert receivables["2026-0009"]["open_amount"] == "-20.00"
    assert receivables["2026-0004"]["customer"] == SCRIPT
    assert receivables["2026-0005"]["id"] == str(ledger.ids["0005"])
    assert sum(Decimal(r["open_amount"]) for r in sections["receivable"]) == D("1901.50")
    assert [(r["number"], r["open_amount"]) for r in sections["credit_note"]] == [
        ("2026-0011", "-25.00")
    ]
    assert [
        (r["status"], r["number"], r["total"], r["paid_at_source"], r["bank_amount"])
        for r in sections["exception"]
    ] == [
        ("paid_without_bank_evidence", "2026-0006", "121.00", "121.00", "0"),
        ("bank_payment_not_recorded", "2026-0008", "80.00", "0", "80.00"),
        ("overpaid", "2026-0009", "50.00", "50.00", "70.00"),
    ]
    assert [
        (r["id"], r["date"], r["amount"], r["unallocated"], r["status"])
        for r in sections["unmatched_money"]
    ] == [
        (str(ledger.ids["gift"]), "2026-04-20", "45.00", "45.00", "unmatched"),
        (str(ledger.ids["partial"]), "2026-04-25", "300.00", "200.00", "partially_allocated"),
        (str(ledger.ids["by_name"]), "2026-05-01", "200.00", "200.00", "suggested"),
        (str(ledger.ids["fifteen_days"]), "2026-05-17", "34.00", "34.00", "unmatched"),
    ]
    assert [
        (r["customer"], r["count"], r["open_amount"], r["overdue_amount"], r["days"])
        for r in sections["customer"]
    ] == [
        ("Hotel Zon & Zee", "2", "730.00", "730.00", "137"),
        ("Garage De Vries", "2", "500.50", "500.50", "47"),
        (SCRIPT, "1", "400.00", "400.00", "83"),
        ("Bakkerij Jansen B.V.", "2", "221.00", "121.00", "31"),
        ("Drukkerij Noord", "1", "50.00", "50.00", "7"),
    ]


def find(node: lxml.html.HtmlElement, path: str) -> list[lxml.html.HtmlElement]:
    """The elements `path` selects (the stubs type xpath() as any XPath result)."""
    found = node.xpath(path)
    assert isinstance(found, list)
    elements = [e for e in found if isinstance(e, lxml.html.HtmlElement)]
    assert len(elements) == len(found)
    return elements


def _table(doc: lxml.html.HtmlElement, table_id: str) -> list[list[str]]:
    (table,) = find(doc, f'//table[@id="{table_id}"]')
    assert table.get("class") == "sortable"
    return [[cell.text_content() for cell in find(tr, "./td")] for tr in find(table, "./tbody/tr")]


def test_html_is_one_offline_page_with_sortable_tables_and_a_chart(
    ledger: Ledger, report: Report
) -> None:
    page = render_html(report)
    doc = lxml.html.document_fromstring(page)

    buckets = _table(doc, "buckets")
    assert buckets == [
        ["EUR", "not yet due", "1", "100.00"],
        ["EUR", "1-30", "3", "230.00"],
        ["EUR", "31-60", "2", "421.50"],
        ["EUR", "61-90", "1", "400.00"],
        ["EUR", "over 90", "1", "750.00"],
    ]
    (footer,) = find(doc, '//table[@id="buckets"]/tfoot/tr')
    assert [td.text_content() for td in footer] == ["EUR", "total", "8", "1,901.50"]
    receivables = {row[0]: row for row in _table(doc, "receivables")}
    assert receivables["2026-0003"][5:9] == ["47", "31-60", "EUR", "300.50"]
    (cell,) = find(doc, '//table[@id="receivables"]//td[text()="300.50"]')
    assert cell.get("data-value") == "300.50"  # the sorter compares plain numbers
    assert [row[0] for row in _table(doc, "credit_notes")] == ["2026-0011"]
    assert [row[0] for row in _table(doc, "paid_without_bank_evidence")] == ["2026-0006"]
    assert [row[0] for row in _table(doc, "bank_payment_not_recorded")] == ["2026-0008"]
    assert [row[5:8] for row in _table(doc, "overpaid")] == [["50.00", "50.00", "70.00"]]
    assert [(row[1], row[5], row[6]) for row in _table(doc, "unmatched_money")] == [
        ("2026-04-20", "45.00", "unmatched"),
        ("2026-04-25", "200.00", "partially_allocated"),
        ("2026-05-01", "200.00", "suggested"),
        ("2026-05-17", "34.00", "unmatched"),
    ]
    assert len(find(doc, '//table[@class="sortable"]')) == 8

    (svg,) = find(doc, "//svg")
    bars = find(svg, './/rect[@class="bar"]')
    assert [(b.get("data-bucket"), b.get("data-amount")) for b in bars] == [
        ("not yet due", "100.00"),
        ("1-30", "230.00"),
        ("31-60", "421.50"),
        ("61-90", "400.00"),
        ("over 90", "750.00"),
    ]
    heights = [int(b.get("height")) for b in bars]
    assert heights[4] == max(heights) and heights[2] > heights[3] > heights[1] > heights[0] > 0
    labels = [t.text_content() for t in find(svg, './/text[@class="label"]')]
    assert labels == ["not yet due", "1-30", "31-60", "61-90", "over 90"]
    assert "750.00" in [t.text_content() for t in find(svg, './/text[@class="amount"]')]

    # offline: nothing is fetched, scripts are inline and allowed by their hash alone
    for element in doc.iter():
        for attribute in ("src", "href", "xlink:href", "action"):
            value = (element.get(attribute) or "").strip().lower()
            assert not value.startswith(("http://", "https://", "//")), (element.tag, value)
    assert not find(doc, "//link | //img | //iframe | //object | //script[@src]")
    assert "http://" not in page and "https://" not in page
    (script,) = find(doc, "//script")
    digest = base64.b64encode(hashlib.sha256(script.text.encode()).digest()).decode()
    (meta,) = find(doc, '//meta[@http-equiv="Content-Security-Policy"]')
    policy = meta.get("content") or ""
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy

    # a customer called <script> is text, never markup
    assert "alert" not in script.text
    assert all("alert" not in (s.text or "") for s in find(doc, "//script"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert find(doc, f'//table[@id="receivables"]//td[text()="{SCRIPT}"]')


# -- pure parts ----------------------------------------------------------------------------------


def test_bucket_boundaries_and_due_dates() -> None:
    assert [bucket_for(d) for d in (0, 1, 30, 31, 60, 61, 90, 91, 4000)] == [
        "not yet due",
        "1-30",
        "1-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "over 90",
        "over 90",
    ]
    assert days_overdue(dt.date(2026, 6, 2), None, TODAY) == 0
    assert days_overdue(TODAY, None, TODAY) == 0  # due today is not overdue yet
    assert days_overdue(None, dt.date(2026, 5, 22), TODAY) == 10  # due on its date
    assert days_overdue(None, None, TODAY) == 0


def test_amounts_keep_every_digit() -> None:
    assert money(D("1234567.5")) == "1,234,567.50"
    assert money(D("0.125")) == "0.125"
    assert money(D("-0.00")) == "0.00"
    assert plain(D("1E+2")) == "100"
    assert plain(D("-0.00")) == "0.00"
    assert plain(D("363.0")) == "363.0"


def _invoice(id_: int, currency: str, total: str, due: dt.date, customer: str) -> InvoiceRow:
    return InvoiceRow(
        id=id_,
        source="acme",
        number=f"N{id_}",
        customer_remote_id=customer,
        customer_name=customer.upper(),
        invoice_date=due - dt.timedelta(days=14),
        due_date=due,
        currency=currency,
        total=D(total),
        total_paid=D("0"),
        state="open",
        status=None,
        bank_amount=None,
        open_amount=None,
    )


def test_currencies_are_never_added_together() -> None:
    rows = [
        _invoice(1, "EUR", "100.00", dt.date(2026, 5, 20), "a"),
        _invoice(2, "USD", "70.00", dt.date(2026, 5, 20), "a"),
        _invoice(3, "USD", "0.10", dt.date(2026, 1, 1), "b"),
    ]
    money_in = [
        TransactionRow(
            9,
            "NL91ABNA0417164300",
            dt.date(2026, 1, 1),
            D("-5"),
            "EUR",
            None,
            None,
            None,
            None,
            "unmatched",
            D("0"),
            D("-5"),
        )
    ]
    report = build_report(TODAY, rows, money_in, {}, {})
    assert [(b.currency, b.bucket, b.amount) for b in report.buckets if b.count] == [
        ("EUR", "1-30", D("100.00")),
        ("USD", "1-30", D("70.00")),
        ("USD", "over 90", D("0.10")),
    ]
    assert len(report.buckets) == 10
    assert [(c.currency, c.customer, c.open_amount) for c in report.customers] == [
        ("EUR", "A", D("100.00")),
        ("USD", "A", D("70.00")),
        ("USD", "B", D("0.10")),
    ]
    assert [(t.currency, t.open_amount) for t in report.totals] == [
        ("EUR", D("100.00")),
        ("USD", D("70.10")),
    ]
    assert report.unmatched == ()  # outgoing money is no receivable, however old
    assert "not reconciled" in render_text(report)
    assert len(find(lxml.html.document_fromstring(render_html(report)), "//svg")) == 2


def test_before_the_first_reconciliation_the_open_amount_is_the_total(database_url: str) -> None:
    book = Book(database_url)
    try:
        book.invoice("2026-0100", "99.95", due=dt.date(2026, 5, 1))
        report = load_report(book.engine, TODAY)
    finally:
        book.engine.dispose()
    assert [(r.number, r.open_amount, r.status, r.bucket) for r in report.receivables] == [
        ("2026-0100", D("99.95"), None, "31-60")
    ]
    assert report.reconciled_at is None
    text = render_text(report)
    assert "Reconciliation has not run yet: open amounts are the invoice totals." in text
    assert "Old unmatched money: incoming, booked more than 14 days ago (0)" in text


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "invoice-sync.toml"
    path.write_text(f'database_url = "{database_url}"\n')
    return path


def test_the_report_command_writes_each_format(
    ledger: Ledger, config: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.startswith("Receivables report for ")
    assert "2026-0005" in result.stdout and "Hotel Zon & Zee" in result.stdout

    for fmt in ("text", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        result = runner.invoke(
            cli,
            ["--config", str(config), "report", "--format", fmt, "--out", str(out)],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{fmt} report written to {out}\n"
        body = out.read_text(encoding="utf-8")
        assert "2026-0005" in body
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(body, newline="")))
            numbers = {r["number"] for r in rows if r["section"] == "receivable"}
            assert {"2026-0001", "2026-0004", "2026-0015"} <= numbers
        if fmt == "html":
            doc = lxml.html.document_fromstring(body)
            assert len(find(doc, '//svg//rect[@class="bar"]')) == 5
            assert find(doc, f'//td[text()="{SCRIPT}"]')

    result = runner.invoke(
        cli, ["--config", str(config), "report", "--format", "pdf"], catch_exceptions=False
    )
    assert result.exit_code == 2 and "'pdf' is not one of" in result.stderr


def test_a_report_into_a_missing_folder_is_one_line_and_exit_1(
    ledger: Ledger, config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no" / "such" / "report.csv"
    result = CliRunner().invoke(
        cli, ["--config", str(config), "report", "--format", "csv", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == f"invoice-sync: cannot write {out}: No such file or directory"


def test_csv_text_from_outside_never_starts_a_spreadsheet_formula() -> None:
    from workers.reconciliation.report import _safe

    row = _safe({"description": '=HYPERLINK("http://x")', "customer": "@evil", "amount": "-5"})
    assert row == {"description": '\'=HYPERLINK("http://x")', "customer": "'@evil", "amount": "-5"}
