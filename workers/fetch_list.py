"""The ids a cycle must fetch, with their listed versions, in the order they were planned.

A first cycle plans every invoice the source holds. Held in memory, a million ids would be
75 MB; past a chunk they go to an anonymous temporary file instead, so a cycle's memory does
not grow with the number of invoices it fetches.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import IO

Planned = tuple[str, str | None]

#: pairs held in memory before they go to the file, and pairs per pickle in it
CHUNK = 2_000


class FetchList:
    """Appended to while a cycle is planned, then read (as often as needed) in batches."""

    def __init__(self, chunk: int | None = None) -> None:
        self._chunk = chunk or CHUNK
        self._tail: list[Planned] = []
        self._file: IO[bytes] | None = None
        self._spilled = 0

    def append(self, remote_id: str, version: str | None) -> None:
        self._tail.append((remote_id, version))
        if len(self._tail) >= self._chunk:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="invoice-sync-plan-")
            self._file.seek(0, 2)
            pickle.dump(self._tail, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._spilled += len(self._tail)
            self._tail = []

    def __len__(self) -> int:
        return self._spilled + len(self._tail)

    def __iter__(self) -> Iterator[Planned]:
        for chunk in self._chunks():
            yield from chunk

    def _chunks(self) -> Iterator[list[Planned]]:
        if self._file is not None:
            position, end = 0, self._file.seek(0, 2)
            while position < end:
                self._file.seek(position)  # another reader may have moved it meanwhile
                chunk: list[Planned] = pickle.load(self._file)
                position = self._file.tell()
                yield chunk
        if self._tail:
            yield list(self._tail)

    def ids(self) -> Iterator[str]:
        return (remote_id for remote_id, _version in self)

    def batches(self, size: int) -> Iterator[list[Planned]]:
        """Consecutive batches of at most `size` pairs."""
        batch: list[Planned] = []
        for chunk in self._chunks():
            for planned in chunk:
                batch.append(planned)
                if len(batch) == size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def batch_count(self, size: int) -> int:
        return -(-len(self) // size)

    def close(self) -> None:
        """Give the file back now (it goes at exit anyway, and nothing else ever sees it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tail, self._spilled = [], 0
