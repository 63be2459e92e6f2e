"""The receivables report a bookkeeper reads (`invoice-sync report`): what customers still owe, by
age, and what the reconciliation found that needs a person.

Sections:
- receivables: every live invoice with a positive total and a non-zero open amount (the
  `invoice_reconciliation.open_amount`, `total - bank amount`; the total before the engine's
  first run). The open amount is what the *bank* has not paid: an invoice the source calls paid
  without bank evidence is still open here, and an overpaid one is open with a negative amount
  (the customer's credit), both with their status beside them.
- credit notes (negative totals) are listed on their own with their negative open amount, and
  left out of the ageing buckets and customer totals, so those add up to what is owed to us.
- ageing buckets by days past the due date (the invoice date when there is none): not yet due,
  1-30, 31-60, 61-90, over 90; and the customers owing the most.
- exceptions: invoices `paid_without_bank_evidence`, `bank_payment_not_recorded`, `overpaid`,
  with the total, what the source says is paid and what the bank paid.
- old unmatched money: incoming transactions still `unmatched`, `partially_allocated` or
  `suggested`, booked more than 14 days ago.

Every total is per currency: euros and dollars are never added. Money is Decimal from the
database to the output; the CSV's amounts are plain decimal strings (`1234.50`, no grouping).
The CSV is one table with a `section` column (`receivable`, `credit_note`, `bucket`,
`customer`, `exception`, `unmatched_money`); its `id` is the invoice's local id, or the bank
transaction's in `unmatched_money` rows.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import html
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from store.report import InvoiceRow, ReportStore, TransactionRow
from workers.reconciliation.model import ZERO
from workers.reconciliation.status import INVOICE_STATUSES, TRANSACTION_STATUSES

FORMATS = ("text", "csv", "html")
#: ageing buckets: (label, the most days past due that still fall in it); the last is open-ended
BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("not yet due", 0),
    ("1-30", 30),
    ("31-60", 60),
    ("61-90", 90),
    ("over 90", None),
)
#: invoice statuses that are exceptions, in the order a bookkeeper deals with them
EXCEPTION_KINDS: tuple[tuple[str, str], ...] = (
    (
        "paid_without_bank_evidence",
        "Paid without bank evidence: the source says paid, no bank money",
    ),
    ("bank_payment_not_recorded", "Bank payment not recorded: the bank paid, the source lacks it"),
    ("overpaid", "Overpaid: the bank paid more than the total"),
)
#: incoming money older than this many days and still unclaimed is an exception
OLD_MONEY_DAYS = 14
#: customers listed, per currency
TOP_CUSTOMERS = 10
#: longest free text in a terminal line; the CSV and HTML keep it whole
TEXT_WIDTH = 40


@dataclass(frozen=True, slots=True)
class Receivable:
    invoice_id: int
    number: str | None
    source: str
    customer: str
    customer_key: str
    invoice_date: dt.date | None
    due_date: dt.date | None
    days_overdue: int
    bucket: str
    currency: str
    total: Decimal
    open_amount: Decimal
    status: str | None


@dataclass(frozen=True, slots=True)
class BucketTotal:
    currency: str
    bucket: str
    count: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class CustomerTotal:
    currency: str
    source: str
    customer: str
    count: int
    open_amount: Decimal
    overdue_amount: Decimal
    oldest_days_overdue: int


@dataclass(frozen=True, slots=True)
class InvoiceException:
    kind: str
    invoice_id: int
    number: str | None
    source: str
    customer: str
    invoice_date: dt.date | None
    due_date: dt.date | None
    currency: str
    total: Decimal
    paid_at_source: Decimal
    bank_amount: Decimal
    open_amount: Decimal


@dataclass(frozen=True, slots=True)
class UnmatchedMoney:
    transaction_id: int
    booking_date: dt.date
    age_days: int
    currency: str
    amount: Decimal
    unallocated: Decimal
    status: str
    counterparty: str | None
    counterparty_iban: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    currency: str
    receivables: int
    open_amount: Decimal
    overdue_amount: Decimal
    credit_notes: int
    credit_note_amount: Decimal
    unmatched: int
    unmatched_amount: Decimal


@dataclass(frozen=True, slots=True)
class Report:
    today: dt.date
    #: when reconciliation last finished; None when it never ran (open amounts are then totals)
    reconciled_at: dt.datetime | None
    receivables: tuple[Receivable, ...]
    credit_notes: tuple[Receivable, ...]
    buckets: tuple[BucketTotal, ...]
    customers: tuple[CustomerTotal, ...]
    exceptions: tuple[InvoiceException, ...]
    unmatched: tuple[UnmatchedMoney, ...]
    totals: tuple[CurrencyTotal, ...]
    invoice_statuses: Mapping[str, int]
    transaction_statuses: Mapping[str, int]


# -- building ------------------------------------------------------------------------------------


def days_overdue(due: dt.date | None, invoice_date: dt.date | None, today: dt.date) -> int:
    """Days past due, 0 when not yet due. Without a due date the invoice was due on its date;
    without either (a data error) it counts as not yet due rather than as the oldest debt."""
    day = due or invoice_date
    return max(0, (today - day).days) if day is not None else 0


def bucket_for(days: int) -> str:
    for label, most in BUCKETS:
        if most is None or days <= most:
            return label
    raise AssertionError("the last bucket is open-ended")


def _customer(row: InvoiceRow) -> tuple[str, str]:
    """(key, name): customers are per source, and a missing remote id falls back to the name so
    two nameless customers do not merge."""
    name = row.customer_name or row.customer_remote_id or "(no customer)"
    if row.customer_remote_id is not None:
        return f"{row.source}/{row.customer_remote_id}", name
    return f"{row.source}//{name}", name


def _open_amount(row: InvoiceRow) -> Decimal:
    return row.open_amount if row.open_amount is not None else row.total


def build_report(
    today: dt.date,
    invoices: Iterable[InvoiceRow],
    transactions: Iterable[TransactionRow],
    invoice_statuses: Mapping[str, int],
    transaction_statuses: Mapping[str, int],
    reconciled_at: dt.datetime | None = None,
) -> Report:
    """Pure: the same rows give the same report, whichever database they came from."""
    receivables: list[Receivable] = []
    credit_notes: list[Receivable] = []
    exceptions: list[InvoiceException] = []
    kinds = dict(EXCEPTION_KINDS)
    for row in invoices:
        open_ = _open_amount(row)
        key, name = _customer(row)
        if row.status in kinds:
            exceptions.append(
                InvoiceException(
                    row.status,
                    row.id,
                    row.number,
                    row.source,
                    name,
                    row.invoice_date,
                    row.due_date,
                    row.currency,
                    row.total,
                    row.total_paid,
                    row.bank_amount if row.bank_amount is not None else ZERO,
                    open_,
                )
            )
        if open_ == ZERO or row.total == ZERO:
            continue
        days = days_overdue(row.due_date, row.invoice_date, today)
        item = Receivable(
            row.id,
            row.number,
            row.source,
            name,
            key,
            row.invoice_date,
            row.due_date,
            days,
            bucket_for(days),
            row.currency,
            row.total,
            open_,
            row.status,
        )
        (receivables if row.total > ZERO else credit_notes).append(item)
    receivables.sort(
        key=lambda r: (r.currency, -r.days_overdue, r.customer, r.number or "", r.invoice_id)
    )
    credit_notes.sort(
        key=lambda r: (r.currency, -r.days_overdue, r.customer, r.number or "", r.invoice_id)
    )
    order = {kind: i for i, (kind, _) in enumerate(EXCEPTION_KINDS)}
    exceptions.sort(
        key=lambda e: (order[e.kind], e.currency, e.due_date or dt.date.min, e.invoice_id)
    )

    unmatched = [
        UnmatchedMoney(
            tx.id,
            tx.booking_date,
            (today - tx.booking_date).days,
            tx.currency,
            tx.amount,
            tx.unallocated,
            tx.status,
            tx.counterparty_name,
            tx.counterparty_iban,
            tx.description or tx.payment_reference,
        )
        for tx in transactions
        if tx.amount > ZERO and (today - tx.booking_date).days > OLD_MONEY_DAYS
    ]
    unmatched.sort(key=lambda u: (u.currency, u.booking_date, u.transaction_id))

    return Report(
        today=today,
        reconciled_at=reconciled_at,
        receivables=tuple(receivables),
        credit_notes=tuple(credit_notes),
        buckets=tuple(bucket_totals(receivables)),
        customers=tuple(customer_totals(receivables)),
        exceptions=tuple(exceptions),
        unmatched=tuple(unmatched),
        totals=tuple(currency_totals(receivables, credit_notes, unmatched)),
        invoice_statuses=dict(invoice_statuses),
        transaction_statuses=dict(transaction_statuses),
    )


def bucket_totals(receivables: Iterable[Receivable]) -> list[BucketTotal]:
    """Every bucket of every currency that has receivables, empty ones included, so each chart
    and table has the same five rows."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    amounts: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    currencies: set[str] = set()
    for r in receivables:
        currencies.add(r.currency)
        counts[r.currency, r.bucket] += 1
        amounts[r.currency, r.bucket] += r.open_amount
    return [
        BucketTotal(currency, label, counts[currency, label], amounts[currency, label])
        for currency in sorted(currencies)
        for label, _ in BUCKETS
    ]


