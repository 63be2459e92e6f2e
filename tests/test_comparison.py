"""A listing compared with the mirror in the database (`store.comparison`), on SQLite and
PostgreSQL: only what differs comes back, and the engine's plan counts the rest unchanged."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.mirror import Mirror, Quarantined, utcnow
from tests.invoices import an_invoice


@pytest.fixture
def mirror(migrated_engine: sa.Engine) -> Mirror:
    """A mirror holding ids 1-5 at version 10; 4 and 5 are deleted; source `other` holds 1."""
    mirror = Mirror(migrated_engine)
    held = [
        an_invoice(remote_id=str(i), remote_version="10", lines=(), payments=())
        for i in range(1, 6)
    ]
    mirror.write_batch("acme", held, [])
    mirror.write_batch("other", held[:1], [])
    mirror.mark_deleted("acme", ["4", "5"], utcnow())
    return mirror


def test_only_what_differs_comes_back(mirror: Mirror) -> None:
    listing: list[list[tuple[str, str | None]]] = [
        [("1", "10"), ("2", "11"), ("4", "10")],  # same; newer; deleted and listed again
        [("6", "1"), ("3", None)],  # new; no version
    ]
    with mirror.compare("acme", listing) as compared:
        found = set(compared.differences())
        assert compared.listed == 5
        assert compared.versions_of(["1", "6", "7"]) == {"1": "10", "6": "1"}

    assert found == {
        ("2", "11", "2", "10", True),
        ("4", "10", "4", "10", False),
        ("6", "1", None, None, None),
        ("3", None, "3", "10", True),
    }, "1 is equal, 5 is deleted and not listed: neither comes back"


def test_every_listed_pair_and_what_vanished_come_back_for_a_full_resync(mirror: Mirror) -> None:
    with mirror.compare("acme", [[("1", "10"), ("6", "1")]]) as compared:
        found = set(compared.differences(everything=True))

    assert found == {
        ("1", "10", "1", "10", True),
        ("6", "1", None, None, None),
        (None, None, "2", "10", True),
        (None, None, "3", "10", True),
    }


def test_an_empty_listing_names_every_live_record_and_leaves_nothing_behind(
    mirror: Mirror,
) -> None:
    for _ in range(2):  # the temporary table is gone after each comparison
        with mirror.compare("acme", []) as compared:
            found = sorted(compared.differences())
            assert compared.listed == 0
        assert [row[2] for row in found] == ["1", "2", "3"]
    assert mirror.live("acme") == 3 and mirror.live("other") == 1


def test_quarantined_ids_are_read_for_their_source(mirror: Mirror) -> None:
    mirror.write_batch("acme", [], [Quarantined("9", "2", "bad date", "{}")])
    assert mirror.quarantined("acme") == {"9"}
    assert mirror.quarantined("other") == frozenset()
