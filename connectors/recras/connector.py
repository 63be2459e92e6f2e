"""Recras invoices (facturen) with their lines (factuurregels) and payments (betalingen).

Recras has no version list and no changed-since filter, so the connector derives both:
- Listing: `GET /api2/factuurregels?begin=&eind=` over the window (`since`, and `window` days
  back from today, up to a year ahead), in slices of `SLICE_DAYS` so that no response grows
  without bound. The lines carry their invoice's summary (`Factuur`: status, number, date), so an
  invoice's lines as listed are a snapshot of it: the listing hands them to the engine, and the
  version is a hash of their exact text. An invoice without lines is not listed.
- Fetching a listed invoice costs two requests: `GET /api2/facturen/{id}?embed=Klant` (the
  customer and payment term the lines lack) and `GET /api2/facturen/{id}/betalingen`. An invoice
  the listing did not hand over is read with `embed=regels,Klant`.
- Payments can change without the invoice changing, so an invoice that is not fully paid
  (`verzonden`, `deels_betaald`) is listed without a version and read again every cycle; its
  version then covers its payments too, and it is written only when that differs. An unchanged
  `betaald` or `concept` invoice costs no request at all.
- Deletion: the listing covers the window's dates, so an invoice dated before the window (it
  left it) is not judged; one that is dated inside it and no longer listed was deleted.
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from connectors.base import NOTHING_LISTED, Connector, Listing
from connectors.errors import ConnectorError
from connectors.http import ApiClient, decode_json
from connectors.ratelimit import Limiter
from connectors.records import Invoice, RawJSON
from connectors.recras.config import RecrasSource
from connectors.recras.normalize import normalize_invoice
from connectors.source import SourceConfig
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
A = TypeVar("A")
B = TypeVar("B")


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

    def __init__(
        self,
        name: str,
        client: ApiClient,
        *,
        since: dt.date,
        window: int,
        today: dt.date | None = None,
    ) -> None:
        super().__init__(name, client)
        self.since = since
        self.window_days = window
        self._today = today

    @classmethod
    def from_config(
        cls, source: SourceConfig, token: str, limiter: Limiter | None = None
    ) -> RecrasConnector:
        if not isinstance(source, RecrasSource):
            raise TypeError(f"source {source.name!r} is not a Recras source")
        client = cls.http_client(source, token, limiter, RecrasClient)
        return cls(source.name, client, since=source.since, window=source.window)

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

    def listing(self) -> Listing:
        grouped: dict[str, list[str]] = {}
        statuses: dict[str, Any] = {}
        for lines in _bounded(self._lines_between, self.slices()):
            for position, (line, raw) in enumerate(lines):
                invoice = line.get("Factuur") if isinstance(line, dict) else None
                remote_id = invoice.get("id") if isinstance(invoice, dict) else None
                if remote_id is None or isinstance(remote_id, bool):
                    raise ConnectorError(
                        f"{self.name}: factuurregels: line {position} carries no Factuur.id"
                    )
                key = str(remote_id)
                grouped.setdefault(key, []).append(raw)
                statuses[key] = invoice.get("status")  # type: ignore[union-attr]
        records = {key: RawJSON("[" + ",".join(raws) + "]") for key, raws in grouped.items()}
        versions = {
            key: None if statuses[key] in UNSETTLED else content_version(text)
            for key, text in records.items()
        }
        return Listing(versions=versions, records=records, dated=self.dates())

    def _lines_between(self, dates: tuple[dt.date, dt.date]) -> list[tuple[Any, RawJSON]]:
        begin, end = dates
        return list(
            self.client.request_json_array(
                "GET",
                "api2/factuurregels",
                params={"begin": begin.isoformat(), "eind": end.isoformat()},
            )
        )

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        if len(remote_ids) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} ids per fetch, got {len(remote_ids)}")
        fetched = _bounded(lambda i: self._fetch_one(i, listed.get(i)), remote_ids)
        return iter([item for item in fetched if item is not None])

    def _fetch_one(self, remote_id: str, lines_text: RawJSON | None) -> tuple[Any, RawJSON] | None:
        """None when the invoice went away since the listing (the next listing says so)."""
        path = f"api2/facturen/{remote_id}"
        embed = "Klant" if lines_text is not None else "regels,Klant"
        invoice = self.client.call_unless_missing("GET", path, _exact, params={"embed": embed})
        if invoice is None:
            return None
        payments = self.client.call_unless_missing("GET", f"{path}/betalingen", _exact)
        if payments is None:
            return None
        (record, record_text), (paid, paid_text) = invoice, payments
        if lines_text is not None:
            lines = decode_json(lines_text.encode(), f"{self.name}: listed lines of {remote_id}")
            raw = f'{{"factuur":{record_text},"regels":{lines_text},"betalingen":{paid_text}}}'
        else:
            lines = record.get("regels") if isinstance(record, dict) else None
            raw = f'{{"factuur":{record_text},"betalingen":{paid_text}}}'
        status = record.get("status") if isinstance(record, dict) else None
        if status in UNSETTLED:
            version = content_version(lines_text or "", record_text, paid_text)
        else:
            # What the listing hashes, so that the next listing finds it unchanged (read
            # without the listing, it is read once more with it).
            version = content_version(lines_text or record_text)
        return (
            Fetched(
                invoice=record if isinstance(record, dict) else {},
                lines=lines if isinstance(lines, list) else [],
                payments=paid if isinstance(paid, list) else [],
                version=version,
            )
            if isinstance(record, dict) and isinstance(paid, list)
            else record,
            RawJSON(raw),
        )

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


def _bounded(work: Callable[[A], B], items: Sequence[A]) -> list[B]:
    """`work` over `items`, `CONCURRENCY` at a time, in order. The first failure cancels what
    has not started: a refused key costs a request or two, not one per item."""
    failed = threading.Event()

    def guarded(item: A) -> B:
        if failed.is_set():
            raise _Abandoned
        try:
            return work(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="recras") as pool:
        futures = [pool.submit(guarded, item) for item in items]
        return [future.result() for future in futures]  # the first failure, in order


class _Abandoned(Exception):
    """Not started: an earlier item failed."""


def _exact(response: httpx.Response, what: str) -> tuple[Any, str]:
    """The decoded body (numbers exact) and its text, kept as the source spelled it."""
    return decode_json(response.content, what), response.text