def customer_totals(
    receivables: Iterable[Receivable], top: int = TOP_CUSTOMERS
) -> list[CustomerTotal]:
    grouped: dict[tuple[str, str], list[Receivable]] = defaultdict(list)
    for r in receivables:
        grouped[r.currency, r.customer_key].append(r)
    totals = [
        CustomerTotal(
            currency,
            items[0].source,
            items[0].customer,
            len(items),
            sum((r.open_amount for r in items), ZERO),
            sum((r.open_amount for r in items if r.days_overdue > 0), ZERO),
            max(r.days_overdue for r in items),
        )
        for (currency, _key), items in grouped.items()
    ]
    totals.sort(key=lambda c: (c.currency, -c.open_amount, c.customer, c.source))
    kept: list[CustomerTotal] = []
    per_currency: dict[str, int] = defaultdict(int)
    for total in totals:
        if per_currency[total.currency] < top:
            per_currency[total.currency] += 1
            kept.append(total)
    return kept


def currency_totals(
    receivables: Sequence[Receivable],
    credit_notes: Sequence[Receivable],
    unmatched: Sequence[UnmatchedMoney],
) -> list[CurrencyTotal]:
    currencies = sorted(
        {r.currency for r in receivables}
        | {r.currency for r in credit_notes}
        | {u.currency for u in unmatched}
    )
    result = []
    for currency in currencies:
        mine = [r for r in receivables if r.currency == currency]
        notes = [r for r in credit_notes if r.currency == currency]
        money = [u for u in unmatched if u.currency == currency]
        result.append(
            CurrencyTotal(
                currency,
                len(mine),
                sum((r.open_amount for r in mine), ZERO),
                sum((r.open_amount for r in mine if r.days_overdue > 0), ZERO),
                len(notes),
                sum((r.open_amount for r in notes), ZERO),
                len(money),
                sum((u.unallocated for u in money), ZERO),
            )
        )
    return result


