"""The schema comes from the migrations, and the code's idea of the newest one is right."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from store.db import HEAD_REVISION, alembic_config, current_revision, make_engine, upgrade
from store.schema import metadata


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_migrations_create_exactly_the_documented_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == HEAD_REVISION
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_schema_the_code_declares(database_url: str) -> None:
    """Types, nullability, indexes and constraints too: Alembic's own comparison finds nothing."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_every_column_is_documented_in_docs_schema_md() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()
    for table in metadata.sorted_tables:
        section = doc.split(f"## `{table.name}`", 1)[1].split("\n## ", 1)[0]
        for name in table.columns.keys():
            assert f"`{name}`" in section, f"{table.name}.{name} is not documented"


def test_documented_text_types_match_the_columns() -> None:
    """A `varchar(n)` in the docs is a promise to the reporting database; keep it true."""
    from pathlib import Path

    import sqlalchemy as sa

    doc = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()
    for table in metadata.sorted_tables:
        section = doc.split(f"## `{table.name}`", 1)[1].split("\n## ", 1)[0]
        for column in table.columns:
            if type(column.type) not in (sa.String, sa.Text):
                continue
            row = next(
                line
                for line in section.splitlines()
                if line.startswith("|") and f"`{column.name}`" in line.split("|")[1]
            )
            documented = row.split("|")[2]
            if isinstance(column.type, sa.Text):
                assert "text" in documented, f"{table.name}.{column.name} is text"
            else:
                length = getattr(column.type, "length", None)
                assert f"varchar({length})" in documented, (
                    f"{table.name}.{column.name} is varchar({length})"
                )


def test_the_deletion_and_bank_stream_indexes_hold_only_their_rows(database_url: str) -> None:
    """Migration 0013 (Alembic's comparison does not look at an index's WHERE)."""
    import sqlalchemy as sa

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                query = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_%'"
            else:
                query = (
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'"
                )
            definitions = {name: str(sql) for name, sql in connection.execute(sa.text(query))}
    finally:
        engine.dispose()
    wheres = {
        name: definition.split(" WHERE ", 1)[1].strip("() ").upper()
        for name, definition in definitions.items()
        if " WHERE " in definition
    }
    assert wheres == {
        "ix_invoices_deleted_at": "DELETED_AT IS NOT NULL",
        "ix_bank_transactions_deleted_at": "DELETED_AT IS NOT NULL",
        "ix_bank_transactions_source_bank_reference": "SOURCE IS NOT NULL",
    }


def test_a_database_migrated_by_a_newer_version_is_refused_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from workers.cli import cli

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        engine.dispose()
    config = tmp_path / "invoice-sync.toml"
    config.write_text(f'database_url = "{database_url}"\n')

    result = CliRunner().invoke(cli, ["--config", str(config), "status"])

    assert result.exit_code == 1, result.output
    assert "schema revision 0999, newer than this invoice-sync knows" in result.stderr
    assert "Traceback" not in result.output + result.stderr
