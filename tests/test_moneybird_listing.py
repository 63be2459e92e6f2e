"""Moneybird's id/version list, read the fast way when it has the usual shape and through the
full JSON decoder when it does not (pure logic: the answers are built here, not fetched)."""

from __future__ import annotations

import httpx
import pytest

from connectors.errors import ConnectorError
from connectors.moneybird.config import MoneybirdSource
from connectors.moneybird.listing import parse_listing
from connectors.registry import build_connector


def _read(body: str | bytes) -> dict[str, str]:
    source = MoneybirdSource.model_validate(
        {
            "name": "acme",
            "kind": "moneybird",
            "base_url": "http://127.0.0.1:9/api/v2",
            "administration_id": "123",
            "token_env": "UNUSED_TOKEN",
            "rate_limit": None,
        }
    )
    connector = build_connector(source, "token")
    try:
        content = body.encode() if isinstance(body, str) else body
        listed = parse_listing(httpx.Response(200, content=content), "listing")
        return {remote_id: version for chunk in listed for remote_id, version in chunk}
    finally:
        connector.close()


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
