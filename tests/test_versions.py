"""Remote versions are opaque text; only an ordered source's are compared as numbers."""

from __future__ import annotations

import pytest

from connectors.versions import content_version, is_change, ordered_version


def test_an_ordered_version_is_canonical_decimal_text_of_a_64_bit_integer() -> None:
    assert ordered_version(5) == "5"
    assert ordered_version(" 0012 ") == "12"
    with pytest.raises(ValueError, match="version: 9223372036854775808 is out of range"):
        ordered_version(2**63)
    for bad in (True, 1.5, "12a", None):
        with pytest.raises(ValueError, match="version"):
            ordered_version(bad)


def test_ordered_versions_compare_as_numbers_and_others_only_for_equality() -> None:
    assert is_change("10", "9", ordered=True), "text comparison would call 10 older than 9"
    assert not is_change("9", "10", ordered=True), "an older version is not a change"
    assert not is_change("0012", "12", ordered=True)
    assert is_change("9", "10", ordered=False)
    assert not is_change("abc", "abc", ordered=False)
    assert is_change(None, "abc", ordered=False), "a listing that cannot tell means fetch"


def test_a_content_version_sees_every_change_and_only_changes() -> None:
    assert content_version(b"{}", b"[]") == content_version("{}", "[]")
    assert content_version(b"{}", b"[]") != content_version(b"{}[", b"]")
    assert len(content_version(b"x")) == 32