def load_report(engine: Engine, today: dt.date) -> Report:
    store = ReportStore(engine)
    invoice_counts, transaction_counts = store.status_counts()
    return build_report(
        today,
        store.invoices(),
        store.waiting_money(today - dt.timedelta(days=OLD_MONEY_DAYS)),
        invoice_counts,
        transaction_counts,
        store.last_run_at(),
    )


# -- formatting helpers --------------------------------------------------------------------------


def plain(amount: Decimal) -> str:
    """Machine-readable: no exponent, no grouping, and never `-0`."""
    return f"{abs(amount) if amount == ZERO else amount:f}"


def money(amount: Decimal) -> str:
    """For people: grouped thousands and at least cents, but never a digit less than stored."""
    if amount == ZERO:
        amount = abs(amount)
    exponent = amount.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:,.{places}f}"


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value is not None else ""


def _counts(values: Mapping[str, int], known: Sequence[str]) -> str:
    """In the order the statuses are documented, unknown ones after: the same every day."""
    ordered = [s for s in known if s in values] + sorted(s for s in values if s not in known)
    return ", ".join(f"{s} {values[s]}" for s in ordered) or "none"


def _one_line(text: str | None, width: int | None = None) -> str:
    """Free text from a bank or a customer record as one terminal-safe line: control characters
    (a newline, an escape sequence) would break the columns or the terminal."""
    if not text:
        return ""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if width is not None and len(cleaned) > width:
        return cleaned[: width - 1] + "…"
    return cleaned


