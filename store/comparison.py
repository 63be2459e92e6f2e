"""A listing compared with the mirror inside the database.

The listing's ids and versions go into a temporary table as the connector reads them, and a
join with the mirror returns only the rows that differ (PostgreSQL: one hash FULL JOIN;
SQLite: a LEFT JOIN and a NOT IN, see `_two_ways`). A cycle then never holds the whole
listing or the mirror's versions in Python: an idle cycle's memory no longer grows with the
number of invoices (two dicts of 100,000 strings were 35 MB of its peak), and the database,
which has them indexed, does the comparing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Column, MetaData, Select, Table, Text, and_, null, or_, select
from sqlalchemy.engine import Connection

from store.bulk import among, chunk_size, chunks, copy_rows, select_rows
from store.storable import text_problem

#: (listed id, listed version, mirrored id, mirrored version, mirrored row not deleted); the
#: listed half is None for a mirrored id the listing lacks, the mirrored half for a new id
Difference = tuple[str | None, str | None, str | None, str | None, bool | None]

#: the listing, for the length of one comparison (a temporary table is the session's own)
listed_versions = Table(
    "listed_versions",
    MetaData(),
    Column("remote_id", Text, nullable=False),
    Column("version", Text),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


class ListingComparison:
    """One listing against one source's mirrored rows, on one connection inside one
    transaction (see `Mirror.compare`)."""

    def __init__(self, connection: Connection, id_column: Any, scope: Sequence[Any]) -> None:
        self._connection = connection
        self._postgresql = connection.dialect.name == "postgresql"
        self._id = id_column
        self._scope = list(scope)
        if not self._postgresql:  # SQLite keeps a temporary table until the connection closes
            connection.exec_driver_sql("DROP TABLE IF EXISTS temp.listed_versions")
        listed_versions.create(connection, checkfirst=False)
        #: how many (id, version) pairs the listing held
        self.listed = 0
        #: listed pairs whose id the database cannot hold
        self._set_aside: list[tuple[str, str | None]] = []

    def load(self, chunks_of_pairs: Iterable[Sequence[tuple[str, str | None]]]) -> int:
        """Put the listing into the table as it is read; returns how many pairs it held. An id
        the listing names twice is compared twice (a source that does so has a bug; the
        fetches and the writes are the same either way)."""
        chunks_of_pairs = self._storable(chunks_of_pairs)
        if self._postgresql:
            pairs = itertools.chain.from_iterable(chunks_of_pairs)
            columns = list(listed_versions.c)
            copied = copy_rows(self._connection, listed_versions.name, columns, pairs)
        else:
            copied = 0
            cursor = self._connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                statement = "INSERT INTO temp.listed_versions VALUES (?, ?)"
                for chunk in chunks_of_pairs:
                    cursor.executemany(statement, chunk)
                    copied += len(chunk)
            finally:
                cursor.close()
        self.listed = copied + len(self._set_aside)
        return self.listed

    def _storable(
        self, chunks_of_pairs: Iterable[Sequence[tuple[str, str | None]]]
    ) -> Iterator[Sequence[tuple[str, str | None]]]:
        """The pairs the table can hold. An id the database cannot store (a NUL, a lone
        surrogate) cannot be mirrored either: it is set aside and handed back as new, so that
        its fetch quarantines it by name. A version it cannot store is listed as unknown (the
        record is fetched, and judged, every cycle)."""
        for chunk in chunks_of_pairs:
            text = "".join(i for i, _ in chunk) + "".join(v for _, v in chunk if v is not None)
            if text.isascii() and "\x00" not in text:
                yield chunk
                continue
            kept: list[tuple[str, str | None]] = []
            for remote_id, version in chunk:
                if text_problem(remote_id) is not None:
                    self._set_aside.append((remote_id, version))
                elif version is not None and text_problem(version) is not None:
                    kept.append((remote_id, None))
                else:
                    kept.append((remote_id, version))
            yield kept

    def differences(self, *, everything: bool = False) -> Iterator[Difference]:
        """Every pair whose mirrored row is missing, deleted, or at another version (or that
        has no version), and every live mirrored row the listing lacks; `everything`: every
        listed pair too (a full resync fetches them all)."""
        for remote_id, version in self._set_aside:
            yield remote_id, version, None, None, None
        queries = self._full_join(everything) if self._postgresql else self._two_ways(everything)
        for query in queries:
            for row in select_rows(self._connection, query, convert=False, server_side=True):
                yield row[0], row[1], row[2], row[3], None if row[2] is None else bool(row[4])

    def _differs(self, stored_id: Any, stored: Any) -> Any:
        """A listed pair the mirror does not hold as listed (the stored side joined)."""
        listed = listed_versions.c
        return or_(
            stored_id.is_(None),
            listed.version.is_(None),
            listed.version.is_distinct_from(stored.c.remote_version),
            stored.c.deleted_at.is_not(None),
        )

    def _full_join(self, everything: bool) -> list[Select[Any]]:
        """PostgreSQL: one hash FULL JOIN of the listing and the source's rows."""
        table = self._id.table
        stored = (
            select(
                self._id.label("remote_id"),
                table.c.remote_version.label("remote_version"),
                table.c.deleted_at.label("deleted_at"),
            )
            .where(*self._scope)
            .subquery("stored")
        )
        listed = listed_versions.c
        only_mirrored = and_(listed.remote_id.is_(None), stored.c.deleted_at.is_(None))
        if everything:
            wanted = or_(listed.remote_id.is_not(None), only_mirrored)
        else:
            pair = and_(listed.remote_id.is_not(None), self._differs(stored.c.remote_id, stored))
            wanted = or_(only_mirrored, pair)
        joined = listed_versions.join(stored, stored.c.remote_id == listed.remote_id, full=True)
        columns = (stored.c.remote_id, stored.c.remote_version, stored.c.deleted_at.is_(None))
        query = select(listed.remote_id, listed.version, *columns).select_from(joined)
        return [query.where(wanted)]

    def _two_ways(self, everything: bool) -> list[Select[Any]]:
        """SQLite: its FULL JOIN of a subquery scans the subquery once per listed pair, so the
        listing is joined to the table through the mirror's unique index, and the rows it
        lacks are found with one NOT IN (which SQLite answers from a temporary index)."""
        table, listed = self._id.table, listed_versions.c
        on = and_(self._id == listed.remote_id, *self._scope)
        columns = (self._id, table.c.remote_version, table.c.deleted_at.is_(None))
        pairs = select(listed.remote_id, listed.version, *columns).select_from(
            listed_versions.outerjoin(table, on)
        )
        if not everything:
            pairs = pairs.where(self._differs(self._id, table))
        lacking = select(null(), null(), *columns).where(
            *self._scope,
            table.c.deleted_at.is_(None),
            self._id.not_in(select(listed.remote_id)),
        )
        return [pairs, lacking]

    def versions_of(self, remote_ids: Sequence[str]) -> dict[str, str | None]:
        """The listed version of each of these ids the listing names."""
        found: dict[str, str | None] = {}
        column = listed_versions.c.remote_id
        for chunk in chunks(remote_ids, chunk_size(self._connection)):
            query = select(column, listed_versions.c.version).where(
                among(self._connection, column, chunk)
            )
            found.update(select_rows(self._connection, query, convert=False))
        return found

    def close(self) -> None:
        if not self._postgresql:
            self._connection.exec_driver_sql("DROP TABLE IF EXISTS temp.listed_versions")
