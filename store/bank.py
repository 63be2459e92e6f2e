"""Writes and reads of the bank side: `bank_transactions` and the file imports that bring them.

A file's transactions are written in one database transaction, keyed by (account, dedup key) so
that importing a statement twice, or two overlapping statements, never doubles one. On
PostgreSQL the rows stream through COPY into a staging table (constant memory, fast); on SQLite
they are inserted in chunks. Either way nothing of a file is kept if it breaks halfway.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from store.schema import bank_imports, bank_transactions

#: the columns a written transaction carries, in COPY order
COLUMNS = tuple(c.name for c in bank_transactions.columns if c.name != "id")
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class AccountStatus:
    account_iban: str
    transactions: int
    newest_booking_date: dt.date | None
    last_import_at: dt.datetime | None
    last_import_file: str | None


@dataclass(frozen=True, slots=True)
class Written:
    new: int
    present: int


class BankStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start_import(self, file_name: str, sha256: str, when: dt.datetime) -> int:
        with self.engine.begin() as connection:
            return int(
                connection.execute(
                    insert(bank_imports)
                    .values(
                        file_name=file_name,
                        sha256=sha256,
                        status="running",
                        statements=0,
                        transactions_new=0,
                        transactions_present=0,
                        started_at=when,
                    )
                    .returning(bank_imports.c.id)
                ).scalar_one()
            )

    def finish_import(self, import_id: int, when: dt.datetime, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(bank_imports)
                .where(bank_imports.c.id == import_id)
                .values(finished_at=when, **values)
            )

    def get_import(self, import_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(bank_imports).where(bank_imports.c.id == import_id)
            ).one()
        return dict(row._mapping)

    def write(self, import_id: int | None, rows: Iterable[dict[str, Any]]) -> Written:
        """Write every row, or none: returns how many were new and how many already there.

        `rows` may be a generator that raises halfway (a file that breaks): the transaction
        then rolls back and the exception propagates.
        """
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                offered = _copy_and_merge(connection, rows)
            else:
                offered = _insert_chunks(connection, rows)
            new = (
                connection.execute(
                    select(func.count()).where(bank_transactions.c.import_id == import_id)
                ).scalar_one()
                if import_id is not None
                else 0
            )
        return Written(new=int(new), present=offered - int(new))

    def accounts(self) -> list[AccountStatus]:
        """Per account: transactions, the newest booking date and the last file import."""
        with self.engine.connect() as connection:
            totals = connection.execute(
                select(
                    bank_transactions.c.account_iban,
                    func.count(),
                    func.max(bank_transactions.c.booking_date),
                    func.max(bank_transactions.c.import_id),
                ).group_by(bank_transactions.c.account_iban)
            ).all()
            imports = (
                {
                    row.id: row
                    for row in connection.execute(
                        select(
                            bank_imports.c.id, bank_imports.c.file_name, bank_imports.c.finished_at
                        ).where(bank_imports.c.id.in_([t[3] for t in totals if t[3] is not None]))
                    )
                }
                if totals
                else {}
            )
        result = []
        for account, count, newest, last_import in sorted(totals):
            row = imports.get(last_import)
            result.append(
                AccountStatus(
                    account_iban=account,
                    transactions=int(count),
                    newest_booking_date=newest,
                    last_import_at=row.finished_at if row else None,
                    last_import_file=row.file_name if row else None,
                )
            )
        return result


def _copy_and_merge(connection: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """COPY into a temp table dropped at commit, then one INSERT .. ON CONFLICT DO NOTHING."""
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    connection.exec_driver_sql(
        f'CREATE TEMP TABLE "stage_bank" ON COMMIT DROP AS SELECT {names} '
        'FROM "bank_transactions" WITH NO DATA'
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    offered = 0
    with cursor.copy(f'COPY "stage_bank" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[c] for c in COLUMNS])
            offered += 1
    connection.exec_driver_sql(
        f'INSERT INTO "bank_transactions" ({names}) SELECT {names} FROM "stage_bank" '
        'ON CONFLICT ("account_iban", "dedup_key") DO NOTHING'
    )
    return offered


def _insert_chunks(connection: Connection, rows: Iterable[dict[str, Any]]) -> int:
    statement = sqlite.insert(bank_transactions).on_conflict_do_nothing()
    offered = 0
    iterator: Iterator[dict[str, Any]] = iter(rows)
    while chunk := list(itertools.islice(iterator, _CHUNK)):
        connection.execute(statement, chunk)
        offered += len(chunk)
    return offered