# -- text ----------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _receivable_rows(items: Sequence[Receivable]) -> list[list[str]]:
    return [
        [
            r.number or f"(id {r.invoice_id})",
            r.source,
            _one_line(r.customer, TEXT_WIDTH),
            _date(r.invoice_date),
            _date(r.due_date),
            str(r.days_overdue),
            r.currency,
            money(r.open_amount),
            r.status or "not reconciled",
        ]
        for r in items
    ]


_RECEIVABLE_HEADERS = (
    "number",
    "source",
    "customer",
    "invoice date",
    "due date",
    "days overdue",
    "cur",
    "open amount",
    "status",
)


def _header_lines(report: Report) -> list[str]:
    lines = [f"Receivables report for {report.today.isoformat()}"]
    if report.reconciled_at is None:
        lines.append("Reconciliation has not run yet: open amounts are the invoice totals.")
    else:
        when = report.reconciled_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"Statuses as of the last reconciliation run, {when}.")
    for t in report.totals:
        lines += [
            f"{t.currency} open receivables: {money(t.open_amount)} in {t.receivables} "
            f"invoice(s), of which overdue {money(t.overdue_amount)}",
            f"{t.currency} open credit notes: {money(t.credit_note_amount)} in "
            f"{t.credit_notes} credit note(s)",
            f"{t.currency} old unmatched money: {money(t.unmatched_amount)} unallocated in "
            f"{t.unmatched} transaction(s)",
        ]
    if not report.totals:
        lines.append("No open receivables, credit notes or old unmatched money.")
    lines.append(f"Invoices by status: {_counts(report.invoice_statuses, INVOICE_STATUSES)}")
    lines.append(
        f"Bank transactions by status: {_counts(report.transaction_statuses, TRANSACTION_STATUSES)}"
    )
    return lines


