"""Texts a listing gathers, kept on disk for the length of a cycle instead of in memory.

A snapshot listing (Recras) reads every invoice and every line of its window and hands each
invoice's exact text to the engine, which keeps those it fetches until their batches run. A
`TextSpool` writes each text once to an unnamed temporary file (the page cache, not the
process) and hands back where it is; only those spans stay in memory.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Container, Iterator, Mapping

from connectors.records import RawJSON

#: where a text lies in its spool: (offset, length in bytes)
Span = tuple[int, int]


class TextSpool:
    """An append-only file of texts; written and read from any thread."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # unlinked at once: gone with the process
        self._lock = threading.Lock()
        self._end = 0
        self._unflushed = False

    def write(self, text: str) -> Span:
        data = text.encode("utf-8", "surrogatepass")  # whatever the text, it comes back whole
        with self._lock:
            self._file.write(data)
            self._unflushed = True
            span = (self._end, len(data))
            self._end += len(data)
        return span

    def read(self, span: Span) -> str:
        if self._unflushed:
            with self._lock:
                self._file.flush()
                self._unflushed = False
        offset, size = span
        return os.pread(self._file.fileno(), size, offset).decode("utf-8", "surrogatepass")

    def close(self) -> None:
        self._file.close()


class SpooledRecords(Mapping[str, RawJSON]):
    """Records' texts by id, in a `TextSpool`: what `Listing.records` hands the engine."""

    def __init__(self, spool: TextSpool) -> None:
        self._spool = spool
        self._at: dict[str, Span] = {}

    def add(self, key: str, text: str) -> None:
        """The text under `key` (a later add of the same key replaces it)."""
        self._at[key] = self._spool.write(text)

    def __getitem__(self, key: str) -> RawJSON:
        return RawJSON(self._spool.read(self._at[key]))

    def __contains__(self, key: object) -> bool:
        return key in self._at

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)

    def pop(self, key: str) -> RawJSON:
        text = self[key]
        del self._at[key]
        return text

    def keep(self, wanted: Container[str]) -> SpooledRecords:
        """Forget every id not in `wanted`; returns this mapping."""
        self._at = {key: span for key, span in self._at.items() if key in wanted}
        return self
