"""Flowtly invoices, invoice rows and invoice transactions through API Platform collections.

- Listing: every cycle reads the three collections whole (`GET /invoices`, `/invoice-rows`,
  `/invoice-transactions`, `itemsPerPage` = `page_size`), following each page's `next` link in
  either JSON-LD shape (`hydra:member` / `hydra:view` or `member` / `view`). Rows and transactions
  name their invoice by IRI (`"/invoices/42"` -> `"42"`), so each invoice's snapshot (the invoice,
  its rows, its transactions) is complete from the collections alone: no request per invoice,
  changed or not. The version is the invoice's `updatedAt` and a short hash of the snapshot (rows
  carry no `updatedAt`, and a row can change without the invoice's stamp moving). The listing is
  complete, so a vanished invoice is marked deleted; so is one soft-deleted (`deleted` true or a
  `deletedAt`), which the listing leaves out.
- Auth: `bearer` sends the token; `login` trades `username` and the password for a JWT
  (`POST /auth`), kept in memory only, renewed before its `exp` and whenever a 401 says it expired.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
import zoneinfo
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import httpx
import orjson

from connectors.base import NO_HISTORY, NOTHING_LISTED, Connector, Listing, ListingHistory
from connectors.concurrency import bounded
from connectors.errors import AuthError, ConnectorError
from connectors.flowtly.config import FlowtlySource
from connectors.flowtly.normalize import normalize_invoice
from connectors.http import ApiClient, decode_json, dump_json
from connectors.payments import PaymentPush, created_id
from connectors.ratelimit import Limiter
from connectors.records import Invoice, RawJSON
from connectors.source import SourceConfig
from connectors.versions import content_version

#: renew a JWT this long before its `exp`
RENEW_BEFORE = 60.0

#: invoices read at once when write-back re-checks a batch
CONCURRENCY = 4
_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


class JWTLogin(httpx.Auth):
    """httpx's auth flow for a login that yields a bearer JWT: log in when there is none or it
    is about to expire, and once more when the API answers 401 (an expiry we could not see)."""

    requires_response_body = True

    def __init__(self, username: str, password: str, path: str = "auth") -> None:
        self._credentials = {"username": username, "password": password}
        self._path = path
        self._token: str | None = None
        self._expires: float | None = None
        self._lock = threading.Lock()
        self.logins = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            token = self._token if not self._expiring() else None
        if token is None:
            token = yield from self._login(request)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                renewed = self._token if self._token != token else None
            if renewed is None:
                renewed = yield from self._login(request)
            request.headers["Authorization"] = f"Bearer {renewed}"
            yield request

    def _expiring(self) -> bool:
        return self._expires is not None and time.time() > self._expires - RENEW_BEFORE

    def _login(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, str]:
        url = request.url.copy_with(raw_path=b"/" + self._path.encode(), query=None)
        response = yield httpx.Request(
            "POST", url, content=orjson.dumps(self._credentials),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )  # fmt: skip
        if response.status_code != 200:
            raise AuthError(f"Flowtly login refused (HTTP {response.status_code}): check username "
                            "and password_env")  # fmt: skip
        try:
            token = orjson.loads(response.content)["token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise AuthError("Flowtly login answered without a token") from None
        with self._lock:
            self._token, self._expires = token, _expiry(token)
            self.logins += 1
        return str(token)


def _expiry(token: str) -> float | None:
    """A JWT's `exp` claim, if it has one that can be read (the signature is not ours to check)."""
    try:
        claims = token.split(".")[1]
        payload = orjson.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        exp = payload.get("exp")
        return float(exp) if isinstance(exp, int | float) else None
    except (IndexError, ValueError, orjson.JSONDecodeError, AttributeError):
        return None


