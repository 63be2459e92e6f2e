"""The connector interface: the three hooks a remote API fills in for the sync engine.

A connector lists ids and versions, fetches a batch of records by id, and normalizes one raw
record. Diffing, batching, writing, deletion marking and bookkeeping live in the engine
(`workers.engine`), so adding an API means writing these hooks and nothing else. Connectors never
touch the database.

How a source is listed is the connector's choice, said in the `Listing` it returns:
- an id/version list (Moneybird): override `list_versions`;
- a snapshot whose records are already complete (Recras): override `listing` and hand the
  records' text over in `Listing.records`, so the engine passes them to `fetch_batch` instead of
  having them fetched again;
- a modified-since cursor: a `Listing` with `complete=False` names what changed and deletes
  nothing; a periodic complete listing sees deletions.
Deletion follows from the listing alone: only a complete listing marks what it lacks deleted, and
only within the dates it covers (`Listing.dated`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from connectors.http import ApiClient
from connectors.listing import NO_HISTORY, NOTHING_LISTED, Listing, ListingHistory
from connectors.payments import PaymentPush, WriteBackUnsupported
from connectors.ratelimit import Limiter, SlidingWindowLimiter
from connectors.records import Invoice, RawJSON
from connectors.source import SourceConfig
from connectors.streams import INVOICES

C = TypeVar("C", bound=ApiClient)

__all__ = ["NOTHING_LISTED", "NO_HISTORY", "Connector", "Listing", "ListingHistory", "RecordStream"]


class RecordStream(Protocol):
    """What the sync engine needs of one kind of remote record: a connector is the invoice
    stream itself, and hands out its other streams with `Connector.stream`."""

    name: str

    @property
    def ordered_versions(self) -> bool:
        """Whether a greater version is a newer record (Moneybird's); otherwise versions are
        only compared for equality (a content hash, a local timestamp that can go back)."""
        ...

    @property
    def batch_size(self) -> int: ...

    @property
    def requests(self) -> int: ...

    @property
    def throttled(self) -> int: ...

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing: ...

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]: ...

    def normalize(self, record: Any, raw: RawJSON) -> Any: ...

    def identify(self, record: Any) -> tuple[str | None, str | None]: ...

    def confirm_gone(self, remote_ids: Sequence[str]) -> list[str]:
        """Of the mirrored ids a windowed listing (`Listing.dated`) lacks, those really gone."""
        ...


class Connector(abc.ABC):
    #: the `kind` in the config file
    kind: ClassVar[str]
    #: most ids one `fetch_batch` call may be given
    batch_size: ClassVar[int] = 100
    #: whether a greater version is a newer record. A source without such a version (a content
    #: hash, a local timestamp that goes back at the autumn clock change) says False: then a
    #: different version is a change, and the newer-only write guard is off for it.
    ordered_versions: ClassVar[bool] = True
    #: whether `register_payment` is filled in (write-back)
    writes_payments: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def from_config(
        cls, source: SourceConfig, token: str, limiter: Limiter | None = None
    ) -> Connector:
        """Build the connector for one configured source; `limiter` paces its requests."""

    @staticmethod
    def http_client(
        source: SourceConfig,
        token: str,
        limiter: Limiter | None,
        client: type[C],
        *,
        bearer: bool = True,
        **options: Any,
    ) -> C:
        """The source's HTTP client: its timeout, the token as a Bearer header (unless the API
        wants it elsewhere: `bearer=False`), and its pace: `limiter` (the daemon's, shared in
        Redis) or else an in-process window of `rate_limit`, if any. `options` go to `client`."""
        if limiter is None and source.rate_limit:
            limiter = SlidingWindowLimiter(source.rate_limit, source.rate_window)
        headers = {"Accept": "application/json", "User-Agent": "invoice-sync/0.1"}
        if bearer:
            headers["Authorization"] = f"Bearer {token}"
        return client(
            name=source.name,
            base_url=source.base_url,
            headers=headers,
            limiter=limiter,
            timeout=source.timeout,
            **options,
        )

    def __init__(self, name: str, client: ApiClient) -> None:
        self.name = name
        self.client = client

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self.client.requests

    @property
    def throttled(self) -> int:
        """HTTP 429 answers received so far."""
        return self.client.throttled

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stream(self, kind: str) -> RecordStream:
        """The stream of `kind` records (`invoices` is the connector itself)."""
        if kind == INVOICES:
            return self
        raise ValueError(f"a {self.kind} source has no {kind!r} stream")

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
        """What the source holds now; by default its id/version list. `history` is for a
        connector that lists only what changed since the last run (and completely now and
        then); an ops resync (`sync --full`) hands it no history."""
        return Listing(versions=self.list_versions())

    def list_versions(self) -> Mapping[str, str | None]:
        """Every remote id in scope -> its current version, in one call if the API allows."""
        raise NotImplementedError(f"{type(self).__name__} lists with `listing`")

    def check_batch(self, remote_ids: Sequence[str]) -> None:
        """`fetch_batch` is never given more than `batch_size` ids; a caller that does has a bug."""
        if len(remote_ids) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} ids per fetch, got {len(remote_ids)}")

    @abc.abstractmethod
    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        """The full records for these ids (at most `batch_size`), each with its exact JSON text;
        `listed` holds what a snapshot listing already said of some of them.

        Ids that no longer exist are simply absent: deletions are the engine's business.
        """

    @abc.abstractmethod
    def normalize(self, record: Any, raw: RawJSON) -> Invoice:
        """Turn one raw record into an `Invoice`; raise `ValueError` naming the bad field."""

    def invoices_now(self, remote_ids: Sequence[str]) -> dict[str, Invoice]:
        """These invoices (at most `batch_size`) as the source holds them right now, by remote
        id; those gone are absent. Write-back re-checks an invoice here before it pays it, and
        looks here for a payment whose outcome it does not know."""
        self.check_batch(remote_ids)
        found: dict[str, Invoice] = {}
        for record, raw in self.fetch_batch(remote_ids):
            invoice = self.normalize(record, raw)
            found[invoice.remote_id] = invoice
        return found

    def undo_payment(self, invoice_remote_id: str, payment_remote_id: str) -> None:
        """Delete a payment write-back registered (a person rejected its match afterwards).
        A delete can be sent again safely; one already gone counts as done."""
        raise WriteBackUnsupported(
            f"{self.name}: {self.kind} has no call to delete a payment: undo it there by hand"
        )

    def payment_marker(self, key: str, bank_transaction_id: int) -> str:
        """What the source can keep of a push's idempotency key, as its normalized payments
        show it in `transaction_reference` (by default the key itself)."""
        return key

    def register_payment(self, push: PaymentPush) -> str:
        """Book one payment on one invoice, with `push.marker` where the API keeps a text for
        it; answers the source's id of the new payment. Sent once: through
        `ApiClient.write`, so an unknown outcome raises `UncertainOutcome` instead of a retry."""
        raise WriteBackUnsupported(f"{self.name}: a {self.kind} source cannot register payments")

    def identify(self, record: Any) -> tuple[str | None, str | None]:
        """Best-effort id and version of a record that failed `normalize`, for quarantine."""
        if isinstance(record, dict):
            remote_id, version = record.get("id"), record.get("version")
            return (
                str(remote_id) if remote_id is not None else None,
                str(version)[:100]
                if isinstance(version, int | str) and not isinstance(version, bool)
                else None,
            )
        return None, None

    def confirm_gone(self, remote_ids: Sequence[str]) -> list[str]:
        """A listing that covers everything it could have listed is its own proof: all of them.
        A connector whose listing covers a window of dates asks the source (see Recras)."""
        return list(remote_ids)
