"""Moneybird's id/version list (`GET .../synchronization.json`), read a megabyte at a time.

The list of a large administration is 100,000s of `{"id": .., "version": ..}` objects (49 bytes
each). The answer goes to a temporary file as it arrives (`ApiClient.download`), and its pairs
are handed out in chunks as they are read from there, so that they can go on to the database
(`store.comparison`) without the list ever being held whole, as bytes or as Python objects.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import IO

from connectors.errors import ConnectorError
from connectors.http import decode_json
from connectors.parsing import parse_id
from connectors.versions import ordered_version

_ITEM = re.compile(r'\{\s*"id"\s*:\s*"?(\d+)"?\s*,\s*"version"\s*:\s*(\d+)\s*\}', re.ASCII)
_SLICE = 1 << 20
_CHUNK = 10_000
_SPACE = b" \t\r\n"


class VersionList:
    """The pairs of one answer, in chunks; it can be read more than once.

    A slice of an ASCII array is taken the fast way (one regex) only when the regex accounts
    for every object in it; from the first slice that holds anything unusual on, the pairs come
    from the full JSON decoder with per-item validation, which also names a malformed item.
    """

    def __init__(self, body: IO[bytes], what: str) -> None:
        self._body = body
        self._what = what
        fast, self.digest = _look(body)
        #: the decoded pairs of an answer the fast path cannot take: decoded (or refused) now,
        #: inside the request's retry
        self._pairs = None if fast else decoded(self._whole(), what)

    def __iter__(self) -> Iterator[list[tuple[str, str]]]:
        done = 0
        if self._pairs is None:
            for piece in self._slices():
                pairs = _ITEM.findall(piece.decode("ascii"))
                if len(pairs) != piece.count(b"{"):
                    break
                done += len(pairs)
                yield pairs
            else:
                return
        pairs = self._pairs if self._pairs is not None else decoded(self._whole(), self._what)
        for first in range(done, len(pairs), _CHUNK):
            yield pairs[first : first + _CHUNK]

    def as_dict(self) -> dict[str, str]:
        """Every pair at once (for a caller that wants the mapping, not the stream)."""
        return {remote_id: version for chunk in self for remote_id, version in chunk}

    def _slices(self) -> Iterator[bytes]:
        """The body in pieces of about a megabyte, each ending after a `}`."""
        self._body.seek(0)
        carry = b""
        while block := self._body.read(_SLICE):
            data = carry + block
            cut = data.rfind(b"}") + 1
            carry, piece = data[cut:], data[:cut]
            if piece:
                yield piece
        if carry.strip(_SPACE + b"]"):
            yield carry

    def _whole(self) -> bytes:
        self._body.seek(0)
        return self._body.read()


def decoded(body: bytes, what: str) -> list[tuple[str, str]]:
    """Every pair through the JSON decoder; a malformed list or item is refused by position."""
    listing = decode_json(body, what)
    if not isinstance(listing, list):
        raise ConnectorError(f"{what}: the id/version list is not a JSON array")
    pairs = []
    for position, item in enumerate(listing):
        try:
            pairs.append((parse_id(item.get("id"), "id"), ordered_version(item.get("version"))))
        except (AttributeError, ValueError) as exc:
            raise ConnectorError(
                f"{what}: item {position} of the id/version list is malformed: {exc}"
            ) from None
    return pairs


def _look(body: IO[bytes]) -> tuple[bool, str]:
    """Whether the answer is an ASCII JSON array (the fast path can take it), and the sha256 of
    its bytes (the listing's `digest`), read a megabyte at a time."""
    body.seek(0)
    digest = hashlib.sha256()
    first = last = b""
    ascii_only = True
    while block := body.read(_SLICE):
        digest.update(block)
        ascii_only = ascii_only and block.isascii()
        first = first or block.lstrip(_SPACE)[:1]
        last = block.rstrip(_SPACE)[-1:] or last
    return ascii_only and first == b"[" and last == b"]", digest.hexdigest()


def parse_listing(body: IO[bytes], what: str) -> VersionList:
    """The answer's pairs, read as they are used (see `VersionList`)."""
    return VersionList(body, what)
