"""A Recras API2 simulator: invoices (facturen), their lines (factuurregels) and payments
(betalingen) over real HTTP, for tests and benchmarks (never imported by a sync).

Faithful to the seed pages (`../shared/seeds/recras-invoice-lines.txt`,
`recras-invoice-payments.txt`, copied facts in `docs/apis.md` of the shelf): Dutch field names,
`begin`/`eind` required on `factuurregels`, its optional filters, `embed`, payments with their
`btw` breakdown and `klant`, `POST` answering 201 with `Location`, 406 on bad input and 403 naming
the missing permission. Amounts are JSON numbers spelled as Recras spells them (`25.5`, `25`,
`1.1292452830189`), so a client must read their text, never a float.

Facts the seeds do not settle, chosen here and kept in one place:
- `GET /api2/facturen` (used by Recras's own sync tool, not in the seeds) answers invoices with
  `id`, `klant_id`, `datum`, `status`, `factuur_nummer` (null for a `concept`), `bedrijf_id`,
  `context` and `betalingstermijn` (days to pay); filters `status` (comma list) and `datumNa`
  (invoice date on or after), and `embed=regels,Klant`. `GET /api2/facturen/{id}` answers one.
- Reading needs the permission `viewFactuur`; registering, changing and deleting payments
  `createFactuurBetaling` / `editFactuurBetaling`, as the seed says. A missing permission answers
  403 `{"error": "Geen rechten: <permission>"}`; a missing or wrong key 401.
- `factuurregels` without `begin` or `eind`, or with a date that does not parse, answers 400.
- An invoice's status follows its payments: `verzonden` (nothing paid), `deels_betaald`,
  `betaald`; `concept` until it is sent.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

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

STATUSES = ("concept", "verzonden", "deels_betaald", "betaald")
READ_PERMISSION = "viewFactuur"
CREATE_PAYMENT = "createFactuurBetaling"
EDIT_PAYMENT = "editFactuurBetaling"
DEFAULT_PERMISSIONS = (READ_PERMISSION, CREATE_PAYMENT, EDIT_PAYMENT)
#: the instance's payment methods (betaalmethoden): a payment naming another is refused (406)
PAYMENT_METHODS = {1: "Contant", 2: "Pin", 3: "Overboeking", 4: "iDEAL"}
#: `lines` is factuurregels, `invoices` facturen (and one factuur), `payments` betalingen
FAULT_ENDPOINTS = ("lines", "invoices", "payments")

_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")
_CENT = Decimal("0.01")
_PRODUCTS = (
    (1, "Klimmen en barbecue", Decimal("25.50"), 9),
    (2, "Kanoverhuur per persoon", Decimal("17.5"), 9),
    (3, "Lunchbuffet", Decimal("14.95"), 9),
    (4, "Vergaderzaal dagdeel", Decimal("175"), 21),
    (5, "Escape room", Decimal("27.50"), 21),
    (6, "Drankenarrangement", Decimal("12.25"), 21),
    (7, "Fietsverhuur", Decimal("12"), 9),
)
_CUSTOMERS = (
    "De Vil",
    "Bakkerij Jansen",
    "Vereniging Zeilvreugd",
    "Jansen Events B.V.",
    "Stichting Buitenwerk",
    "Familie de Boer",
    "Sportclub Oost",
    "Hotel Zon & Zee",
)


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _spelled(value: Decimal) -> Decimal:
    """As Recras's JSON writes a number: no trailing zeros (`25.5`, `25`)."""
    text = format(value.normalize(), "f")
    return Decimal(text)


