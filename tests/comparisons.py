"""Which cycles compared their listing with the mirror (`Mirror.compare`), for the tests of a
listing the previous run found equal."""

from __future__ import annotations

from typing import Any

import pytest

from store.mirror import Mirror


def count_comparisons(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The source of every `Mirror.compare` from now on, in order."""
    calls: list[str] = []
    compare = Mirror.compare

    def counted(self: Mirror, source: str, listing: Any) -> Any:
        calls.append(source)
        return compare(self, source, listing)

    monkeypatch.setattr(Mirror, "compare", counted)
    return calls
