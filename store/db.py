"""Engines and migrations: the database URL in, a migrated, tuned engine out."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
#: The newest migration; a test checks it against Alembic's own view of the scripts.
HEAD_REVISION = "0014"
_LOCK_KEY = 0x1A5C_0001  # pg_advisory_lock key for migrations


class SchemaTooNew(Exception):
    """The database was migrated by a newer invoice-sync than this one."""


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, the driver we install, not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No server-side prepared statements: a generic plan made while a table was still empty
    # (the first sync) keeps seq-scanning it forever after, which made bulk loads quadratic.
    return create_engine(
        url, pool_pre_ping=True, connect_args={"prepare_threshold": None}, **kwargs
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets `status` read while a sync writes; foreign keys are off by default in SQLite."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: Engine) -> str | None:
    """One small query: every command asks this on start, and almost always the answer is head."""
    with engine.connect() as connection:
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):  # no such table: a new database
            connection.rollback()
            return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations; safe to call on every start, from many processes at once.

    At head it only reads `alembic_version`, so the routine start of every cycle does not
    import Alembic (10 MB and a tenth of a second). Otherwise one process migrates under a
    lock (an advisory lock in PostgreSQL, a lock file beside a SQLite file) while the others wait.
    """
    current = current_revision(engine)
    if revision == "head" and current == HEAD_REVISION:
        return
    if current is not None and current.isdigit() and current > HEAD_REVISION:
        raise SchemaTooNew(
            f"the database is at schema revision {current}, newer than this invoice-sync knows "
            f"({HEAD_REVISION}): a newer version migrated it. Run that version, or restore a "
            "backup taken before it"
        )
    from alembic import command

    with _migration_lock(engine):
        if revision == "head" and current_revision(engine) == HEAD_REVISION:
            return
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