@dataclass
class _Invoice:
    id: int
    klant_id: int
    klant_naam: str
    datum: dt.date
    status: str
    factuur_nummer: str | None
    bedrijf_id: int
    context: str
    betalingstermijn: int
    booking_datum: dt.date
    lines: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)

    def total(self) -> Decimal:
        return sum((Decimal(str(line["totaal_inc_btw"])) for line in self.lines), Decimal(0))

    def paid(self) -> Decimal:
        return sum((Decimal(str(p["bedrag"])) for p in self.payments), Decimal(0))

    def settle(self) -> None:
        if self.status == "concept":
            return
        paid, total = self.paid(), self.total()
        self.status = "verzonden" if not paid else "betaald" if paid >= total else "deels_betaald"

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "klant_id": self.klant_id,
            "datum": self.datum.isoformat(),
            "status": self.status,
            "factuur_nummer": self.factuur_nummer,
            "bedrijf_id": self.bedrijf_id,
        }

    def record(self, embed: set[str]) -> dict[str, Any]:
        record = {
            **self.summary(),
            "context": self.context,
            "betalingstermijn": self.betalingstermijn,
        }
        if "regels" in embed:
            record["regels"] = [dict(line) for line in self.lines]
        if "Klant" in embed:
            record["Klant"] = {"id": self.klant_id, "naam": self.klant_naam}
        return record


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RecrasSimulator:
    """Seeded Recras invoices with lines and payments, test controls and injectable faults."""

    base_path = ""

    def __init__(
        self,
        *,
        token: str = "sim-recras-key",
        invoices: int = 50,
        seed: int = 1,
        start_date: dt.date = dt.date(2024, 1, 1),
        days: int = 700,
        permissions: Iterable[str] = DEFAULT_PERMISSIONS,
    ) -> None:
        self.token = token
        self.permissions = frozenset(permissions)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._start = start_date
        self._days = days
        self._invoices: dict[int, _Invoice] = {}
        self._next_invoice = 1000
        self._next_line = 5000
        self._next_payment = 1
        self._numbers: dict[int, int] = {}
        self._faults = Faults(FAULT_ENDPOINTS)
        #: how the next payment POSTs go wrong *after* the payment was recorded (`500`, `drop`,
        #: `hang`)
        self.fail_after_write: list[str] = []
        for _ in range(invoices):
            self._seed_invoice()
        self.app = Starlette(
            routes=[
                Route("/api2/factuurregels", self._endpoint(self._lines, "lines"), methods=["GET"]),
                Route("/api2/facturen", self._endpoint(self._list, "invoices"), methods=["GET"]),
                Route(
                    "/api2/facturen/{id:int}",
                    self._endpoint(self._one, "invoices"),
                    methods=["GET"],
                ),
                Route(
                    "/api2/facturen/{id:int}/betalingen",
                    self._endpoint(self._payments, "payments"),
                    methods=["GET", "POST"],
                ),
                Route(
                    "/api2/facturen/{id:int}/betalingen/{payment:int}",
                    self._endpoint(self._payment, "payments"),
                    methods=["GET", "PUT", "DELETE"],
                ),
            ]
        )

    # --- data ------------------------------------------------------------------------------

    def _seed_invoice(self) -> _Invoice:
        rng = self._rng
        day = self._start + dt.timedelta(days=rng.randrange(0, self._days))
        customer = rng.randrange(len(_CUSTOMERS))
        invoice = self.add_invoice(
            datum=day,
            klant_id=40 + customer,
            klant_naam=_CUSTOMERS[customer],
            lines=rng.randint(1, 4),
            sent=rng.random() > 0.05,
        )
        if invoice.status != "concept":
            roll = rng.random()
            if roll < 0.6:
                self.pay(invoice.id)
            elif roll < 0.7:
                self.pay(invoice.id, _money(invoice.total() / 2))
        return invoice

    def add_invoice(
        self,
        *,
        datum: dt.date,
        klant_id: int = 47,
        klant_naam: str = "De Vil",
        lines: int = 1,
        sent: bool = True,
        context: str = "invoice",
    ) -> _Invoice:
        """A new invoice with `lines` lines; numbered per year once sent."""
        rng = self._rng
        with self._lock:
            invoice_id = self._next_invoice
            self._next_invoice += 1
            number = None
            if sent:
                self._numbers[datum.year] = self._numbers.get(datum.year, 0) + 1
                number = f"{datum.year}-{self._numbers[datum.year]}"
            invoice = _Invoice(
                id=invoice_id,
                klant_id=klant_id,
                klant_naam=klant_naam,
                datum=datum,
                status="verzonden" if sent else "concept",
                factuur_nummer=number,
                bedrijf_id=1 + invoice_id % 2,
                context=context,
                betalingstermijn=14,
                booking_datum=datum - dt.timedelta(days=rng.randrange(0, 30)),
            )
            for _ in range(lines):
                invoice.lines.append(self._line(invoice))
            self._invoices[invoice_id] = invoice
            return invoice

    def _line(self, invoice: _Invoice) -> dict[str, Any]:
        rng = self._rng
        product_id, name, price, vat = rng.choice(_PRODUCTS)
        quantity = rng.randint(1, 30)
        factor = rng.choice((Decimal("1"), Decimal("1"), Decimal("1"), Decimal("0.9")))
        incl = _money(price * quantity * factor)
        excl = _money(incl / (1 + Decimal(vat) / 100))
        line_id = self._next_line
        self._next_line += 1
        return {
            "id": line_id,
            "factuur_id": invoice.id,
            "naam": name,
            "kortingomschrijving": "" if factor == 1 else "Groepskorting 10%",
            "aantal": quantity,
            "bedrag": _spelled(price),
            "btw_percentage": vat,
            "product_id": product_id,
            "boekingsregel_id": line_id + 100_000,
            "kortingsfactor": _spelled(factor) if factor != 1 else Decimal("1.0"),
            "totaal_inc_btw": _spelled(incl),
            "totaal_exc_btw": _spelled(excl),
        }

    def pay(
        self,
        invoice_id: int,
        amount: Decimal | None = None,
        when: dt.datetime | None = None,
        method: int | None = 1,
        remark: str = "",
    ) -> dict[str, Any]:
        """Register a payment (default: what is still open); the status follows."""
        with self._lock:
            invoice = self._invoices[invoice_id]
            value = amount if amount is not None else invoice.total() - invoice.paid()
            moment = when or dt.datetime.combine(
                invoice.datum + dt.timedelta(days=self._rng.randrange(1, 30)),
                dt.time(14, 9),
                tzinfo=_AMSTERDAM,
            )
            payment = self._payment_record(invoice, value, moment, method, remark)
            invoice.payments.append(payment)
            invoice.settle()
            return payment

    def _payment_record(
        self,
        invoice: _Invoice,
        value: Decimal,
        moment: dt.datetime,
        method: int | None,
        remark: str = "",
    ) -> dict[str, Any]:
        payment_id = self._next_payment
        self._next_payment += 1
        vat = invoice.lines[0]["btw_percentage"] if invoice.lines else 21
        tax = value - value / (1 + Decimal(vat) / 100)
        return {
            "id": payment_id,
            "factuur_id": invoice.id,
            "wanneer": moment.astimezone(_AMSTERDAM).isoformat(timespec="seconds"),
            "bedrag": _spelled(value),
            "opmerking": remark,
            "betaalmethode_id": method,
            "pos_id": None,
            "location_id": None,
            "btw": {
                str(vat): {
                    "btw": Decimal(format(tax, ".13g")),
                    "bedrag": Decimal(format(value - tax, ".14g")),
                }
            },
            "klant": {"id": invoice.klant_id, "naam": invoice.klant_naam},
        }

    def add_line(self, invoice_id: int) -> dict[str, Any]:
        """Another line on an invoice (its total grows; a paid one becomes partly paid)."""
        with self._lock:
            invoice = self._invoices[invoice_id]
            line = self._line(invoice)
            invoice.lines.append(line)
            invoice.settle()
            return line

    def set_line(self, invoice_id: int, index: int, **fields: Any) -> None:
        """Overwrite fields of one line as served (a test's way to send a bad record)."""
        with self._lock:
            self._invoices[invoice_id].lines[index].update(fields)

    def delete_invoice(self, invoice_id: int) -> None:
        with self._lock:
            del self._invoices[invoice_id]

    def move_invoice(self, invoice_id: int, datum: dt.date) -> None:
        with self._lock:
            self._invoices[invoice_id].datum = datum

    def invoice_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._invoices)

    def invoice(self, invoice_id: int) -> dict[str, Any]:
        """The invoice as `GET /api2/facturen/{id}?embed=regels,Klant` answers it, with its
        payments under `betalingen` (for tests to compare a mirror with)."""
        with self._lock:
            invoice = self._invoices[invoice_id]
            return {
                **invoice.record({"regels", "Klant"}),
                "betalingen": [dict(p) for p in invoice.payments],
            }

    def add_fault(self, kind: str, **options: Any) -> None:
        """Queue a fault (see `connectors.simulation`) for `lines`, `invoices` or `payments`."""
        self._faults.add(kind, **options)

    # --- serving ---------------------------------------------------------------------------

    def _endpoint(self, handler: Any, name: str) -> Any:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            body = await request.body() if request.method in ("POST", "PUT") else b""
            with self._lock:
                query = request.url.query
                self.requests.append(
                    (request.method, request.url.path + (f"?{query}" if query else ""))
                )
            fault = self._faults.take_for(name)
            if await answered_by_fault(fault, scope, receive, send):
                return
            try:
                self._authorize(request)
                status, payload, headers = handler(request, body)
                content = orjson.dumps(payload, default=raw_number)
            except _Refused as refused:
                status, headers = refused.status, {}
                content = orjson.dumps({"error": refused.message})
            if request.method == "POST" and status == 201 and self.fail_after_write:
                if await lose_answer(self.fail_after_write.pop(0), scope, receive, send):
                    return
            if fault is not None and fault.kind == "truncate":
                content = content[: len(content) // 2]
            await Response(content, status, headers, media_type="application/json")(
                scope, receive, send
            )

        return RawEndpoint(endpoint)

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key != self.token:
            raise _Refused(401, "Niet ingelogd: ongeldige API-sleutel")
        needed = {
            "GET": READ_PERMISSION,
            "POST": CREATE_PAYMENT,
            "PUT": EDIT_PAYMENT,
            "DELETE": EDIT_PAYMENT,
        }[request.method]
        if needed not in self.permissions:
            raise _Refused(403, f"Geen rechten: {needed}")

    def _lines(self, request: Request, _body: bytes) -> tuple[int, Any, dict[str, str]]:
        query = request.query_params
        begin, end = _date(query.get("begin"), "begin"), _date(query.get("eind"), "eind")
        by_booking = query.get("referentiedatum", "factuur") == "booking"
        products = _ints(query.get("product_id"))
        vats = _decimals(query.get("btw_percentage"))
        companies = _ints(query.get("Factuur.bedrijf_id"))
        context = query.get("Factuur.context")
        embed = set(filter(None, (query.get("embed") or "").split(",")))
        answer = []
        with self._lock:
            for invoice in sorted(self._invoices.values(), key=lambda i: i.id):
                day = invoice.booking_datum if by_booking else invoice.datum
                if not begin <= day <= end:
                    continue
                if companies and invoice.bedrijf_id not in companies:
                    continue
                if context and invoice.context != context:
                    continue
                for line in invoice.lines:
                    if products and (line["product_id"] or 0) not in products:
                        continue
                    if vats and Decimal(line["btw_percentage"]) not in vats:
                        continue
                    item = {**line, "Factuur": invoice.summary()}
                    if "Product" in embed:
                        item["Product"] = {"id": line["product_id"], "naam": line["naam"]}
                    if "Boeking" in embed:
                        item["Boeking"] = {"id": line["boekingsregel_id"] // 10}
                    answer.append(item)
        return 200, answer, {}

    def _list(self, request: Request, _body: bytes) -> tuple[int, Any, dict[str, str]]:
        query = request.query_params
        statuses = set(filter(None, (query.get("status") or "").split(",")))
        after = _date(query["datumNa"], "datumNa") if "datumNa" in query else None
        embed = set(filter(None, (query.get("embed") or "").split(",")))
        with self._lock:
            answer = [
                invoice.record(embed)
                for invoice in sorted(self._invoices.values(), key=lambda i: i.id)
                if (not statuses or invoice.status in statuses)
                and (after is None or invoice.datum >= after)
            ]
        return 200, answer, {}

    def _one(self, request: Request, _body: bytes) -> tuple[int, Any, dict[str, str]]:
        embed = set(filter(None, (request.query_params.get("embed") or "").split(",")))
        with self._lock:
            invoice = self._invoices.get(request.path_params["id"])
            if invoice is None:
                raise _Refused(404, "Factuur niet gevonden")
            return 200, invoice.record(embed), {}

    def _payments(self, request: Request, body: bytes) -> tuple[int, Any, dict[str, str]]:
        invoice_id = request.path_params["id"]
        with self._lock:
            invoice = self._invoices.get(invoice_id)
            if invoice is None:
                raise _Refused(404, "Factuur niet gevonden")
            if request.method == "GET":
                return 200, [dict(p) for p in invoice.payments], {}
        amount, moment, method, remark = _payment_input(body)
        payment = self.pay(invoice_id, amount, moment, method, remark)
        location = f"/api2/facturen/{invoice_id}/betalingen/{payment['id']}"
        return 201, payment, {"Location": location}

    def _payment(self, request: Request, body: bytes) -> tuple[int, Any, dict[str, str]]:
        invoice_id, payment_id = request.path_params["id"], request.path_params["payment"]
        with self._lock:
            invoice = self._invoices.get(invoice_id)
            found = [p for p in invoice.payments if p["id"] == payment_id] if invoice else []
            if invoice is None or not found:
                raise _Refused(404, "Betaling niet gevonden")
            payment = found[0]
            if request.method == "GET":
                return 200, dict(payment), {}
            if request.method == "DELETE":
                invoice.payments.remove(payment)
                invoice.settle()
                return 200, None, {}
        amount, moment, method, remark = _payment_input(body)
        with self._lock:
            payment.update(
                opmerking=remark,
                bedrag=_spelled(amount),
                wanneer=(moment or dt.datetime.now(_AMSTERDAM))
                .astimezone(_AMSTERDAM)
                .isoformat(timespec="seconds"),
                betaalmethode_id=method,
            )
            invoice.settle()
            return 200, dict(payment), {}


def _date(value: str | None, name: str) -> dt.date:
    if not value:
        raise _Refused(400, f"{name} is verplicht (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _Refused(400, f"{name}: {value!r} is geen datum (YYYY-MM-DD)") from None


def _ints(value: str | None) -> set[int]:
    try:
        return {int(v) for v in (value or "").split(",") if v.strip()}
    except ValueError:
        raise _Refused(400, f"{value!r} is geen lijst van getallen") from None


def _decimals(value: str | None) -> set[Decimal]:
    try:
        return {Decimal(v) for v in (value or "").split(",") if v.strip()}
    except ArithmeticError:
        raise _Refused(400, f"{value!r} is geen lijst van getallen") from None


def _payment_input(body: bytes) -> tuple[Decimal, dt.datetime | None, int | None, str]:
    """`bedrag` (required, a number), `wanneer` (ISO 8601), `betaalmethode_id` (one of the
    instance's), `opmerking` (text; the seed shows it in answers only): else 406."""
    try:
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        raw = data.get("bedrag")
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError("bedrag")
        amount = Decimal(str(raw))
        when = data.get("wanneer")
        moment = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=_AMSTERDAM)
        method = data.get("betaalmethode_id")
        if method is not None and (isinstance(method, bool) or not isinstance(method, int)):
            raise ValueError("betaalmethode_id")
        if method is not None and method not in PAYMENT_METHODS:
            raise ValueError(f"betaalmethode_id {method} bestaat niet")
        remark = data.get("opmerking", "")
        if not isinstance(remark, str):
            raise ValueError("opmerking")
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise _Refused(406, f"Fout in de invoer: {exc}") from None
    return amount, moment, method, remark


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "Recras API2",
        lambda invoices, seed, token: RecrasSimulator(invoices=invoices, seed=seed, token=token),
        "sim-recras-key",
        argv,
    )


if __name__ == "__main__":
    main()
