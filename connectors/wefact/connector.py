"""WeFact invoices through its one POST endpoint (`controller` / `action` / `api_key` in the body).

- Listing: `invoice list`, 1000 a page by `offset`, sorted by `Identifier` (new invoices come
  last, so paging cannot skip one). Each item's `Modified` is its version. Between complete
  listings (the first cycle, `sync --full`, and once `full_listing_every` has passed since the last
  one) a cycle lists only what was modified since the last successful cycle started, less
  `CURSOR_MARGIN`: `Modified` is Amsterdam local time without a zone, so the hour that repeats at
  the autumn clock change, and a server clock a little ahead of ours, fall inside the overlap.
  Overlapping items are listed again at an unchanged version and cost nothing. `Modified` can go
  back in that hour, so versions are compared for difference only. A complete listing whose
  total changes while it pages is read again (an invoice deleted meanwhile would shift one past
  the pages); only a complete listing marks what it lacks deleted.
- Fetching: `invoice show` per invoice (WeFact has no batch fetch), `CONCURRENCY` at a time, in
  the engine's batches of up to 100. An invoice deleted since the listing is skipped.
- Errors come back as HTTP 200 with `"status": "error"`: a refused key or address stops the
  source at once (no retry), an unknown invoice is skipped, a refused parameter is a permanent
  error (it is ours to fix), anything else is retried like a 5xx.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
import orjson

from connectors.base import NO_HISTORY, NOTHING_LISTED, Connector, Listing, ListingHistory
from connectors.concurrency import bounded
from connectors.errors import (
    AnsweredError,
    AuthError,
    ConnectorError,
    PermanentError,
)
from connectors.http import ApiClient, decode_json, dump_json
from connectors.payments import PaymentPush
from connectors.ratelimit import Limiter
from connectors.records import Invoice, RawJSON
from connectors.source import SourceConfig
from connectors.versions import content_version
from connectors.wefact.config import WeFactSource
from connectors.wefact.normalize import normalize_invoice

#: invoices per `invoice list` page (WeFact's maximum)
PAGE = 1000
#: requests in flight at once per batch: WeFact documents no limit, so be polite
CONCURRENCY = 4
#: how far before the last successful cycle's start a changes-only listing looks back
CURSOR_MARGIN = dt.timedelta(hours=2)
#: what `invoice list` and `invoice show` both say of an invoice, beside `Modified`
VERSIONED_FIELDS = ("Status", "AmountExcl", "AmountIncl", "AmountPaid", "PayBefore", "Date")
#: how often a complete listing is read again when its total moved while paging
RELIST_ATTEMPTS = 3

_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


class InvoiceMissing(PermanentError):
    """`invoice show` for an invoice that no longer exists."""


class WeFactClient(ApiClient):
    """Every call is a POST to the endpoint with the key in the body; errors in a 200."""

    def __init__(self, *, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api_key = api_key

    def send(
        self,
        controller: str,
        action: str,
        parse: Callable[[httpx.Response, str], Any],
        **params: Any,
    ) -> Any:
        """One call; `what` in errors names the controller and action, never the body."""
        return self.call("POST", "", parse, **self._request(controller, action, params))

    def send_write(
        self,
        controller: str,
        action: str,
        parse: Callable[[httpx.Response, str], Any],
        **params: Any,
    ) -> Any:
        """`send` for a call that must not happen twice (`ApiClient.write`)."""
        return self.write("POST", "", parse, **self._request(controller, action, params))

    def _request(self, controller: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        body = {"api_key": self._api_key, "controller": controller, "action": action, **params}
        return {"content": dump_json(body), "headers": {"Content-Type": "application/json"}}

    def check_envelope(self, response: httpx.Response, what: str) -> None:
        """An error envelope says `"status": "error"`; a body without the word is not one, and
        is decoded once, by its parser."""
        if b'"error"' not in response.content:
            return
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return  # a truncated or broken body: the parser says so, and it is retried
        if not isinstance(body, dict) or body.get("status") != "error":
            return
        errors = body.get("errors")
        text = "; ".join(str(e) for e in errors) if isinstance(errors, list) else str(errors)
        text = " ".join(text.split())[:300] or "an error without a message"
        lowered = text.lower()
        if "api key" in lowered or "api-key" in lowered or "ip" in lowered.split():
            raise AuthError(f"{what}: WeFact refused the API key: {text}")
        if "not found" in lowered or "niet gevonden" in lowered:
            raise InvoiceMissing(f"{what}: {text}")
        if "parameter" in lowered or "required" in lowered or "verplicht" in lowered:
            raise PermanentError(f"{what}: WeFact refused the request: {text}")
        raise AnsweredError(f"{what}: WeFact answered an error: {text}")


class WeFactConnector(Connector):
    kind = "wefact"
    batch_size = 100
    ordered_versions = False
    writes_payments = True

    def __init__(
        self,
        name: str,
        client: WeFactClient,
        *,
        full_listing_every: float,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__(name, client)
        self.client: WeFactClient = client
        self.full_listing_every = dt.timedelta(seconds=full_listing_every)
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def from_config(
        cls, source: SourceConfig, token: str, limiter: Limiter | None = None
    ) -> WeFactConnector:
        if not isinstance(source, WeFactSource):
            raise TypeError(f"source {source.name!r} is not a WeFact source")
        client = cls.http_client(source, token, limiter, WeFactClient, bearer=False, api_key=token)
        return cls(source.name, client, full_listing_every=source.full_listing_every)

    def changed_since(self, history: ListingHistory) -> str | None:
        """The `modified[from]` of a changes-only listing, or None when this cycle must list
        every invoice (no earlier success, or the last complete listing is too old)."""
        last, complete = history.last_success, history.last_complete
        if last is None or complete is None or self._now() - complete >= self.full_listing_every:
            return None
        local = (last - CURSOR_MARGIN).astimezone(_AMSTERDAM)
        return local.strftime("%Y-%m-%d %H:%M:%S")

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
        since = self.changed_since(history)
        first: dict[str, Any] = {"offset": 0, "limit": PAGE, "sort": "Identifier", "order": "ASC"}
        if since is not None:
            first["modified"] = {"from": since, "to": ""}
        for _attempt in range(RELIST_ATTEMPTS):
            versions = self._list(first)
            if versions is not None:
                return Listing(versions=versions, complete=since is None)
        raise ConnectorError(
            f"{self.name}: invoice list: the number of invoices kept changing while it was "
            f"paged ({RELIST_ATTEMPTS} tries); the next cycle lists again"
        )

    def _list(self, first: dict[str, Any]) -> dict[str, str | None] | None:
        """Identifier -> Modified over every page; None if the total moved meanwhile."""
        versions: dict[str, str | None] = {}
        total: int | None = None
        fetch = lambda values: self.client.send("invoice", "list", _page, **values)  # noqa: E731
        for page in self.client.pages(fetch, _next_page, first):
            if total is None:
                total = page["totalresults"]
            elif page["totalresults"] != total:
                return None
            for position, item in enumerate(page["invoices"]):
                identifier = item.get("Identifier") if isinstance(item, dict) else None
                if identifier is None or isinstance(identifier, bool):
                    raise ConnectorError(
                        f"{self.name}: invoice list: item {position} has no Identifier"
                    )
                versions[str(identifier)] = version_of(item)
        return versions

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        self.check_batch(remote_ids)
        fetched = bounded(self._show, remote_ids, CONCURRENCY)
        return iter([item for item in fetched if item is not None])

    def _show(self, remote_id: str) -> tuple[Any, RawJSON] | None:
        try:
            invoice = self.client.send("invoice", "show", _invoice, Identifier=remote_id)
        except InvoiceMissing:
            return None
        return invoice, RawJSON(dump_json(invoice))

    def register_payment(self, push: PaymentPush) -> str:
        """`invoice markaspaid` when the payment settles what is open, else `invoice
        partpayment` with `AmountPaid`; the marker as `TransactionID`. WeFact keeps one payment
        state per invoice, so its id is the invoice's (`<Identifier>:paid`, as normalized)."""
        params: dict[str, Any] = {
            "Identifier": push.invoice_remote_id,
            "PayDate": push.paid_on.isoformat(),
            "TransactionID": push.marker,
        }
        if push.settles:
            self.client.send_write("invoice", "markaspaid", _invoice, **params)
        else:
            self.client.send_write(
                "invoice", "partpayment", _invoice, AmountPaid=push.amount, **params
            )
        return f"{push.invoice_remote_id}:paid"

    def normalize(self, record: Any, raw: RawJSON) -> Invoice:
        version = version_of(record) if isinstance(record, dict) else None
        if version is None:
            raise ValueError("Modified: missing; it is the invoice's version")
        today = self._now().astimezone(_AMSTERDAM).date()
        return normalize_invoice(record, raw, version=version, today=today)

    def identify(self, record: Any) -> tuple[str | None, str | None]:
        if isinstance(record, dict):
            identifier, modified = record.get("Identifier"), record.get("Modified")
            return (
                None if identifier is None else str(identifier),
                str(modified)[:100] if modified else None,
            )
        return None, None