def render_text(report: Report) -> str:
    out = _header_lines(report)

    out += ["", "Ageing of open receivables (days past due)"]
    if report.buckets:
        rows = [[b.currency, b.bucket, str(b.count), money(b.amount)] for b in report.buckets]
        rows += [
            [t.currency, "total", str(t.receivables), money(t.open_amount)]
            for t in report.totals
            if t.receivables
        ]
        out += _table(("cur", "bucket", "invoices", "open amount"), rows, {2, 3})
    else:
        out.append("none")

    out += ["", f"Customers owing the most (top {TOP_CUSTOMERS} per currency)"]
    if report.customers:
        out += _table(
            ("customer", "source", "invoices", "cur", "open amount", "overdue", "oldest days"),
            [
                [
                    _one_line(c.customer, TEXT_WIDTH),
                    c.source,
                    str(c.count),
                    c.currency,
                    money(c.open_amount),
                    money(c.overdue_amount),
                    str(c.oldest_days_overdue),
                ]
                for c in report.customers
            ],
            {2, 4, 5, 6},
        )
    else:
        out.append("none")

    out += ["", "Open receivables, oldest first"]
    if report.receivables:
        out += _table(_RECEIVABLE_HEADERS, _receivable_rows(report.receivables), {5, 7})
    else:
        out.append("none")

    out += ["", "Open credit notes (not in the buckets above)"]
    if report.credit_notes:
        out += _table(_RECEIVABLE_HEADERS, _receivable_rows(report.credit_notes), {5, 7})
    else:
        out.append("none")

    for kind, title in EXCEPTION_KINDS:
        found = [e for e in report.exceptions if e.kind == kind]
        out += ["", f"{title} ({len(found)})"]
        if not found:
            out.append("none")
            continue
        out += _table(
            ("number", "source", "customer", "due date", "cur", "total", "paid (source)", "bank"),
            [
                [
                    e.number or f"(id {e.invoice_id})",
                    e.source,
                    _one_line(e.customer, TEXT_WIDTH),
                    _date(e.due_date),
                    e.currency,
                    money(e.total),
                    money(e.paid_at_source),
                    money(e.bank_amount),
                ]
                for e in found
            ],
            {5, 6, 7},
        )

    out += [
        "",
        f"Old unmatched money: incoming, booked more than {OLD_MONEY_DAYS} days ago "
        f"({len(report.unmatched)})",
    ]
    if report.unmatched:
        out += _table(
            (
                "tx",
                "booked",
                "days",
                "cur",
                "amount",
                "unallocated",
                "status",
                "counterparty",
                "description",
            ),
            [
                [
                    str(u.transaction_id),
                    u.booking_date.isoformat(),
                    str(u.age_days),
                    u.currency,
                    money(u.amount),
                    money(u.unallocated),
                    u.status,
                    _one_line(u.counterparty, TEXT_WIDTH // 2) or "?",
                    _one_line(u.description, TEXT_WIDTH),
                ]
                for u in report.unmatched
            ],
            {0, 2, 4, 5},
        )
    else:
        out.append("none")
    return "\n".join(out) + "\n"


# -- CSV -----------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "section",
    "status",
    "currency",
    "bucket",
    "count",
    "id",
    "number",
    "source",
    "customer",
    "date",
    "due_date",
    "days",
    "total",
    "paid_at_source",
    "bank_amount",
    "open_amount",
    "overdue_amount",
    "amount",
    "unallocated",
    "counterparty",
    "counterparty_iban",
    "description",
)


def _receivable_csv(section: str, r: Receivable) -> dict[str, str]:
    return {
        "section": section,
        "status": r.status or "",
        "currency": r.currency,
        "bucket": r.bucket,
        "id": str(r.invoice_id),
        "number": r.number or "",
        "source": r.source,
        "customer": r.customer,
        "date": _date(r.invoice_date),
        "due_date": _date(r.due_date),
        "days": str(r.days_overdue),
        "total": plain(r.total),
        "open_amount": plain(r.open_amount),
    }


#: columns holding text from outside (customers' names, bank descriptions)
_TEXT_COLUMNS = ("number", "source", "customer", "counterparty", "counterparty_iban", "description")


def _safe(row: dict[str, str]) -> dict[str, str]:
    """A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula: text from
    a bank description must not, so such cells get a leading apostrophe (OWASP's advice)."""
    for column in _TEXT_COLUMNS:
        value = row.get(column)
        if value and value[0] in "=+-@\t\r":
            row[column] = "'" + value
    return row


class _SafeWriter(csv.DictWriter):  # type: ignore[type-arg]
    def writerow(self, rowdict: Any) -> Any:
        return super().writerow(_safe(rowdict))


