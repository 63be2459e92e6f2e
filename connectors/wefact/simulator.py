"""A WeFact API v2 simulator: one POST endpoint, `invoice list`, `invoice show` and
`invoiceline add`, over real HTTP, for tests and benchmarks (never imported by a sync).

Faithful to the seed page (`../shared/seeds/wefact-invoiceline-add.txt`) and the shelf's notes:
every call is a POST to `/v2/` carrying `api_key`, `controller`, `action` and parameters, as JSON
or form-encoded (`modified[from]=...`, `InvoiceLines[0][PriceExcl]=...`); answers carry
`controller`, `action`, `status`, `date`; errors are HTTP 200 with `"status": "error"` and
`errors[]`; field names are as the seed prints them.

Facts the seed does not settle, chosen here and kept in one place:
- `invoice list` answers `totalresults`, `currentresults`, `offset` and `invoices[]` with a
  summary per invoice (`Identifier`, `InvoiceCode`, `Debtor`, `DebtorCode`, `CompanyName`,
  `Initials`, `SurName`, `Date`, `PayBefore`, `AmountExcl`, `AmountIncl`, `AmountPaid`, `Status`,
  `SubStatus`, `Modified`), sorted by `Identifier` unless `sort` says otherwise; `limit` is at
  most 1000 (the default). `modified` / `created` filter on `{"from", "to"}`, inclusive, compared
  as WeFact stores them: local Amsterdam time without a zone (`2024-01-21 11:00:00`).
- Amounts are spelled per invoice in one of the ways WeFact installations and PHP clients send
  them: `"329.64"`, the number `329.64`, `"329,64"` or `"1.329,64"`.
- Errors: a wrong key answers `"Invalid API key"`, an unknown id `"Invoice not found"`, a bad
  parameter names it (`"Invalid value for parameter 'limit'"`).
- Payments are the invoice's `AmountPaid`, `PayDate` and `TransactionID`; paying in full sets
  status 4, in part 3. A credit invoice (status 8) has negative amounts.
- `invoice partpayment` takes `AmountPaid` (at most what is open), `PayDate` and `TransactionID`;
  `invoice markaspaid` pays what is open, with `PayDate` and `TransactionID`. Both answer the
  invoice, refuse an invoice that is not sent or partly paid, and keep the latest
  `TransactionID`. `fail_after_write` makes the answer of a payment it did record a 500 or a
  dropped connection.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connectors.simulation import (
    Faults,
    RawEndpoint,
    answered_by_fault,
    lose_answer,
    raw_number,
    serve_main,
)

#: `list` is `invoice list`, `show` is `invoice show`, `add` is `invoiceline add`, `pay` is
#: `invoice partpayment` and `invoice markaspaid`
FAULT_ENDPOINTS = ("list", "show", "add", "pay")
STATUS_LABELS = {
    0: "Concept",
    2: "Verzonden",
    3: "Deels betaald",
    4: "Betaald",
    8: "Creditfactuur",
    9: "Vervallen",
}
SPELLINGS = ("text", "number", "comma", "grouped")

_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")
_CENT = Decimal("0.01")
_PRODUCTS = (
    ("P0001", "Werkzaamheden gebaseerd op uurtarief", Decimal("100"), "", Decimal(21)),
    ("P0002", "Reiskosten à € 0,19 per km", Decimal("0.19"), "km", Decimal(21)),
    ("P0003", "Hosting pakket", Decimal("12.50"), "", Decimal(21)),
    ("P0004", "Boek: handleiding", Decimal("24.95"), "", Decimal(9)),
    ("P0005", "Licentie per gebruiker", Decimal("1249"), "", Decimal(21)),
)
_DEBTORS = (
    ("Jan Janssen B.V.", "Jan", "Janssen"),
    ("", "P.", "de Vries"),
    ("Bakkerij Jansen", "A.", "Jansen"),
    ("Stichting Buitenwerk", "M.", "Bakker"),
    ("", "S.", "Visser"),
    ("Hotel Zon & Zee", "R.", "Smit"),
)


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def spell(value: Decimal, how: str) -> Any:
    """An amount as one WeFact answer spells it."""
    text = format(_money(value), "f")
    if how == "number":
        return Decimal(text)
    if how == "comma":
        return text.replace(".", ",")
    if how == "grouped":
        sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
        whole, cents = digits.split(".")
        groups: list[str] = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        return sign + ".".join([whole, *groups]) + "," + cents
    return text


@dataclass
class _Invoice:
    identifier: int
    code: str
    debtor: int
    debtor_name: tuple[str, str, str]
    date: dt.date
    term: int
    status: int
    spelling: str
    created: str
    modified: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    paid: Decimal = Decimal(0)
    pay_date: dt.date | None = None
    transaction_id: str = ""
    #: fields served as given instead of as computed (a test's way to send a bad record)
    spoiled: dict[str, Any] = field(default_factory=dict)

    def amounts(self) -> tuple[Decimal, Decimal, Decimal]:
        excl = tax = Decimal(0)
        for line in self.lines:
            base = line["Number"] * line["PriceExcl"] * (1 - line["DiscountPercentage"] / 100)
            excl += _money(base)
            tax += _money(base * line["TaxPercentage"] / 100)
        return excl, tax, excl + tax

    def summary(self) -> dict[str, Any]:
        excl, _tax, incl = self.amounts()
        company, initials, surname = self.debtor_name
        return {
            "Identifier": self.identifier,
            "InvoiceCode": self.code,
            "Debtor": self.debtor,
            "DebtorCode": f"DB{10000 + self.debtor}",
            "CompanyName": company,
            "Initials": initials,
            "SurName": surname,
            "Date": self.date.isoformat(),
            "PayBefore": (self.date + dt.timedelta(days=self.term)).isoformat(),
            "AmountExcl": spell(excl, self.spelling),
            "AmountIncl": spell(incl, self.spelling),
            "AmountPaid": spell(self.paid, self.spelling),
            "Status": self.status,
            "SubStatus": "",
            "Modified": self.modified,
        }

    def record(self) -> dict[str, Any]:
        excl, tax, incl = self.amounts()
        company, initials, surname = self.debtor_name
        how = self.spelling
        return {
            "Identifier": self.identifier,
            "InvoiceCode": self.code,
            "Debtor": self.debtor,
            "DebtorCode": f"DB{10000 + self.debtor}",
            "Status": self.status,
            "SubStatus": "",
            "Date": self.date.isoformat(),
            "Term": self.term,
            "PayBefore": (self.date + dt.timedelta(days=self.term)).isoformat(),
            "AmountExcl": spell(excl, how),
            "AmountTax": spell(tax, how),
            "AmountIncl": spell(incl, how),
            "AmountPaid": spell(self.paid, how),
            "AmountOutstanding": spell(incl - self.paid, how),
            "Discount": 0,
            "VatCalcMethod": "excl",
            "ReferenceNumber": "",
            "CompanyName": company,
            "Initials": initials,
            "SurName": surname,
            "Country": "NL",
            "PaymentMethod": "",
            "PayDate": self.pay_date.isoformat() if self.pay_date else "",
            "TransactionID": self.transaction_id,
            "Currency": "EUR",
            "Description": "",
            "InvoiceLines": [
                {
                    **line,
                    "Number": spell(line["Number"], "text").rstrip("0").rstrip(".").rstrip(","),
                    "PriceExcl": _price(line["PriceExcl"], how),
                    "DiscountPercentage": format(line["DiscountPercentage"].normalize(), "f"),
                    "TaxPercentage": format(line["TaxPercentage"].normalize(), "f"),
                }
                for line in self.lines
            ],
            "Created": self.created,
            "Modified": self.modified,
            "Translations": {"Status": STATUS_LABELS[self.status]},
            **self.spoiled,
        }


def _price(value: Decimal, how: str) -> Any:
    """Unit prices keep their own decimals (`0.19`, `100`), spelled as the invoice's amounts."""
    text = format(value.normalize(), "f")
    if how == "number":
        return Decimal(text)
    if how in ("comma", "grouped"):
        return text.replace(".", ",")
    return text