def version_of(invoice: dict[str, Any]) -> str | None:
    """`Modified`, and a short hash of what the listing shows of the invoice: `Modified` has
    whole seconds, and an invoice paid in the second it was created or listed keeps its stamp,
    but not its status or amount paid. None (fetch it) when `Modified` is missing."""
    modified = invoice.get("Modified")
    if not isinstance(modified, str) or not modified.strip():
        return None
    shown = [str(invoice.get(key)) for key in VERSIONED_FIELDS]
    return f"{modified.strip()} {content_version(*shown)[:12]}"


def _page(response: httpx.Response, what: str) -> dict[str, Any]:
    body = decode_json(response.content, what)
    items = body.get("invoices") if isinstance(body, dict) else None
    total = body.get("totalresults") if isinstance(body, dict) else None
    if not isinstance(items, list) or not isinstance(total, int | Decimal):
        raise ConnectorError(f"{what}: invoice list: no invoices/totalresults in the answer")
    return {"invoices": items, "totalresults": int(total)}


def _next_page(page: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any] | None:
    following = int(sent["offset"]) + len(page["invoices"])
    if not page["invoices"] or following >= page["totalresults"]:
        return None
    return {**sent, "offset": following}


def _invoice(response: httpx.Response, what: str) -> Any:
    body = decode_json(response.content, what)
    return body.get("invoice") if isinstance(body, dict) else body