def render_csv(report: Report) -> str:
    """One table, one header whatever the data: a spreadsheet filter on `section` gives each
    part; `days` is days overdue for an invoice (the oldest invoice's for a customer) and days
    since booking for money."""
    buffer = io.StringIO()
    writer = _SafeWriter(buffer, fieldnames=CSV_COLUMNS, restval="")
    writer.writeheader()
    for r in report.receivables:
        writer.writerow(_receivable_csv("receivable", r))
    for r in report.credit_notes:
        writer.writerow(_receivable_csv("credit_note", r))
    for b in report.buckets:
        writer.writerow(
            {
                "section": "bucket",
                "currency": b.currency,
                "bucket": b.bucket,
                "count": str(b.count),
                "open_amount": plain(b.amount),
            }
        )
    for c in report.customers:
        writer.writerow(
            {
                "section": "customer",
                "currency": c.currency,
                "count": str(c.count),
                "source": c.source,
                "customer": c.customer,
                "days": str(c.oldest_days_overdue),
                "open_amount": plain(c.open_amount),
                "overdue_amount": plain(c.overdue_amount),
            }
        )
    for e in report.exceptions:
        writer.writerow(
            {
                "section": "exception",
                "status": e.kind,
                "currency": e.currency,
                "id": str(e.invoice_id),
                "number": e.number or "",
                "source": e.source,
                "customer": e.customer,
                "date": _date(e.invoice_date),
                "due_date": _date(e.due_date),
                "total": plain(e.total),
                "paid_at_source": plain(e.paid_at_source),
                "bank_amount": plain(e.bank_amount),
                "open_amount": plain(e.open_amount),
            }
        )
    for u in report.unmatched:
        writer.writerow(
            {
                "section": "unmatched_money",
                "status": u.status,
                "currency": u.currency,
                "id": str(u.transaction_id),
                "date": u.booking_date.isoformat(),
                "days": str(u.age_days),
                "amount": plain(u.amount),
                "unallocated": plain(u.unallocated),
                "counterparty": u.counterparty or "",
                "counterparty_iban": u.counterparty_iban or "",
                "description": u.description or "",
            }
        )
    return buffer.getvalue()


