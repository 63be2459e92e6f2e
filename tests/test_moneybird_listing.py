"""Moneybird's id/version list, read the fast way when it has the usual shape and through the
full JSON decoder when it does not (pure logic: the answers are built here, not fetched)."""

from __future__ import annotations

import io
import json

import pytest

from connectors.errors import ConnectorError
from connectors.moneybird.listing import parse_listing


def _read(body: str | bytes) -> dict[str, str]:
    content = body.encode() if isinstance(body, str) else body
    return parse_listing(io.BytesIO(content), "listing").as_dict()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[{"id":"1","version":5},{"id":"22","version":6}]', {"1": "5", "22": "6"}),
        ('[ {"id": 1, "version": 5} ]\n', {"1": "5"}),  # spaces, a numeric id
        ("[]", {}),
        # shapes the fast path does not know: an extra key, non-ASCII text, another order
        ('[{"id":"1","version":5,"note":"x"}]', {"1": "5"}),
        ('[{"id":"1","version":5},{"id":"2","version":7,"n":"é"}]', {"1": "5", "2": "7"}),
        ('[{"version":5,"id":"1"}]', {"1": "5"}),
        # an id in other digits is no number, but still an id (the full decoder's reading)
        ('[{"id":"\u0661","version":5}]', {"\u0661": "5"}),
        ('[{"id":"1","version":5}', None),  # cut off
        ('{"id":"1","version":5}', None),  # not a list
    ],
)
def test_the_listing_is_read_exactly_or_refused(body: str, expected: dict[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(ConnectorError):
            _read(body)
    else:
        assert _read(body) == expected


def _streamed(body: bytes) -> list[list[tuple[str, str]]]:
    return list(parse_listing(io.BytesIO(body), "listing"))


def test_a_large_listing_is_handed_out_in_slices_with_the_same_pairs_as_the_decoder() -> None:
    items = [{"id": str(10**17 + i), "version": 1_700_000_000 + i} for i in range(60_000)]
    body = json.dumps(items, separators=(",", ":")).encode()
    chunks = _streamed(body)
    pairs = [pair for chunk in chunks for pair in chunk]

    assert len(body) > 2 << 20 and len(chunks) >= 3, "read a megabyte at a time"
    assert pairs == [(item["id"], str(item["version"])) for item in items]


def test_an_unusual_item_after_the_first_slice_switches_to_the_decoder_without_a_gap() -> None:
    items: list[dict[str, object]] = [{"id": str(i), "version": i} for i in range(1, 150_000)]
    items[120_000] = {"version": 5, "id": "120001"}  # another key order, in a later slice
    body = json.dumps(items, separators=(",", ":")).encode()
    pairs = [pair for chunk in _streamed(body) for pair in chunk]

    assert len(pairs) == len(items)
    assert pairs[0] == ("1", "1") and pairs[120_000] == ("120001", "5")
    assert pairs == [(str(item["id"]), str(item["version"])) for item in items]


def test_a_malformed_item_in_a_later_slice_is_named_by_position() -> None:
    items: list[dict[str, object]] = [{"id": str(i), "version": i} for i in range(1, 150_000)]
    items[130_000] = {"id": "130001", "version": "soon"}
    body = json.dumps(items, separators=(",", ":")).encode()

    with pytest.raises(ConnectorError, match="item 130000 of the id/version list"):
        _streamed(body)
