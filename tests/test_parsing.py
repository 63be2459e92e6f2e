"""Pure logic: money, header and JSON parsing, tax-rate derivation, durations, pacing."""

from __future__ import annotations

import email.utils
import time
from decimal import Decimal

import pytest

from connectors.errors import TransientError
from connectors.http import iter_json_array, parse_wait
from connectors.moneybird.connector import derive_tax_rate
from connectors.parsing import parse_decimal, parse_timestamp
from connectors.ratelimit import SlidingWindowLimiter
from connectors.source import parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("363.0", Decimal("363.0")),
        ("10,95", Decimal("10.95")),
        ("-500.0", Decimal("-500.0")),
        (" 7 ", Decimal("7")),
        ("0.1", Decimal("0.1")),
        (Decimal("1.10"), Decimal("1.10")),
        (12, Decimal(12)),
        ("1.", Decimal("1")),
        (".5", Decimal("0.5")),
    ],
)
def test_money_parses_exactly(value: object, expected: Decimal) -> None:
    parsed = parse_decimal(value, "price")
    assert parsed == expected and str(parsed) == str(expected)


@pytest.mark.parametrize(
    "value", ["12x.5", "", "1,000.00", "NaN", "Infinity", True, None, [], "1e5"]
)
def test_bad_money_names_the_field(value: object) -> None:
    with pytest.raises(ValueError, match="total_paid"):
        parse_decimal(value, "total_paid")


def test_json_numbers_stay_exact_and_raw_text_is_kept() -> None:
    items = list(iter_json_array(b' [ {"a": 0.1, "b": "x"} , {"a": 12.50}]', "test"))
    assert items[0][0]["a"] == Decimal("0.1")
    assert items[1][0]["a"] == Decimal("12.50")
    assert items[1][1] == '{"a": 12.50}'
    assert list(iter_json_array(b"[]", "test")) == []


@pytest.mark.parametrize("body", [b'[{"a": 1}, {"a"', b"<html>", b'[{"a": 1}', b""])
def test_truncated_json_is_a_transient_error(body: bytes) -> None:
    with pytest.raises(TransientError, match="not a valid JSON array"):
        iter_json_array(body, "test")


def test_wait_headers_in_all_three_spellings() -> None:
    now = 1_800_000_000.0
    assert parse_wait("7", now=now) == 7
    assert parse_wait(str(int(now) + 30), now=now) == 30
    assert parse_wait(email.utils.formatdate(now + 60, usegmt=True), now=now) == pytest.approx(60)
    assert parse_wait("garbage", now=now) is None
    assert parse_wait(None) is None
    assert parse_wait(str(int(now) - 5), now=now) == 0


@pytest.mark.parametrize(
    ("taxable", "tax", "rate"),
    [
        ("300.0", "63.0", "21"),
        ("10.95", "2.30", "21"),
        ("100", "9", "9"),
        ("0", "0", "0"),
        ("1000", "55", "5.5"),
        ("-300", "-63", "21"),
        ("0.05", "0.01", None),
        ("100", "0", "0"),
    ],
)
def test_tax_rate_is_derived_only_when_unambiguous(
    taxable: str, tax: str, rate: str | None
) -> None:
    derived = derive_tax_rate(Decimal(taxable), Decimal(tax))
    assert derived == (Decimal(rate) if rate is not None else None)


def test_timestamps_become_aware_utc() -> None:
    parsed = parse_timestamp("2026-08-21T15:50:19.001+02:00", "updated_at")
    assert parsed is not None and parsed.utcoffset() is not None
    assert parsed.isoformat() == "2026-08-21T13:50:19.001000+00:00"
    utc = parse_timestamp("2026-08-21T13:50:19Z", "x")
    assert utc is not None and utc.tzinfo is not None


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("30s", 30), ("1h30m", 5400), ("90", 90), (45, 45)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_sliding_window_never_exceeds_the_limit() -> None:
    limiter = SlidingWindowLimiter(5, 0.3, margin=0)
    stamps = []
    for _ in range(12):
        limiter.acquire()
        stamps.append(time.monotonic())
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 0.3 - 1e-3


def test_compact_bodies_take_the_fast_path_without_losing_a_digit() -> None:
    fast = list(iter_json_array(b'[{"a":0.1,"id":"496081512464123498"},{"a":12.5}]', "test"))
    assert fast[0][1] == '{"a":0.1,"id":"496081512464123498"}'
    assert parse_decimal(fast[0][0]["a"], "a") == Decimal("0.1")
    assert fast[0][0]["id"] == "496081512464123498"

    trailing_zero = list(iter_json_array(b'[{"a":12.50}]', "test"))
    assert trailing_zero[0][0]["a"] == Decimal("12.50") and str(trailing_zero[0][0]["a"]) == "12.50"
    assert trailing_zero[0][1] == '{"a":12.50}'


def _listing(body: bytes) -> dict[str, str]:
    import io

    from connectors.moneybird.listing import parse_listing

    return parse_listing(io.BytesIO(body), "listing").as_dict()


def test_the_id_version_list_is_read_in_any_spelling() -> None:
    assert _listing(b'[{"id":"1","version":5},{"id":"2","version":7}]') == {"1": "5", "2": "7"}
    assert _listing(b'[{"version": 5, "id": 1}, {"id": "2", "version": "7"}]') == {
        "1": "5",
        "2": "7",
    }
    assert _listing(b"[]") == {}


@pytest.mark.parametrize(
    "body", [b'[{"id":"1"}]', b'{"id":"1","version":2}', b'[{"id":"1","version":true}]']
)
def test_a_malformed_id_version_list_fails_the_cycle_clearly(body: bytes) -> None:
    from connectors.errors import ConnectorError

    with pytest.raises(ConnectorError, match="listing"):
        _listing(body)
