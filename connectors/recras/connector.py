"""Recras invoices (facturen) with their lines (factuurregels) and payments (betalingen).

Recras has no version list and no changed-since filter, so the connector derives both:
- Listing, per cycle: `GET /api2/facturen?datumNa=<window start>&embed=Klant` (every invoice
  of the window without its lines: about 250 bytes each; the API has no upper date bound or
  paging for it) and `GET /api2/factuurregels?begin=&eind=` over the window in slices of
  `SLICE_DAYS`, so that the lines, the bulk of the data, never come in one unbounded answer.
  An invoice's header and lines together are a snapshot of it: the listing hands that to the
  engine, and a hash of its exact text is the version.
- Fetching a listed invoice costs one request, its payments
  (`GET /api2/facturen/{id}/betalingen`); an invoice the listing did not hand over (a daemon
  message without it, lines of an invoice created between the two listing requests) is read
  with `GET /api2/facturen/{id}?embed=regels,Klant` first.
- Payments can change without the invoice changing, so an invoice that is not fully paid
  (`verzonden`, `deels_betaald`) is listed without a version and its payments are read every
  cycle; its version then covers them, and it is written only when that differs. An unchanged
  `betaald` or `concept` invoice costs no request at all.
- Deletion: the listing covers the window's dates, so an invoice dated before the window (it
  left it) is not judged; one that is dated inside it and no longer listed is asked for: gone
  (404) it was deleted, still there its date was moved out of the window and it is fetched.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from connectors.base import NO_HISTORY, NOTHING_LISTED, Connector, Listing, ListingHistory
from connectors.concurrency import bounded
from connectors.errors import ConnectorError, TransientError
from connectors.http import ApiClient, decode_json, dump_json
from connectors.payments import PaymentPush, created_id
from connectors.ratelimit import Limiter
from connectors.records import Invoice, RawJSON
from connectors.recras.config import RecrasSource
from connectors.recras.normalize import normalize_invoice
from connectors.source import SourceConfig
from connectors.spool import Span, SpooledRecords, TextSpool
from connectors.versions import content_version

#: days of invoice dates one `factuurregels` request covers
SLICE_DAYS = 92
#: how far past today the listing looks (invoices dated ahead, for bookings to come)
AHEAD_DAYS = 366
#: requests in flight at once per listing or batch: Recras asks nothing, so be polite
CONCURRENCY = 2
#: statuses whose payments may still change: read again every cycle
UNSETTLED = frozenset({"verzonden", "deels_betaald"})

_AMSTERDAM = zoneinfo.ZoneInfo("Europe/Amsterdam")


@dataclass(frozen=True, slots=True)
class Fetched:
    """One invoice as two requests (and perhaps the listing) gave it, with its version."""

    invoice: dict[str, Any]
    lines: list[Any]
    payments: list[Any]
    version: str


class RecrasClient(ApiClient):
    def refusal_detail(self, response: httpx.Response) -> str:
        """Recras names a missing permission: `{"error": "Geen rechten: viewFactuur"}`."""
        try:
            message = orjson.loads(response.content).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            return ""
        if not isinstance(message, str) or not message.strip():
            return ""
        text = " ".join(message.split())[:200]
        if response.status_code == 403:
            return f"{text} (the API key's user lacks this Recras permission: grant it)"
        return text


class RecrasConnector(Connector):
    kind = "recras"
    batch_size = 100
    ordered_versions = False
    writes_payments = True

    def __init__(
        self,
        name: str,
        client: ApiClient,
        *,
        since: dt.date,
        window: int,
        today: dt.date | None = None,
        betaalmethode_id: int | None = None,
    ) -> None:
        super().__init__(name, client)
        self.since = since
        self.window_days = window
        self._today = today
        self.betaalmethode_id = betaalmethode_id

    @classmethod
    def from_config(
        cls, source: SourceConfig, token: str, limiter: Limiter | None = None
    ) -> RecrasConnector:
        if not isinstance(source, RecrasSource):
            raise TypeError(f"source {source.name!r} is not a Recras source")
        client = cls.http_client(source, token, limiter, RecrasClient)
        return cls(
            source.name,
            client,
            since=source.since,
            window=source.window,
            betaalmethode_id=source.betaalmethode_id,
        )

    def today(self) -> dt.date:
        return self._today or dt.datetime.now(_AMSTERDAM).date()

    def dates(self) -> tuple[dt.date, dt.date]:
        """The invoice dates a listing covers: the window, not before `since`."""
        today = self.today()
        first = max(self.since, today - dt.timedelta(days=self.window_days))
        return first, today + dt.timedelta(days=AHEAD_DAYS)

    def slices(self) -> list[tuple[dt.date, dt.date]]:
        first, last = self.dates()
        step = dt.timedelta(days=SLICE_DAYS)
        slices = []
        while first <= last:
            end = min(first + step - dt.timedelta(days=1), last)
            slices.append((first, end))
            first = end + dt.timedelta(days=1)
        return slices

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
        first, last = self.dates()
        requests = [("api2/facturen", {"datumNa": first.isoformat(), "embed": "Klant"})]
        requests += [
            ("api2/factuurregels", {"begin": begin.isoformat(), "eind": end.isoformat()})
            for begin, end in self.slices()
        ]
        spool = TextSpool()
        headers, *slices = bounded(
            lambda request: self._read(*request, spool), requests, CONCURRENCY
        )
        lines: dict[str, list[Span]] = {}
        for answer in slices:
            for remote_id, span in answer:
                lines.setdefault(remote_id, []).append(span)
        versions: dict[str, str | None] = {}
        records = SpooledRecords(spool)
        for (remote_id, status, datum), span in headers:
            if datum is not None and datum > last.isoformat():
                continue  # past the window's end: its lines were not asked for
            regels = ",".join(spool.read(line) for line in lines.pop(remote_id, ()))
            text = RawJSON(f'{{"factuur":{spool.read(span)},"regels":[{regels}]}}')
            records.add(remote_id, text)
            versions[remote_id] = None if status in UNSETTLED else content_version(text)
        for remote_id in lines:  # lines of an invoice created after its header was read
            versions[remote_id] = None
        return Listing(versions=versions, records=records, dated=(first, last))

    def confirm_gone(self, remote_ids: Sequence[str]) -> list[str]:
        """The listing lacks an invoice that was deleted, and also one whose date was moved
        before the window (it then left the window while its mirrored date is inside it): one
        request for each tells them apart, and those still there are fetched again."""

        def gone(remote_id: str) -> bool:
            found = self.client.call_unless_missing(
                "GET", f"api2/facturen/{remote_id}", lambda response, what: True
            )
            return found is None

        answers = bounded(gone, remote_ids, CONCURRENCY)
        return [remote_id for remote_id, absent in zip(remote_ids, answers, strict=True) if absent]

    def _read(self, path: str, params: dict[str, str], spool: TextSpool) -> list[tuple[Any, Span]]:
        """One listing answer: each item's exact text goes to the spool, and the little the
        listing needs of it stays (the decoded items are dropped at once: 10,000 invoices of
        them weigh ~50 MB)."""
        kept: list[tuple[Any, Span]] = []
        lines = path.endswith("factuurregels")
        for position, (item, raw) in enumerate(
            self.client.request_json_array("GET", path, params=params)
        ):
            owner = item.get("Factuur") if lines and isinstance(item, dict) else item
            remote_id = owner.get("id") if isinstance(owner, dict) else None
            if remote_id is None or isinstance(remote_id, bool):
                what = "carries no Factuur.id" if lines else "has no id"
                raise ConnectorError(f"{self.name}: {path}: item {position} {what}")
            if lines:
                kept.append((str(remote_id), spool.write(raw)))
            else:
                datum = item.get("datum")
                summary = (
                    str(remote_id),
                    item.get("status"),
                    datum[:10] if isinstance(datum, str) else None,
                )
                kept.append((summary, spool.write(raw)))
        return kept

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        self.check_batch(remote_ids)
        fetched = bounded(lambda i: self._fetch_one(i, listed.get(i)), remote_ids, CONCURRENCY)
        return iter([item for item in fetched if item is not None])

    def _fetch_one(self, remote_id: str, snapshot: RawJSON | None) -> tuple[Any, RawJSON] | None:
        """The invoice (from the listing, else read with its lines) and its payments; None when
        it went away since the listing (the next listing says so)."""
        path = f"api2/facturen/{remote_id}"
        what = f"{self.name}: invoice {remote_id}"
        listed: Any
        if snapshot is None:
            answer = self.client.call_unless_missing(
                "GET", path, _exact, params={"embed": "regels,Klant"}
            )
            if answer is None:
                return None
            listed = {"factuur": answer[0]}
            snapshot = RawJSON(f'{{"factuur":{answer[1]}}}')
        else:
            listed = decode_json(snapshot.encode(), what)
        fetched = self.client.call_unless_missing("GET", f"{path}/betalingen", _exact)
        if fetched is None:
            return None
        paid, payments = fetched
        raw = RawJSON(f'{snapshot[:-1]},"betalingen":{payments}}}')
        invoice = listed.get("factuur") if isinstance(listed, dict) else None
        if not isinstance(invoice, dict) or not isinstance(paid, list):
            return listed, raw  # refused by `normalize`, quarantined with its text
        lines = listed.get("regels", invoice.get("regels"))
        if invoice.get("status") in UNSETTLED:
            version = content_version(snapshot, payments)
        else:
            version = content_version(snapshot)  # what the listing hashes
        return Fetched(invoice, lines if isinstance(lines, list) else [], paid, version), raw

    def register_payment(self, push: PaymentPush) -> str:
        """`POST /api2/facturen/{id}/betalingen`: `bedrag` as an exact JSON number, `wanneer`
        the booking date (noon in Amsterdam, so no time zone moves the day), the marker as
        `opmerking`. The seed documents `opmerking` in answers only; read-back relies on it."""
        body: dict[str, Any] = {
            "bedrag": push.amount,
            "wanneer": dt.datetime.combine(push.paid_on, dt.time(12), _AMSTERDAM).isoformat(),
            "opmerking": push.marker,
        }
        if self.betaalmethode_id is not None:
            body["betaalmethode_id"] = self.betaalmethode_id
        return self.client.write(
            "POST",
            f"api2/facturen/{push.invoice_remote_id}/betalingen",
            _created_id,
            content=dump_json(body),
            headers={"Content-Type": "application/json"},
        )

    def undo_payment(self, invoice_remote_id: str, payment_remote_id: str) -> None:
        path = f"api2/facturen/{invoice_remote_id}/betalingen/{payment_remote_id}"
        self.client.delete(path)

    def normalize(self, record: Any, raw: RawJSON) -> Invoice:
        if not isinstance(record, Fetched):
            raise ValueError("expected an invoice object and its payments list")
        return normalize_invoice(
            {**record.invoice, "regels": record.lines},
            record.payments,
            raw,
            version=record.version,
            today=self.today(),
        )

    def identify(self, record: Any) -> tuple[str | None, str | None]:
        if isinstance(record, Fetched):
            remote_id = record.invoice.get("id")
            return (None if remote_id is None else str(remote_id)), record.version
        return super().identify(record)


def _created_id(response: httpx.Response, what: str) -> str:
    """The new payment's id from the answer, else from its `Location` (`created_id`)."""
    try:
        return created_id(response, what)
    except TransientError:
        tail = response.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
        if tail.isdigit():
            return tail
        raise


def _exact(response: httpx.Response, what: str) -> tuple[Any, str]:
    """The body decoded (numbers exact) and as the source spelled it; a truncated body fails
    to decode and is retried, as the client retries any unreadable answer."""
    return decode_json(response.content, what), response.text
