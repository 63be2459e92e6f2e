"""A Flowtly simulator: API Platform collections of invoices, invoice rows and invoice
transactions over real HTTP, for tests and benchmarks (never imported by a sync).

Faithful to the seed page (`../shared/seeds/flowtly-invoicing.txt`) and the shelf's notes: `GET
/invoices`, `/invoice-rows`, `/invoice-transactions` (and one of each by id), JSON-LD collections
paged with `?page=N` and `itemsPerPage`, members with `@id` IRIs, references as IRIs
(`"/invoices/42"`), rows with `quantity`, `unit`, `netPrice`, `netDiscountAmount`, `vatRate`,
`productName`, `parentInvoiceRow`, `invoiceChildrenRows`, transactions with `invoice`,
`transaction`, `amount`, `date`, `createdAt`, `updatedAt`.

Facts the seed does not settle, chosen here and kept in one place:
- The collection shape is switchable: `hydra` (`hydra:member`, `hydra:totalItems`, `hydra:view`
  with `hydra:next`, as older API Platform versions answer) or `plain` (`member`, `totalItems`,
  `view` with `next`). Pages hold 30 items unless `itemsPerPage` asks for up to 100.
- An invoice carries `id`, `number` (null while a draft), `status` (`draft`, `sent`,
  `partially_paid`, `paid`, `cancelled`), `issueDate`, `dueDate`, `currency`, `contact` (an IRI)
  and `contactName`, `totalNet`, `totalVat`, `totalGross` (strings), `createdAt`, `updatedAt`,
  `deleted` and `deletedAt` (a soft-deleted invoice stays listed with `deleted: true`).
- A row carries its `invoice` as an IRI (the seed lists no such field; something must link a
  row to its invoice). A parent row's `netPrice` is the sum of its children's line totals and its
  `quantity` 1; the children name it in `parentInvoiceRow`, it lists them in
  `invoiceChildrenRows` (IRIs). Rows have no `updatedAt`.
- Auth: `POST /auth` with `{"username", "password"}` answers `{"token": <JWT>}`, valid for
  `token_ttl` seconds; an expired or unknown token answers 401 `{"code": 401, "message":
  "Expired JWT Token"}`. A fixed API token is accepted as a Bearer token as well.
- `POST /invoice-transactions` takes `invoice` (IRI), `amount`, `date` and `transaction` (an IRI
  such as `/transactions/7`, or null), answers 201 with the resource or 422 with API Platform's
  `violations`; the invoice's status and `updatedAt` follow. `fail_after_write` makes the answer
  of a transaction it did record a 500 or a dropped connection. `DELETE /invoice-transactions/{id}`
  removes one (204), and the invoice's status follows.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import threading
import time
from collections.abc import Callable
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

#: `invoices`, `rows` (invoice-rows), `transactions` (invoice-transactions), `auth` (login)
FAULT_ENDPOINTS = ("invoices", "rows", "transactions", "auth")
SHAPES = ("hydra", "plain")
DEFAULT_PAGE = 30
MAX_PAGE = 100

_CENT = Decimal("0.01")
_SERVICES = (
    ("Consultancy", "uur", Decimal("95.00"), "21"),
    ("Projectmanagement", "uur", Decimal("110.00"), "21"),
    ("Reiskosten", "km", Decimal("0.23"), "21"),
    ("Training", "dag", Decimal("850.00"), "21"),
    ("Licentie", "stuk", Decimal("29.95"), "21"),
    ("Boek", "stuk", Decimal("39.50"), "9"),
)
_CONTACTS = ("Acme B.V.", "De Vries Advies", "Stichting Oost", "Bakker & Zn", "Hotel Zee")


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


@dataclass
class _Row:
    id: int
    invoice: int
    product: str
    unit: str
    quantity: Decimal
    net_price: Decimal
    discount: Decimal
    vat: str
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    #: fields served as given instead of as computed (a test's way to send a bad record)
    spoiled: dict[str, Any] = field(default_factory=dict)

    def total(self) -> Decimal:
        return _money(self.quantity * self.net_price - self.discount)


@dataclass
class _Invoice:
    id: int
    number: str | None
    status: str
    issue_date: dt.date
    term: int
    contact: int
    created: str
    updated: str
    rows: list[int] = field(default_factory=list)
    deleted_at: str | None = None
    transactions: list[int] = field(default_factory=list)


@dataclass
class _Transaction:
    id: int
    invoice: int
    amount: Decimal
    date: dt.datetime
    created: str
    updated: str
    transaction: int | None = None


class FlowtlySimulator:
    """Seeded Flowtly invoices with rows (some nested) and transactions, test controls, faults."""

    base_path = ""

    def __init__(
        self,
        *,
        token: str = "sim-flowtly-token",
        username: str = "api@example.com",
        password: str = "sim-flowtly-password",
        invoices: int = 50,
        seed: int = 1,
        start_date: dt.date = dt.date(2025, 1, 1),
        days: int = 365,
        shape: str = "hydra",
        token_ttl: float = 3600.0,
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}")
        self.token = token
        self.username = username
        self.password = password
        self.shape = shape
        self.token_ttl = token_ttl
        self.requests: list[tuple[str, str]] = []
        self.logins = 0
        self._jwts: dict[str, float] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._now = lambda: dt.datetime.now(dt.UTC)
        self._invoices: dict[int, _Invoice] = {}
        self._rows: dict[int, _Row] = {}
        self._transactions: dict[int, _Transaction] = {}
        self._next = {"invoice": 1, "row": 1, "transaction": 1, "number": 0}
        self._faults = Faults(FAULT_ENDPOINTS)
        #: how the next writes go wrong *after* they were recorded (`500`, `drop`)
        self.fail_after_write: list[str] = []
        for _ in range(invoices):
            day = start_date + dt.timedelta(days=self._rng.randrange(days))
            moment = dt.datetime.combine(day, dt.time(9, 15), tzinfo=dt.UTC)
            self._now = _fixed(moment)
            self._seed_invoice(day)
        self._now = lambda: dt.datetime.now(dt.UTC)
        routes = [Route("/auth", RawEndpoint(self._endpoint(self._auth, "auth")), methods=["POST"])]
        for path, name, handler in (
            ("/invoices", "invoices", self._invoice_page),
            ("/invoice-rows", "rows", self._row_page),
            ("/invoice-transactions", "transactions", self._transaction_page),
        ):
            routes.append(Route(path, RawEndpoint(self._endpoint(handler, name)), methods=["GET"]))
            if path == "/invoice-transactions":
                routes.append(
                    Route(
                        path,
                        RawEndpoint(self._endpoint(self._create_transaction, name)),
                        methods=["POST"],
                    )
                )
            routes.append(
                Route(
                    path + "/{id:int}",
                    RawEndpoint(self._endpoint(self._one(path, handler), name)),
                    methods=["GET"],
                )
            )
        routes.append(
            Route(
                "/invoice-transactions/{id:int}",
                RawEndpoint(self._endpoint(self._delete_transaction, "transactions")),
                methods=["DELETE"],
            )
        )
        self.app = Starlette(routes=routes)

    # --- data and test controls ------------------------------------------------------------

    def _stamp(self) -> str:
        return _iso(self._now())

    def _seed_invoice(self, day: dt.date) -> _Invoice:
        rng = self._rng
        invoice = self.create_invoice(
            issue_date=day, rows=rng.randint(1, 3), nested=rng.random() < 0.2
        )
        roll = rng.random()
        if invoice.status == "sent" and roll < 0.6:
            self.pay(invoice.id)
        elif invoice.status == "sent" and roll < 0.7:
            self.pay(invoice.id, _money(self.totals(invoice.id)["gross"] / 2))
        return invoice

    def create_invoice(
        self, *, issue_date: dt.date, rows: int = 1, nested: bool = False, draft: bool = False
    ) -> _Invoice:
        rng = self._rng
        with self._lock:
            invoice_id = self._next["invoice"]
            self._next["invoice"] += 1
            number = None
            if not draft:
                self._next["number"] += 1
                number = f"{issue_date.year}-{self._next['number']:05d}"
            stamp = self._stamp()
            invoice = _Invoice(
                id=invoice_id,
                number=number,
                status="draft" if draft else "sent",
                issue_date=issue_date,
                term=rng.choice((14, 30)),
                contact=rng.randrange(len(_CONTACTS)),
                created=stamp,
                updated=stamp,
            )
            self._invoices[invoice_id] = invoice
            for _ in range(rows):
                self._add_row(invoice)
            if nested:
                parent = self._add_row(invoice, product="Project (gebundeld)")
                for _ in range(rng.randint(2, 3)):
                    child = self._add_row(invoice, parent=parent)
                    parent.children.append(child.id)
                self._price_parent(parent)
            return invoice

    def _add_row(
        self, invoice: _Invoice, *, product: str | None = None, parent: _Row | None = None
    ) -> _Row:
        rng = self._rng
        name, unit, price, vat = rng.choice(_SERVICES)
        row_id = self._next["row"]
        self._next["row"] += 1
        quantity = Decimal(rng.choice(("1", "2", "4", "7.5", "12", "120")))
        row = _Row(
            id=row_id,
            invoice=invoice.id,
            product=product or name,
            unit="" if product else unit,
            quantity=Decimal(1) if product else quantity,
            net_price=Decimal(0) if product else price,
            discount=Decimal(0) if product or rng.random() > 0.2 else Decimal("10.00"),
            vat=vat,
            parent=parent.id if parent else None,
        )
        self._rows[row_id] = row
        invoice.rows.append(row_id)
        return row

    def _price_parent(self, parent: _Row) -> None:
        parent.net_price = sum((self._rows[c].total() for c in parent.children), Decimal(0))

    def totals(self, invoice_id: int) -> dict[str, Decimal]:
        """The exact amounts: top-level rows only (a parent is priced at its children)."""
        invoice = self._invoices[invoice_id]
        net = vat = Decimal(0)
        for row_id in invoice.rows:
            row = self._rows[row_id]
            if row.parent is not None:
                continue
            if row.children:
                for child_id in row.children:
                    child = self._rows[child_id]
                    net += child.total()
                    vat += _money(child.total() * Decimal(child.vat) / 100)
            else:
                net += row.total()
                vat += _money(row.total() * Decimal(row.vat) / 100)
        paid = sum((self._transactions[t].amount for t in invoice.transactions), Decimal(0))
        return {"net": net, "vat": vat, "gross": net + vat, "paid": paid}

    def _settle(self, invoice: _Invoice) -> None:
        if invoice.status in ("draft", "cancelled"):
            return
        totals = self.totals(invoice.id)
        paid, gross = totals["paid"], totals["gross"]
        invoice.status = "sent" if not paid else "paid" if paid >= gross else "partially_paid"
        invoice.updated = self._stamp()

    def pay(self, invoice_id: int, amount: Decimal | None = None) -> _Transaction:
        with self._lock:
            invoice = self._invoices[invoice_id]
            totals = self.totals(invoice_id)
            value = totals["gross"] - totals["paid"] if amount is None else amount
            transaction_id = self._next["transaction"]
            self._next["transaction"] += 1
            stamp = self._stamp()
            moment = dt.datetime.combine(
                invoice.issue_date + dt.timedelta(days=self._rng.randrange(1, 30)),
                dt.time(11, 0),
                tzinfo=dt.UTC,
            )
            made = _Transaction(transaction_id, invoice_id, value, moment, stamp, stamp, None)
            self._transactions[transaction_id] = made
            invoice.transactions.append(transaction_id)
            self._settle(invoice)
            return made

    def add_row(self, invoice_id: int) -> None:
        """A row added: the invoice's `updatedAt` moves, as its totals do."""
        with self._lock:
            invoice = self._invoices[invoice_id]
            self._add_row(invoice)
            invoice.updated = self._stamp()
            self._settle(invoice)

    def edit_row(self, row_id: int, **fields: Any) -> None:
        """Change a row only (rows carry no `updatedAt`; the invoice's stays as it was)."""
        with self._lock:
            row = self._rows[row_id]
            for name, value in fields.items():
                setattr(row, name, value)
            if row.parent is not None:
                self._price_parent(self._rows[row.parent])

    def spoil_row(self, row_id: int, **served: Any) -> None:
        """Serve these fields of a row as given from now on."""
        with self._lock:
            self._rows[row_id].spoiled.update(served)

    def soft_delete(self, invoice_id: int) -> None:
        with self._lock:
            invoice = self._invoices[invoice_id]
            invoice.deleted_at = self._stamp()
            invoice.updated = invoice.deleted_at

    def delete_invoice(self, invoice_id: int) -> None:
        with self._lock:
            invoice = self._invoices.pop(invoice_id)
            for row_id in invoice.rows:
                self._rows.pop(row_id, None)
            for transaction_id in invoice.transactions:
                del self._transactions[transaction_id]

    def invoice_ids(self, *, live: bool = True) -> list[int]:
        with self._lock:
            return sorted(
                i for i, inv in self._invoices.items() if not live or inv.deleted_at is None
            )

    def rows_of(self, invoice_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [self._row(self._rows[r]) for r in self._invoices[invoice_id].rows]

    def add_fault(self, kind: str, **options: Any) -> None:
        """Queue a fault (see `connectors.simulation`) for `invoices`, `rows`, `transactions`
        or `auth`."""
        self._faults.add(kind, **options)

    def expire_tokens(self) -> None:
        """Every JWT handed out so far is expired from now on."""
        with self._lock:
            self._jwts.clear()

    # --- resources as served ---------------------------------------------------------------

    def _invoice(self, invoice: _Invoice) -> dict[str, Any]:
        totals = self.totals(invoice.id)
        return {
            "@id": f"/invoices/{invoice.id}",
            "@type": "Invoice",
            "id": invoice.id,
            "number": invoice.number,
            "status": invoice.status,
            "issueDate": invoice.issue_date.isoformat(),
            "dueDate": (invoice.issue_date + dt.timedelta(days=invoice.term)).isoformat(),
            "currency": "EUR",
            "contact": f"/contacts/{invoice.contact + 1}",
            "contactName": _CONTACTS[invoice.contact],
            "totalNet": format(totals["net"], "f"),
            "totalVat": format(totals["vat"], "f"),
            "totalGross": format(totals["gross"], "f"),
            "createdAt": invoice.created,
            "updatedAt": invoice.updated,
            "deleted": invoice.deleted_at is not None,
            "deletedAt": invoice.deleted_at,
        }

    def _row(self, row: _Row) -> dict[str, Any]:
        return {
            "@id": f"/invoice-rows/{row.id}",
            "@type": "InvoiceRow",
            "id": row.id,
            "invoice": f"/invoices/{row.invoice}",
            "classificationNumber": None,
            "unit": row.unit or None,
            "quantity": row.quantity,
            "vatRate": row.vat,
            "netPrice": format(row.net_price, "f"),
            "netDiscountAmount": format(row.discount, "f"),
            "productName": row.product,
            "project": None,
            "parentInvoiceRow": f"/invoice-rows/{row.parent}" if row.parent else None,
            "invoiceChildrenRows": [f"/invoice-rows/{c}" for c in row.children],
            **row.spoiled,
        }

    def _transaction(self, made: _Transaction) -> dict[str, Any]:
        return {
            "@id": f"/invoice-transactions/{made.id}",
            "@type": "InvoiceTransaction",
            "id": made.id,
            "invoice": f"/invoices/{made.invoice}",
            "transaction": f"/transactions/{made.transaction}" if made.transaction else None,
            "amount": made.amount,
            "date": _iso(made.date),
            "createdAt": made.created,
            "updatedAt": made.updated,
        }

    # --- serving ---------------------------------------------------------------------------

    def _endpoint(self, handler: Callable[[Request, bytes], Any], name: str) -> Any:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            body = await request.body() if request.method == "POST" else b""
            writes = request.method == "POST" and name != "auth"
            query = request.url.query
            target = request.url.path + (f"?{query}" if query else "")
            with self._lock:
                self.requests.append((request.method, target))
            fault = self._faults.take_for(name)
            if await answered_by_fault(fault, scope, receive, send):
                return
            if name != "auth" and not self._authorized(request):
                content = orjson.dumps({"code": 401, "message": "Expired JWT Token"})
                await Response(content, 401, media_type="application/json")(scope, receive, send)
                return
            status, payload = handler(request, body)
            content = b"" if status == 204 else orjson.dumps(payload, default=raw_number)
            after = (
                self.fail_after_write.pop(0)
                if writes and status == 201 and self.fail_after_write
                else ""
            )
            if await lose_answer(after, scope, receive, send):
                return
            if fault is not None and fault.kind == "truncate":
                content = content[: len(content) // 2]
            media = "application/ld+json" if status in (200, 201) else "application/json"
            await Response(content, status, media_type=media)(scope, receive, send)

        return endpoint

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        if token == self.token:
            return True
        with self._lock:
            expires = self._jwts.get(token)
        return expires is not None and time.monotonic() < expires

    def _auth(self, request: Request, body: bytes) -> tuple[int, Any]:
        try:
            given = orjson.loads(body)
        except orjson.JSONDecodeError:
            given = None
        if (
            not isinstance(given, dict)
            or given.get("username") != self.username
            or given.get("password") != self.password
        ):
            return 401, {"code": 401, "message": "Invalid credentials."}
        with self._lock:
            self.logins += 1
            claims = orjson.dumps({"sub": self.username, "n": self.logins})
            jwt = "eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(claims).decode().rstrip("=")
            self._jwts[jwt] = time.monotonic() + self.token_ttl
        return 200, {"token": jwt}

    def _page(
        self, request: Request, path: str, store: dict[int, Any], render: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """One page, rendering only its own members (under the lock)."""
        query = request.query_params
        try:
            page = max(1, int(query.get("page", 1)))
            size = min(MAX_PAGE, max(1, int(query.get("itemsPerPage", DEFAULT_PAGE))))
        except ValueError:
            page, size = 1, DEFAULT_PAGE
        with self._lock:
            keys = sorted(store)
            chosen = [render(store[k]) for k in keys[(page - 1) * size : page * size]]
            total = len(keys)
        last = max(1, -(-total // size))
        view: dict[str, Any] = {
            "@id": f"{path}?page={page}",
            "@type": "hydra:PartialCollectionView",
            "first": f"{path}?itemsPerPage={size}&page=1",
            "last": f"{path}?itemsPerPage={size}&page={last}",
        }
        if page < last:
            view["next"] = f"{path}?itemsPerPage={size}&page={page + 1}"
        if self.shape == "hydra":
            view = {k if k.startswith("@") else f"hydra:{k}": v for k, v in view.items()}
            return {
                "@context": f"/contexts/{path.strip('/')}",
                "@id": path,
                "@type": "hydra:Collection",
                "hydra:totalItems": total,
                "hydra:member": chosen,
                "hydra:view": view,
            }
        return {
            "@context": f"/contexts/{path.strip('/')}",
            "@id": path,
            "@type": "Collection",
            "totalItems": total,
            "member": chosen,
            "view": view,
        }

    def _create_transaction(self, request: Request, body: bytes) -> tuple[int, Any]:
        """`POST /invoice-transactions`: `invoice` (IRI), `amount`, `date`, `transaction`
        (IRI or null); API Platform answers 422 with the violations, 201 with the resource."""
        try:
            given = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, {"@type": "hydra:Error", "detail": "Syntax error"}
        if not isinstance(given, dict):
            return 400, {"@type": "hydra:Error", "detail": "Syntax error"}
        violations = []
        invoice_iri = given.get("invoice")
        invoice_id = _iri_number(invoice_iri, "/invoices/")
        amount = given.get("amount")
        if invoice_id is None or invoice_id not in self._invoices:
            violations.append({"propertyPath": "invoice", "message": "Item not found."})
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int | float | str)
        ):
            violations.append({"propertyPath": "amount", "message": "This value is not valid."})
        try:
            moment = dt.datetime.fromisoformat(str(given.get("date")).replace("Z", "+00:00"))
        except ValueError:
            violations.append(
                {"propertyPath": "date", "message": "This value is not a valid date."}
            )
            moment = self._now()
        if violations:
            return 422, {"@type": "ConstraintViolationList", "violations": violations}
        assert invoice_id is not None
        with self._lock:
            invoice = self._invoices[invoice_id]
            transaction_id = self._next["transaction"]
            self._next["transaction"] += 1
            stamp = self._stamp()
            reference = _iri_number(given.get("transaction"), "/transactions/")
            made = _Transaction(
                transaction_id,
                invoice_id,
                Decimal(str(amount)) if amount is not None else Decimal(0),
                moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC),
                stamp,
                stamp,
                reference,
            )
            self._transactions[transaction_id] = made
            invoice.transactions.append(transaction_id)
            self._settle(invoice)
            return 201, self._transaction(made)

    def _delete_transaction(self, request: Request, _body: bytes) -> tuple[int, Any]:
        """`DELETE /invoice-transactions/{id}`: 204; the invoice's status follows."""
        with self._lock:
            made = self._transactions.pop(request.path_params["id"], None)
            if made is None:
                return 404, {"@type": "hydra:Error", "detail": "Not Found"}
            invoice = self._invoices[made.invoice]
            invoice.transactions.remove(made.id)
            self._settle(invoice)
            return 204, None

    def transactions_of(self, invoice_id: int) -> list[dict[str, Any]]:
        with self._lock:
            invoice = self._invoices[invoice_id]
            return [self._transaction(self._transactions[t]) for t in invoice.transactions]

    def _invoice_page(self, request: Request, _body: bytes) -> tuple[int, Any]:
        return 200, self._page(request, "/invoices", self._invoices, self._invoice)

    def _row_page(self, request: Request, _body: bytes) -> tuple[int, Any]:
        return 200, self._page(request, "/invoice-rows", self._rows, self._row)

    def _transaction_page(self, request: Request, _body: bytes) -> tuple[int, Any]:
        return 200, self._page(
            request, "/invoice-transactions", self._transactions, self._transaction
        )

    def _one(self, path: str, _collection: Any) -> Callable[[Request, bytes], tuple[int, Any]]:
        def one(request: Request, _body: bytes) -> tuple[int, Any]:
            item_id = request.path_params["id"]
            with self._lock:
                found: Any
                if path == "/invoices":
                    found = self._invoices.get(item_id)
                    rendered = self._invoice(found) if found else None
                elif path == "/invoice-rows":
                    found = self._rows.get(item_id)
                    rendered = self._row(found) if found else None
                else:
                    found = self._transactions.get(item_id)
                    rendered = self._transaction(found) if found else None
            if rendered is None:
                return 404, {"@type": "hydra:Error", "detail": "Not Found"}
            return 200, rendered

        return one


def _iri_number(value: Any, prefix: str) -> int | None:
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    tail = value[len(prefix) :]
    return int(tail) if tail.isdigit() else None


def _fixed(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "Flowtly",
        lambda invoices, seed, token: FlowtlySimulator(invoices=invoices, seed=seed, token=token),
        "sim-flowtly-token",
        argv,
    )


if __name__ == "__main__":
    main()