class FlowtlyConnector(Connector):
    kind = "flowtly"
    batch_size = 100
    ordered_versions = False
    writes_payments = True

    def __init__(self, name: str, client: ApiClient, *, page_size: int) -> None:
        super().__init__(name, client)
        self.page_size = page_size

    @classmethod
    def from_config(
        cls, source: SourceConfig, token: str, limiter: Limiter | None = None
    ) -> FlowtlyConnector:
        if not isinstance(source, FlowtlySource):
            raise TypeError(f"source {source.name!r} is not a Flowtly source")
        login = source.auth == "login"
        client = cls.http_client(source, token, limiter, ApiClient, bearer=not login)
        if login:
            assert source.username is not None
            client.use_auth(JWTLogin(source.username, token))
        return cls(source.name, client, page_size=source.page_size)

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
        invoices = self._collection("invoices", _invoice_summary)
        rows_of = _by_invoice(self._collection("invoice-rows", _owner))
        paid_of = _by_invoice(self._collection("invoice-transactions", _owner))
        versions: dict[str, str | None] = {}
        records: dict[str, RawJSON] = {}
        for (remote_id, deleted, updated), text in invoices:
            if deleted:
                continue  # soft-deleted: left out, so the engine marks it deleted
            snapshot = RawJSON(
                f'{{"invoice":{text},"rows":[{",".join(rows_of.get(remote_id, ()))}],'
                f'"transactions":[{",".join(paid_of.get(remote_id, ()))}]}}'
            )
            records[remote_id] = snapshot
            versions[remote_id] = f"{updated or '-'} {content_version(snapshot)[:12]}"
        return Listing(versions=versions, records=records)

    def _collection(self, name: str, summary: Callable[[Any], Any]) -> list[tuple[Any, str]]:
        """Every member of a collection as (what the listing needs of it, its text), page by
        page along the `next` links; the decoded members are dropped page by page (at 10,000
        invoices they weigh more than everything else the listing keeps)."""
        kept: list[tuple[Any, str]] = []

        def fetch(values: dict[str, Any]) -> dict[str, Any]:
            return self.client.call("GET", values["url"], _page)

        first = {"url": f"{name}?itemsPerPage={self.page_size}"}
        for page in self.client.pages(fetch, _follow, first):
            for member in page["members"]:
                about = summary(member)
                if about is None:
                    raise ConnectorError(
                        f"{self.name}: {name}: item {len(kept)} has no id or invoice"
                    )
                kept.append((about, dump_json(member)))
        return kept

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        """Straight from the listing: the collections already said everything. An id without
        its snapshot (a batch message from an older worker) is left for the next cycle."""
        self.check_batch(remote_ids)
        found = []
        for remote_id in remote_ids:
            text = listed.get(remote_id)
            if text is not None:
                found.append(
                    (decode_json(text.encode(), f"{self.name}: invoice {remote_id}"), text)
                )
        return iter(found)

    def invoices_now(self, remote_ids: Sequence[str]) -> dict[str, Invoice]:
        """Each invoice by id, and its transactions from the collection (an invoice does not
        name them, and the collection has no filter): 100 GETs and one walk of the
        transactions per batch. Rows are left out: write-back needs totals and payments."""
        self.check_batch(remote_ids)
        heads = bounded(
            lambda i: self.client.call_unless_missing("GET", f"invoices/{i}", _member),
            remote_ids,
            CONCURRENCY,
        )
        wanted = {remote_id for remote_id, head in zip(remote_ids, heads, strict=True) if head}
        paid_of = _by_invoice(
            [
                (owner, text)
                for owner, text in self._collection("invoice-transactions", _owner)
                if owner in wanted
            ]  # fmt: skip
        )
        found: dict[str, Invoice] = {}
        for remote_id, head in zip(remote_ids, heads, strict=True):
            if head is None or head[0].get("deleted"):
                continue
            raw = RawJSON(
                f'{{"invoice":{head[1]},"rows":[],'
                f'"transactions":[{",".join(paid_of.get(remote_id, ()))}]}}'
            )
            found[remote_id] = self.normalize(decode_json(raw.encode(), remote_id), raw)
        return found

    def payment_marker(self, key: str, bank_transaction_id: int) -> str:
        """A transaction's only reference is `transaction`, an IRI: `/transactions/<id>` names
        the bank transaction (our id), and reads back as that id."""
        return str(bank_transaction_id)

    def register_payment(self, push: PaymentPush) -> str:
        """`POST /invoice-transactions` with the invoice's IRI, `amount` (exact, as a string
        like every Flowtly amount), `date` (the booking date) and the marker as `transaction`;
        a 422 names its violations."""
        body = {
            "invoice": f"/invoices/{push.invoice_remote_id}",
            "amount": format(push.amount, "f"),
            "date": push.paid_on.isoformat(),
            "transaction": f"/transactions/{push.marker}",
        }
        return self.client.write("POST", "invoice-transactions", created_id, json=body)

    def undo_payment(self, invoice_remote_id: str, payment_remote_id: str) -> None:
        path = f"invoice-transactions/{payment_remote_id}"
        self.client.delete(path)

    def normalize(self, record: Any, raw: RawJSON) -> Invoice:
        today = dt.datetime.now(_AMSTERDAM).date()
        version = f"{_updated(record)} {content_version(raw)[:12]}"
        return normalize_invoice(record, raw, version=version, today=today)

    def identify(self, record: Any) -> tuple[str | None, str | None]:
        invoice = record.get("invoice") if isinstance(record, dict) else None
        if isinstance(invoice, dict):
            return _id(invoice.get("id")), None
        return None, None


