"""Remote versions: opaque text, compared only as far as the source allows.

An ordered source (Moneybird) sends an integer that grows with every change: its version is that
integer's decimal text, and a smaller one is older. Any other version (a content hash, a local
timestamp that goes back at the autumn clock change) only says "changed" when it differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

#: ordered versions are compared as 64-bit integers (the database's write guard casts them)
INT64 = 2**63


def ordered_version(value: Any, field: str = "version") -> str:
    """An ordered version as the mirror keeps it: canonical decimal text of a 64-bit integer."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected an integer")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{field}: {value!r} is not an integer")
    if not -INT64 <= value < INT64:
        raise ValueError(f"{field}: {value} is out of range for a 64-bit version")
    return str(value)


def content_version(*parts: bytes | str) -> str:
    """A version for a source without one: a hash of what the source said, so that any
    change is seen and nothing else is."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def older(version: str, stored: str) -> bool:
    """For an ordered source: whether `version` is older than `stored`."""
    return int(version) < int(stored)


def is_change(version: str | None, stored: str, ordered: bool) -> bool:
    """Whether a listed version means the record must be fetched again. `None` is a listing
    that cannot tell (the record's content is only known once fetched)."""
    if version is None:
        return True
    if version == stored:
        return False
    return not ordered or int(version) > int(stored)


def behind(
    planned: Mapping[str, str | None], stored: Mapping[str, str], ordered: bool
) -> list[str]:
    """The planned ids the mirror (`stored`: id -> version) does not hold at the planned
    version: missing, older (different, for a source without ordered versions), or planned
    without a version."""
    return [i for i in planned if i not in stored or is_change(planned[i], stored[i], ordered)]