# -- HTML ----------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: bold; border-top: 2px solid #999; }
.note { color: #666; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
@media print { th { cursor: auto; } }
""".strip()

# Sorts on the cell's data-value when it has one (amounts, days: plain numbers), else its text.
_JS = """
(function () {
  function key(cell) {
    return cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
  }
  function sortBy(table, th, column) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.classList.contains("num");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[column]), y = key(b.cells[column]), order;
      if (numeric) {
        x = x === "" ? -Infinity : Number(x);
        y = y === "" ? -Infinity : Number(y);
        order = x < y ? -1 : x > y ? 1 : 0;
      } else {
        order = x.localeCompare(y);
      }
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th, column); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(table, th, column);
        }
      });
    });
  });
})();
""".strip()

#: bar colours from fresh to old debt
_BAR_COLOURS = ("#7aa974", "#c9c15a", "#e0a04a", "#d9703c", "#b8312f")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True, slots=True)
class _Cell:
    """A table cell: the text shown, and for numbers the plain value the sorter compares."""

    text: str
    value: str | None = None

    def html(self) -> str:
        if self.value is None:
            return f"<td>{_e(self.text)}</td>"
        return f'<td class="num" data-value="{_e(self.value)}">{_e(self.text)}</td>'


def _amount(amount: Decimal) -> _Cell:
    return _Cell(money(amount), plain(amount))


def _number(value: int) -> _Cell:
    return _Cell(str(value), str(value))


def _html_table(
    table_id: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[_Cell]],
    numeric: set[int],
    footer: Sequence[Sequence[_Cell]] = (),
) -> str:
    if not rows:
        return f'<p class="note" id="{_e(table_id)}">none</p>'
    head = "".join(
        f'<th class="num" scope="col">{_e(h)}</th>'
        if i in numeric
        else f'<th scope="col">{_e(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "\n".join("<tr>" + "".join(c.html() for c in row) + "</tr>" for row in rows)
    parts = [
        f'<table class="sortable" id="{_e(table_id)}">',
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>",
    ]
    if footer:
        foot = "\n".join("<tr>" + "".join(c.html() for c in row) + "</tr>" for row in footer)
        parts.append(f"<tfoot>\n{foot}\n</tfoot>")
    parts.append("</table>")
    return "\n".join(parts)


def _receivable_cells(items: Sequence[Receivable]) -> list[list[_Cell]]:
    return [
        [
            _Cell(r.number or f"(id {r.invoice_id})"),
            _Cell(r.source),
            _Cell(r.customer),
            _Cell(_date(r.invoice_date)),
            _Cell(_date(r.due_date)),
            _number(r.days_overdue),
            _Cell(r.bucket),
            _Cell(r.currency),
            _amount(r.open_amount),
            _Cell(r.status or "not reconciled"),
        ]
        for r in items
    ]


_RECEIVABLE_HTML_HEADERS = (
    "number",
    "source",
    "customer",
    "invoice date",
    "due date",
    "days overdue",
    "bucket",
    "currency",
    "open amount",
    "status",
)


def _chart(currency: str, buckets: Sequence[BucketTotal]) -> str:
    """An SVG bar per bucket, drawn from the Decimal totals (pixels are the only rounding);
    a negative total (credits outweighing debt) draws no bar but keeps its label."""
    width, height, top, bottom, left = 600, 280, 40, 50, 20
    slot = (width - 2 * left) // len(buckets)
    bar_width = slot * 3 // 5
    plot = height - top - bottom
    highest = max((b.amount for b in buckets), default=ZERO)
    label = f"Open receivables by age in {currency}"
    parts = [
        f'<svg class="ageing" role="img" aria-label="{_e(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{_e(label)}</title>",
        f'<line x1="{left}" y1="{top + plot}" x2="{width - left}" y2="{top + plot}" '
        'stroke="#999"/>',
    ]
    for i, b in enumerate(buckets):
        bar = int(plot * b.amount / highest) if highest > ZERO and b.amount > ZERO else 0
        x = left + i * slot + (slot - bar_width) // 2
        y = top + plot - bar
        centre = x + bar_width // 2
        colour = _BAR_COLOURS[i % len(_BAR_COLOURS)]
        tip = f"{b.bucket}: {currency} {money(b.amount)} in {b.count} invoice(s)"
        parts += [
            f'<rect class="bar" data-bucket="{_e(b.bucket)}" data-amount="{_e(plain(b.amount))}" '
            f'x="{x}" y="{y}" width="{bar_width}" height="{bar}" fill="{colour}">'
            f"<title>{_e(tip)}</title></rect>",
            f'<text class="amount" x="{centre}" y="{y - 6}" text-anchor="middle">'
            f"{_e(money(b.amount))}</text>",
            f'<text class="label" x="{centre}" y="{top + plot + 18}" text-anchor="middle">'
            f"{_e(b.bucket)}</text>",
            f'<text class="count" x="{centre}" y="{top + plot + 34}" text-anchor="middle">'
            f"{b.count} invoice(s)</text>",
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """One page that works from a file or a mail attachment, offline: inline style, an inline
    script allowed by its hash alone (so even text that slipped through escaping could not
    run), and no URL anywhere."""
    out: list[str] = [f"<h1>Receivables report for {_e(report.today.isoformat())}</h1>"]
    out.append('<ul class="summary">')
    out += [f"<li>{_e(line)}</li>" for line in _header_lines(report)[1:]]
    out.append("</ul>")

    out.append("<h2>Open receivables by age</h2>")
    currencies = sorted({b.currency for b in report.buckets})
    if not currencies:
        out.append('<p class="note">No open receivables.</p>')
    for currency in currencies:
        mine = [b for b in report.buckets if b.currency == currency]
        out.append(f"<figure>{_chart(currency, mine)}</figure>")
    out.append(
        _html_table(
            "buckets",
            ("currency", "bucket", "invoices", "open amount"),
            [
                [_Cell(b.currency), _Cell(b.bucket), _number(b.count), _amount(b.amount)]
                for b in report.buckets
            ],
            {2, 3},
            footer=[
                [_Cell(t.currency), _Cell("total"), _number(t.receivables), _amount(t.open_amount)]
                for t in report.totals
                if t.receivables
            ],
        )
    )

    out.append(f"<h2>Customers owing the most (top {TOP_CUSTOMERS} per currency)</h2>")
    out.append(
        _html_table(
            "customers",
            (
                "customer",
                "source",
                "invoices",
                "currency",
                "open amount",
                "overdue",
                "oldest days overdue",
            ),
            [
                [
                    _Cell(c.customer),
                    _Cell(c.source),
                    _number(c.count),
                    _Cell(c.currency),
                    _amount(c.open_amount),
                    _amount(c.overdue_amount),
                    _number(c.oldest_days_overdue),
                ]
                for c in report.customers
            ],
            {2, 4, 5, 6},
        )
    )

    out.append("<h2>Open receivables</h2>")
    out.append(
        _html_table(
            "receivables", _RECEIVABLE_HTML_HEADERS, _receivable_cells(report.receivables), {5, 8}
        )
    )
    out.append("<h2>Open credit notes</h2>")
    out.append('<p class="note">Negative totals; not in the ageing above.</p>')
    out.append(
        _html_table(
            "credit_notes", _RECEIVABLE_HTML_HEADERS, _receivable_cells(report.credit_notes), {5, 8}
        )
    )

    for kind, title in EXCEPTION_KINDS:
        found = [e for e in report.exceptions if e.kind == kind]
        out.append(f"<h2>{_e(title)} ({len(found)})</h2>")
        out.append(
            _html_table(
                kind,
                (
                    "number",
                    "source",
                    "customer",
                    "due date",
                    "currency",
                    "total",
                    "paid (source)",
                    "bank",
                    "open amount",
                ),
                [
                    [
                        _Cell(e.number or f"(id {e.invoice_id})"),
                        _Cell(e.source),
                        _Cell(e.customer),
                        _Cell(_date(e.due_date)),
                        _Cell(e.currency),
                        _amount(e.total),
                        _amount(e.paid_at_source),
                        _amount(e.bank_amount),
                        _amount(e.open_amount),
                    ]
                    for e in found
                ],
                {5, 6, 7, 8},
            )
        )

    out.append(
        f"<h2>Old unmatched money: incoming, booked more than "
        f"{OLD_MONEY_DAYS} days ago ({len(report.unmatched)})</h2>"
    )
    out.append(
        _html_table(
            "unmatched_money",
            (
                "transaction",
                "booked",
                "days",
                "currency",
                "amount",
                "unallocated",
                "status",
                "counterparty",
                "account",
                "description",
            ),
            [
                [
                    _number(u.transaction_id),
                    _Cell(u.booking_date.isoformat()),
                    _number(u.age_days),
                    _Cell(u.currency),
                    _amount(u.amount),
                    _amount(u.unallocated),
                    _Cell(u.status),
                    _Cell(u.counterparty or ""),
                    _Cell(u.counterparty_iban or ""),
                    _Cell(u.description or ""),
                ]
                for u in report.unmatched
            ],
            {0, 2, 4, 5},
        )
    )

    script_hash = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    body = "\n".join(out)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Receivables report {_e(report.today.isoformat())}</title>\n"
        f"<style>\n{_CSS}\n</style>\n</head>\n<body>\n{body}\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


def render(report: Report, fmt: str) -> str:
    if fmt == "text":
        return render_text(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")
