"""`invoice-sync`: the ops command line.

Exit codes: 0 fine, 1 a source failed (or `status --check` found a stale source), 2 a config
or usage error, which is always one line naming the file, the source and the key.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from store.runs import RUN_COUNTERS
from workers.config import AppConfig, ConfigError, load_config
from workers.engine import CycleResult
from workers.logs import configure

SUMMARY_COLUMNS = (*RUN_COUNTERS, "seconds")


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def config(self) -> AppConfig:
        return load_config(self.config_path)


def _fail_config(exc: ConfigError) -> None:
    click.echo(f"invoice-sync: config error: {exc}", err=True)
    sys.exit(2)


def config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--config` is accepted before or after the subcommand name."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.ensure_object(Context).config_path = value

    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=remember,
        help="Config file (default: $INVOICE_SYNC_CONFIG, else ./invoice-sync.toml).",
    )(func)


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $INVOICE_SYNC_CONFIG, else ./invoice-sync.toml).",
)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING, ERROR.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """Mirror invoices, lines and payments from invoicing APIs into a local database."""
    ctx.obj = Context(config_path)
    configure(level=log_level)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@config_option
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Apply all pending Alembic migrations."""
    from workers.app import App

    try:
        app = App.open(obj.config())
    except ConfigError as exc:
        _fail_config(exc)
    app.close()
    click.echo("database is at the latest schema revision")


@cli.command()
@config_option
@click.option(
    "--inline", is_flag=True, help="Run the cycle in this process (no Redis, no workers)."
)
@click.option(
    "--source", "sources", multiple=True, metavar="NAME", help="Only this source (repeatable)."
)
@click.option(
    "--full", is_flag=True, help="Ignore stored versions and refetch everything (resync)."
)
@click.pass_obj
def sync(obj: Context, inline: bool, sources: tuple[str, ...], full: bool) -> None:
    """Run one sync cycle per source and print a summary."""
    from workers.app import App

    if not inline:
        click.echo(
            "invoice-sync: queueing cycles for the daemon is not available yet; "
            "use `invoice-sync sync --inline`",
            err=True,
        )
        sys.exit(2)
    try:
        config = obj.config()
        selected = config.select(sources)
        for source in selected:
            config.token(source)
        app = App.open(config)
    except ConfigError as exc:
        _fail_config(exc)
    results = []
    try:
        for source in selected:
            try:
                results.append(_sync_with_progress(app, source, full))
            except ConfigError as exc:
                _fail_config(exc)
    finally:
        app.close()
    click.echo(format_summary(results))
    sys.exit(1 if any(r.status != "ok" for r in results) else 0)


def _sync_with_progress(app: Any, source: Any, full: bool) -> CycleResult:
    if not sys.stderr.isatty():
        return app.sync_inline(source, full=full)
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total:
            bar = click.progressbar(length=total, label=f"{source.name}: fetching", file=sys.stderr)
            bar.__enter__()
        if bar is not None:
            bar.update(done - bar.pos)

    try:
        return app.sync_inline(source, full=full, on_progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def format_summary(results: list[CycleResult]) -> str:
    headers = ("source", *SUMMARY_COLUMNS, "status")
    rows = [(r.source, *(str(getattr(r, c)) for c in SUMMARY_COLUMNS), r.status) for r in results]
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"{r.source}: {r.error}" for r in results if r.error]
    return "\n".join(lines)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: Context, as_json: bool) -> None:
    """Per source: last successful sync, mirrored/deleted/quarantined counts, last error."""
    from workers.app import App

    try:
        config = obj.config()
        app = App.open(config)
    except ConfigError as exc:
        _fail_config(exc)
    try:
        statuses = app.runs.status([s.name for s in config.sources])
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps({"sources": [s.as_dict() for s in statuses]}, indent=2))
        return
    for s in statuses:
        last = s.last_success_at.isoformat(timespec="seconds") if s.last_success_at else "never"
        click.echo(
            f"{s.source}: last successful sync {last}; mirrored {s.mirrored}, "
            f"deleted {s.deleted}, quarantined {s.quarantined}"
        )
        if s.last_error:
            click.echo(f"  last error: {s.last_error}")


@cli.command()
@click.option("--invoices", default=300, show_default=True, help="Invoices the simulator seeds.")
@click.option(
    "--database",
    default="invoice-sync-demo.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="SQLite file to mirror into (recreated).",
)
def demo(invoices: int, database: str) -> None:
    """Sync the built-in Moneybird simulator into SQLite, change it, sync again."""
    from workers.demo import run_demo

    logging.getLogger().setLevel(logging.WARNING)
    run_demo(invoices=invoices, database=database, echo=click.echo)


def main() -> None:
    cli(prog_name="invoice-sync")