def _member(response: httpx.Response, what: str) -> tuple[dict[str, Any], str]:
    member = decode_json(response.content, what)
    if not isinstance(member, dict):
        raise ConnectorError(f"{what}: not a JSON object")
    return member, dump_json(member)


def _updated(record: Any) -> str:
    invoice = record.get("invoice") if isinstance(record, dict) else None
    stamp = invoice.get("updatedAt") if isinstance(invoice, dict) else None
    return str(stamp) if stamp else "-"


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def iri_id(value: Any) -> str | None:
    """`"/invoices/42"` -> `"42"`; None for no reference."""
    if not isinstance(value, str) or not value.strip():
        return None
    tail = value.rstrip("/").rsplit("/", 1)[-1]
    return tail or None


def _invoice_summary(member: Any) -> tuple[str, bool, str | None] | None:
    """(id, soft-deleted, updatedAt) of an invoice member."""
    if not isinstance(member, dict):
        return None
    remote_id = _id(member.get("id"))
    if remote_id is None:
        return None
    deleted = member.get("deleted") is True or bool(member.get("deletedAt"))
    updated = member.get("updatedAt")
    return remote_id, deleted, str(updated) if updated else None


def _owner(member: Any) -> str | None:
    """The invoice a row or transaction belongs to, from its IRI."""
    return iri_id(member.get("invoice")) if isinstance(member, dict) else None


def _by_invoice(members: list[tuple[Any, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for owner, text in members:
        grouped.setdefault(owner, []).append(text)
    return grouped


def _page(response: httpx.Response, what: str) -> dict[str, Any]:
    """One collection page in either JSON-LD shape: its members (with their text) and the
    next page's IRI."""
    body = decode_json(response.content, what)
    if not isinstance(body, dict):
        raise ConnectorError(f"{what}: not a collection")
    members = body.get("hydra:member", body.get("member"))
    if not isinstance(members, list):
        raise ConnectorError(f"{what}: a collection without hydra:member or member")
    view = body.get("hydra:view", body.get("view")) or {}
    following = view.get("hydra:next", view.get("next")) if isinstance(view, dict) else None
    return {
        "members": members,
        "next": following if isinstance(following, str) and following else None,
    }


def _follow(page: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any] | None:
    return {"url": page["next"]} if page["next"] else None