class _Error(Exception):
    """An answer with `"status": "error"` (HTTP 200, as WeFact sends them)."""


class WeFactSimulator:
    """Seeded WeFact invoices, test controls (pay, credit, edit, delete, the clock) and faults."""

    base_path = "/v2"

    def __init__(
        self,
        *,
        token: str = "sim-wefact-key",
        invoices: int = 50,
        seed: int = 1,
        start_date: dt.date = dt.date(2025, 1, 1),
        days: int = 365,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.token = token
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._clock = clock or (lambda: dt.datetime.now(_AMSTERDAM))
        self._invoices: dict[int, _Invoice] = {}
        self._next_id = 1
        self._next_line = 1
        self._numbers = 0
        self._transactions = 0
        self._faults = Faults(FAULT_ENDPOINTS)
        #: how the next payment calls go wrong *after* the payment was recorded (`500`, `drop`)
        self.fail_after_write: list[str] = []
        live_clock = self._clock
        for _ in range(invoices):
            day = start_date + dt.timedelta(days=self._rng.randrange(days))
            # seeded invoices were made and last changed on their own date, not now
            self._clock = _fixed(dt.datetime.combine(day, dt.time(10, 30), tzinfo=_AMSTERDAM))
            self._seed_invoice(day)
        self._clock = live_clock
        self.app = Starlette(routes=[Route("/v2/", RawEndpoint(self._serve), methods=["POST"])])

    # --- data and test controls ------------------------------------------------------------

    def set_clock(self, clock: Callable[[], dt.datetime]) -> None:
        """What `Modified` says from now on (an aware datetime, written in Amsterdam time)."""
        self._clock = clock

    def _stamp(self) -> str:
        return self._clock().astimezone(_AMSTERDAM).strftime("%Y-%m-%d %H:%M:%S")

    def _seed_invoice(self, day: dt.date) -> _Invoice:
        rng = self._rng
        invoice = self.create_invoice(date=day, lines=rng.randint(1, 4), sent=rng.random() > 0.05)
        if invoice.status == 2:
            roll = rng.random()
            if roll < 0.6:
                self.pay(invoice.identifier)
            elif roll < 0.7:
                self.pay(invoice.identifier, _money(invoice.amounts()[2] / 2))
        return invoice

    def create_invoice(
        self, *, date: dt.date, lines: int = 1, sent: bool = True, credit: bool = False
    ) -> _Invoice:
        rng = self._rng
        with self._lock:
            identifier = self._next_id
            self._next_id += 1
            if sent:
                self._numbers += 1
                code = f"F{date.year}-{self._numbers:04d}"
            else:
                code = f"[concept]{identifier:04d}"
            debtor = rng.randrange(len(_DEBTORS))
            stamp = self._stamp()
            invoice = _Invoice(
                identifier=identifier,
                code=code,
                debtor=debtor + 1,
                debtor_name=_DEBTORS[debtor],
                date=date,
                term=rng.choice((14, 30)),
                status=(8 if credit else 2) if sent else 0,
                spelling=rng.choice(SPELLINGS),
                created=stamp,
                modified=stamp,
            )
            for _ in range(lines):
                invoice.lines.append(self._line(invoice, negative=credit))
            self._invoices[identifier] = invoice
            return invoice

    def _line(self, invoice: _Invoice, *, negative: bool = False, **given: Any) -> dict[str, Any]:
        rng = self._rng
        code, description, price, suffix, vat = rng.choice(_PRODUCTS)
        quantity = (
            Decimal(rng.choice((1, 1, 2, 3, 8, 155))) if suffix else Decimal(rng.randint(1, 9))
        )
        line_id = self._next_line
        self._next_line += 1
        line = {
            "Identifier": line_id,
            "Date": invoice.date.isoformat(),
            "Number": -quantity if negative else quantity,
            "NumberSuffix": suffix,
            "ProductCode": code,
            "Description": description,
            "PriceExcl": price,
            "DiscountPercentage": Decimal(rng.choice((0, 0, 0, 10))),
            "DiscountPercentageType": "line",
            "TaxCode": f"V{vat}",
            "TaxPercentage": vat,
            "PeriodicID": 0,
            "Periods": 1,
            "Periodic": "",
            "StartDate": "",
            "EndDate": "",
        }
        line.update(given)
        return line

    def pay(self, identifier: int, amount: Decimal | None = None) -> None:
        """Register a payment (default: what is still open); status and `Modified` follow."""
        with self._lock:
            invoice = self._invoices[identifier]
            total = invoice.amounts()[2]
            invoice.paid += total - invoice.paid if amount is None else amount
            self._transactions += 1
            invoice.transaction_id = f"TR{self._transactions:06d}"
            invoice.pay_date = invoice.date + dt.timedelta(days=self._rng.randrange(1, 30))
            invoice.status = 4 if invoice.paid >= total else 3
            invoice.modified = self._stamp()

    def credit(self, identifier: int) -> _Invoice:
        """Credit an invoice: it becomes 9 (vervallen), a credit invoice (8) mirrors its lines."""
        with self._lock:
            original = self._invoices[identifier]
            original.status = 9
            original.modified = self._stamp()
            lines = [dict(line) for line in original.lines]
        credit = self.create_invoice(date=original.date, lines=0, credit=True)
        with self._lock:
            for line in lines:
                line["Number"] = -line["Number"]
                line["Identifier"] = self._next_line
                self._next_line += 1
                credit.lines.append(line)
        return credit

    def add_line(self, identifier: int, **given: Any) -> None:
        with self._lock:
            invoice = self._invoices[identifier]
            invoice.lines.append(self._line(invoice, **given))
            if invoice.status in (3, 4):
                invoice.status = 3 if invoice.paid < invoice.amounts()[2] else 4
            invoice.modified = self._stamp()

    def edit(self, identifier: int, **fields: Any) -> None:
        """Change a field of an invoice as served (`Term`, a line's text...) and `Modified`."""
        with self._lock:
            invoice = self._invoices[identifier]
            for name, value in fields.items():
                setattr(invoice, name, value)
            invoice.modified = self._stamp()

    def spoil(self, identifier: int, **fields: Any) -> None:
        """Serve these fields as given from now on, and touch `Modified`."""
        with self._lock:
            invoice = self._invoices[identifier]
            invoice.spoiled.update(fields)
            invoice.modified = self._stamp()

    def truth(self, identifier: int) -> dict[str, Any]:
        """The exact amounts behind an invoice, whatever spelling it is served in."""
        with self._lock:
            invoice = self._invoices[identifier]
            excl, tax, incl = invoice.amounts()
            return {"excl": excl, "tax": tax, "incl": incl, "paid": invoice.paid,
                    "status": invoice.status, "lines": len(invoice.lines),
                    "modified": invoice.modified}  # fmt: skip

    def delete_invoice(self, identifier: int) -> None:
        with self._lock:
            del self._invoices[identifier]

    def identifiers(self) -> list[int]:
        with self._lock:
            return sorted(self._invoices)

    def invoice(self, identifier: int) -> dict[str, Any]:
        """The invoice as `invoice show` answers it (for tests to compare a mirror with)."""
        with self._lock:
            return self._invoices[identifier].record()

    def add_fault(self, kind: str, **options: Any) -> None:
        """Queue a fault (see `connectors.simulation`) for `list`, `show` or `add`."""
        self._faults.add(kind, **options)

    # --- serving ---------------------------------------------------------------------------

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        params = _params(body, request.headers.get("content-type", ""))
        controller, action = str(params.get("controller", "")), str(params.get("action", ""))
        with self._lock:
            self.calls.append((controller, action))
        endpoint = {
            "list": "list",
            "show": "show",
            "add": "add",
            "partpayment": "pay",
            "markaspaid": "pay",
        }.get(action, "any")
        fault = self._faults.take_for(endpoint)
        if await answered_by_fault(fault, scope, receive, send):
            return
        envelope: dict[str, Any] = {
            "controller": controller,
            "action": action,
            "status": "success",
            "date": dt.datetime.now(_AMSTERDAM).isoformat(timespec="seconds"),
        }
        try:
            if params.get("api_key") != self.token:
                raise _Error("Invalid API key")
            handler = {
                ("invoice", "list"): self._list,
                ("invoice", "show"): self._show,
                ("invoiceline", "add"): self._add_lines,
                ("invoice", "partpayment"): self._part_payment,
                ("invoice", "markaspaid"): self._mark_as_paid,
            }.get((controller, action))
            if handler is None:
                raise _Error(f"Invalid controller or action: '{controller}' '{action}'")
            envelope.update(handler(params))
        except _Error as error:
            envelope.update(status="error", errors=[str(error)])
        content = orjson.dumps(envelope, default=raw_number)
        paid = endpoint == "pay" and envelope["status"] == "success"
        after = self.fail_after_write.pop(0) if paid and self.fail_after_write else ""
        if await lose_answer(after, scope, receive, send):
            return
        if fault is not None and fault.kind == "truncate":
            content = content[: len(content) // 2]
        await Response(content, 200, media_type="application/json")(scope, receive, send)

    def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        offset = _int(params.get("offset", 0), "offset", 0, 10**9)
        limit = _int(params.get("limit", 1000), "limit", 1, 1000)
        statuses = {
            _int(s, "status", 0, 9) for s in str(params.get("status", "")).split("|") if s.strip()
        }
        ranges = {key: _range(params.get(key), key) for key in ("modified", "created")}
        sort = str(params.get("sort", "Identifier"))
        if sort not in ("Identifier", "Modified", "Date"):
            raise _Error(f"Invalid value for parameter 'sort': '{sort}'")
        with self._lock:
            chosen = [
                invoice
                for invoice in self._invoices.values()
                if (not statuses or invoice.status in statuses)
                and _within(invoice.modified, ranges["modified"])
                and _within(invoice.created, ranges["created"])
            ]
            key = {
                "Identifier": lambda i: i.identifier,
                "Modified": lambda i: (i.modified, i.identifier),
                "Date": lambda i: (i.date, i.identifier),
            }[sort]
            chosen.sort(key=key, reverse=str(params.get("order", "ASC")).upper() == "DESC")
            page = [invoice.summary() for invoice in chosen[offset : offset + limit]]
        return {
            "totalresults": len(chosen),
            "currentresults": len(page),
            "offset": offset,
            "invoices": page,
        }

    def _find(self, params: dict[str, Any]) -> _Invoice:
        if "Identifier" in params:
            identifier = _int(params["Identifier"], "Identifier", 1, 10**12)
            invoice = self._invoices.get(identifier)
        elif "InvoiceCode" in params:
            code = str(params["InvoiceCode"])
            invoice = next((i for i in self._invoices.values() if i.code == code), None)
        else:
            raise _Error("Identifier or InvoiceCode is required")
        if invoice is None:
            raise _Error("Invoice not found")
        return invoice

    def _show(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {"invoice": self._find(params).record()}

    def _record_payment(
        self, invoice: _Invoice, amount: Decimal, params: dict[str, Any]
    ) -> dict[str, Any]:
        """The invoice's one payment state grows by `amount`: `AmountPaid`, `PayDate`,
        `TransactionID` (the latest given), status 3 or 4, a new `Modified`."""
        day = str(params.get("PayDate") or dt.date.today().isoformat())
        try:
            pay_date = dt.date.fromisoformat(day[:10])
        except ValueError:
            raise _Error(f"Invalid value for parameter 'PayDate': '{day}'") from None
        invoice.paid += amount
        invoice.pay_date = pay_date
        if params.get("TransactionID"):
            invoice.transaction_id = str(params["TransactionID"])
        invoice.status = 4 if invoice.paid >= invoice.amounts()[2] else 3
        invoice.modified = self._stamp()
        return {"success": ["De betaling is verwerkt"], "invoice": invoice.record()}

    def _part_payment(self, params: dict[str, Any]) -> dict[str, Any]:
        if "AmountPaid" not in params:
            raise _Error("Invalid value for parameter 'AmountPaid': it is required")
        amount = _decimal(params["AmountPaid"], "AmountPaid")
        with self._lock:
            invoice = self._find(params)
            _payable(invoice)
            open_amount = invoice.amounts()[2] - invoice.paid
            if not 0 < amount <= open_amount:
                raise _Error(
                    f"Invalid value for parameter 'AmountPaid': '{params['AmountPaid']}' "
                    f"(open: {open_amount})"
                )
            return self._record_payment(invoice, amount, params)

    def _mark_as_paid(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            invoice = self._find(params)
            _payable(invoice)
            return self._record_payment(invoice, invoice.amounts()[2] - invoice.paid, params)

    def _add_lines(self, params: dict[str, Any]) -> dict[str, Any]:
        lines = params.get("InvoiceLines")
        if isinstance(lines, dict):
            lines = (
                [lines[k] for k in sorted(lines, key=lambda k: int(k))]
                if all(str(k).isdigit() for k in lines)
                else [lines]
            )
        if not isinstance(lines, list) or not lines:
            raise _Error("InvoiceLines: at least one invoice line is required")
        with self._lock:
            invoice = self._find(params)
            for given in lines:
                if not isinstance(given, dict):
                    raise _Error("InvoiceLines: every invoice line must be an object")
                fields: dict[str, Any] = {}
                for name in ("Number", "PriceExcl", "DiscountPercentage"):
                    if name in given:
                        fields[name] = _decimal(given[name], name)
                for name in ("Description", "ProductCode", "NumberSuffix"):
                    if name in given:
                        fields[name] = str(given[name])
                invoice.lines.append(self._line(invoice, **fields))
            invoice.modified = self._stamp()
            return {
                "success": [f"Er zijn {len(lines)} factuurregels toegevoegd"],
                "invoice": invoice.record(),
            }


def _fixed(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def _payable(invoice: _Invoice) -> None:
    if invoice.status not in (2, 3):
        label = STATUS_LABELS[invoice.status].lower()
        raise _Error(f"Invoice cannot be paid: its status is {invoice.status} ({label})")


def _params(body: bytes, content_type: str) -> dict[str, Any]:
    """JSON, or a form whose `a[b]` / `a[0][b]` keys nest as PHP reads them."""
    if "json" in content_type:
        try:
            data = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        head, _, rest = key.partition("[")
        if not rest:
            params[head] = value
            continue
        parts = [head, *rest.rstrip("]").split("][")]
        node = params
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return params


def _int(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise _Error(f"Invalid value for parameter '{name}': '{value}'") from None
    if not low <= number <= high:
        raise _Error(f"Invalid value for parameter '{name}': '{value}'")
    return number


def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value).replace(",", "."))
    except ArithmeticError:
        raise _Error(f"Invalid value for parameter '{name}': '{value}'") from None


def _range(value: Any, name: str) -> tuple[str, str]:
    if value in (None, ""):
        return "", "9999"
    if not isinstance(value, dict):
        raise _Error(f"Invalid value for parameter '{name}': expected from and to")
    bounds = []
    for end, default in (("from", ""), ("to", "9999")):
        text = str(value.get(end) or default)
        if text not in ("", "9999"):
            try:
                dt.datetime.fromisoformat(text)
            except ValueError:
                raise _Error(f"Invalid value for parameter '{name}[{end}]': '{text}'") from None
        bounds.append(text)
    return bounds[0], bounds[1]


def _within(stamp: str, bounds: tuple[str, str]) -> bool:
    low, high = bounds
    return low <= stamp and (high == "9999" or stamp <= high)


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "WeFact API v2",
        lambda invoices, seed, token: WeFactSimulator(invoices=invoices, seed=seed, token=token),
        "sim-wefact-key",
        argv,
    )


if __name__ == "__main__":
    main()
