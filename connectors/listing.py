"""What a connector's listing says, and what the mirror tells it of earlier listings.

Kept apart from `connectors.base` (which brings the HTTP stack) because the store reads and
writes listing history too.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.records import RawJSON
from connectors.spool import SpooledRecords

#: (remote id, version) pairs of a listing, a chunk at a time
Pairs = Sequence[tuple[str, str | None]]

#: no records in hand: `fetch_batch` fetches every id
NOTHING_LISTED: Mapping[str, RawJSON] = {}


@dataclass(frozen=True, slots=True)
class ListingHistory:
    """What the mirror knows of earlier listings, for a connector that lists changes since a
    moment and completely now and then (the times are when those runs started, UTC)."""

    #: the last successful run: its listing saw every change made before it started
    last_success: dt.datetime | None = None
    #: the last successful run whose listing was complete (deletions seen up to then)
    last_complete: dt.datetime | None = None
    #: the run just before this one, when it ended `ok` and left the mirror equal to its
    #: listing: that listing's digest (`Listing.digest`) and how many records it listed
    equal_to: tuple[str, int] | None = None


#: a first cycle, or one for a connector that always lists completely
NO_HISTORY = ListingHistory()


@dataclass(slots=True)
class Listing:
    """What one listing of a source says."""

    #: remote id -> version (see `connectors.versions`); None: the listing cannot tell whether
    #: the record changed, so it is fetched every cycle
    versions: Mapping[str, str | None] = field(default_factory=dict)
    #: a snapshot's complete records (exact JSON text) by id, handed to `fetch_batch`
    records: dict[str, RawJSON] | SpooledRecords = field(default_factory=dict)
    #: whether an id the listing lacks is gone; False for a modified-since listing
    complete: bool = True
    #: the invoice dates the listing covers (first, last), when it covers a window: a mirrored
    #: invoice dated outside it left the window and is not judged by this listing
    dated: tuple[dt.date, dt.date] | None = None
    #: the same pairs in chunks, read once, for a listing too large to hold as a mapping (the
    #: engine compares them with the mirror in the database as they come); replaces `versions`
    streamed: Iterable[Pairs] | None = None
    #: sha256 of the listing's answer, for a complete listing whose bytes say everything it
    #: says: the same digest again means the same listing (`ListingHistory.equal_to`)
    digest: str | None = None

    def chunks(self, size: int = 10_000) -> Iterator[Pairs]:
        """The listing's (id, version) pairs, `size` at a time for a mapping."""
        if self.streamed is not None:
            yield from self.streamed
            return
        items = iter(self.versions.items())
        while chunk := list(itertools.islice(items, size)):
            yield chunk
