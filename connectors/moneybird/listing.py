"""Moneybird's id/version list (`GET .../synchronization.json`), read a megabyte at a time.

The list of a large administration is 100,000s of `{"id": .., "version": ..}` objects. Its
pairs are handed out in chunks as they are read, so that they can go on to the database
(`store.comparison`) without the whole list ever being held as Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx

from connectors.errors import ConnectorError
from connectors.http import decode_json
from connectors.parsing import parse_id
from connectors.versions import ordered_version

_ITEM = re.compile(r'\{\s*"id"\s*:\s*"?(\d+)"?\s*,\s*"version"\s*:\s*(\d+)\s*\}', re.ASCII)
_SLICE = 1 << 20
_CHUNK = 10_000


class VersionList:
    """The pairs of one answer, in chunks; it can be read more than once.

    A slice of an ASCII array is taken the fast way (one regex) only when the regex accounts for
    every object in it; from the first slice that holds anything unusual on, the pairs come
    from the full JSON decoder with per-item validation, which also names a malformed item.
    """

    def __init__(self, body: bytes, what: str) -> None:
        self._body = body
        self._what = what
        #: the decoded pairs of a body the fast path cannot take
        self._pairs = None if _fast_shaped(body) else decoded(body, what)

    def __iter__(self) -> Iterator[list[tuple[str, str]]]:
        body = self._body
        done = start = 0
        if self._pairs is None:
            while start < len(body):
                end = body.find(b"}", start + _SLICE)
                end = len(body) if end < 0 else end + 1
                piece = body[start:end]
                pairs = _ITEM.findall(piece.decode("ascii"))
                if len(pairs) != piece.count(b"{"):
                    break
                done += len(pairs)
                yield pairs
                start = end
            else:
                return
        pairs = self._pairs if self._pairs is not None else decoded(body, self._what)[done:]
        for first in range(0, len(pairs), _CHUNK):
            yield pairs[first : first + _CHUNK]


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


def _fast_shaped(body: bytes) -> bool:
    return body.isascii() and body.lstrip()[:1] == b"[" and body.rstrip()[-1:] == b"]"


def parse_listing(response: httpx.Response, what: str) -> VersionList:
    """The answer's pairs. An answer the fast path cannot take is decoded here, inside the
    request's retry (a cut-off body is sent for again) and refused here if malformed; the
    rest is read as it is used."""
    return VersionList(response.content, what)
