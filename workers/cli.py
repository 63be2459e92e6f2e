"""`invoice-sync`: the ops command line.

Exit codes: 0 fine, 1 a source failed (or `status --check` found a stale source), 2 a config
or usage error, which is always one line naming the file, the source and the key.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connectors.streams import INVOICES
from workers.logs import configure

if TYPE_CHECKING:  # each command imports what it needs, so `--help` and `status` start fast
    from workers.config import AppConfig
    from workers.engine import CycleResult


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def config(self) -> AppConfig:
        from workers.config import load_config

        return load_config(self.config_path)


class _Cli(click.Group):
    """Every command's config problem ends the same way: one line on stderr, exit code 2; a
    database that cannot be reached or used, one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from store.db import SchemaTooNew
            from workers.config import ConfigError

            if isinstance(exc, ConfigError):
                click.echo(f"invoice-sync: config error: {exc}", err=True)
                sys.exit(2)
            if isinstance(exc, SchemaTooNew):
                click.echo(f"invoice-sync: database error: {exc}", err=True)
                sys.exit(1)
            if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "psycopg", "sqlite3"):
                raise
            from workers.logs import describe_error

            click.echo(f"invoice-sync: database error: {describe_error(exc)}", err=True)
            sys.exit(1)


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


@click.group(cls=_Cli)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $INVOICE_SYNC_CONFIG, else ./invoice-sync.toml).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log lines at this level and above go to stderr.",
)
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

    App.open(obj.config()).close()
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
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="With --inline: mark deleted whatever the listing lacks, past the mass-deletion guard.",
)
@click.option("--wait", is_flag=True, help="Without --inline: follow the cycles to their end.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="With --inline: worker processes that fetch and write the batches of a cycle with "
    "5,000 or more invoices to fetch, on PostgreSQL (default: one per core, up to 4; 1 keeps "
    "them in this process).",
)
@click.option(
    "--timeout",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds --wait waits, or --inline runs, at most.",
)
@click.pass_obj
def sync(
    obj: Context,
    inline: bool,
    sources: tuple[str, ...],
    full: bool,
    allow_mass_delete: bool,
    wait: bool,
    processes: int | None,
    timeout: float,
) -> None:
    """Run one sync cycle per source (in the daemon, or here with --inline); print a summary."""
    import time

    from workers.app import App
    from workers.batch_processes import default_count

    if allow_mass_delete and not inline:
        raise click.UsageError("--allow-mass-delete needs --inline (an ops decision, made here)")
    if processes is not None and not inline:
        raise click.UsageError("--processes needs --inline (the daemon has its own workers)")
    if not inline:
        _enqueue(obj, sources, full, wait, timeout)
        return
    deadline = time.monotonic() + timeout
    config = obj.config()
    selected = config.select(sources)
    for source in selected:
        config.token(source)  # every token is checked before any source syncs
    app = App.open(config)
    results = []
    try:
        for source in selected:
            for stream in source.streams:
                remaining = max(0.0, deadline - time.monotonic())
                options = {
                    "full": full,
                    "allow_mass_delete": allow_mass_delete,
                    "timeout": remaining,
                    "stream": stream,
                    "processes": processes or default_count(),
                }
                results.append(_sync_with_progress(app, source, **options))
    finally:
        app.close()
    click.echo(format_summary(results))
    sys.exit(1 if any(r.status != "ok" for r in results) else 0)


def _enqueue(
    obj: Context, sources: tuple[str, ...], full: bool, wait: bool, timeout: float
) -> None:
    """Put one cycle message per source on the queue for the running workers."""
    import time

    import redis

    from workers import broker
    from workers.app import App
    from workers.engine import CycleResult

    config = obj.config()
    selected = config.select(sources)
    app = App.open(config)
    broker.configure(config)
    from workers.actors import sync_cycle

    targets = [(source.name, stream) for source in selected for stream in source.streams]
    try:
        baseline: dict[tuple[str, str], tuple[int, int | None]] = {}
        for name, stream in targets:
            running = app.runs.running(name, stream)
            absorbing = running is not None and (bool(running["full_resync"]) or not full)
            baseline[(name, stream)] = (
                app.runs.latest_id(name, stream),
                running["id"] if running and absorbing else None,
            )
        try:
            alive = broker.workers_alive(config)
            for name, stream in targets:
                message = sync_cycle.send(name, full, stream)
                label = _label(name, stream)
                click.echo(f"{label}: cycle enqueued, message {message.message_id}")
                if full and baseline[(name, stream)][1] is None and app.runs.running(name, stream):
                    click.echo(
                        f"{label}: a normal cycle is running; the full resync runs when it ends"
                    )
        except redis.RedisError as exc:
            click.echo(
                f"invoice-sync: cannot enqueue on Redis at {_redacted_url(config.redis_url)}: "
                f"{type(exc).__name__}; is it running? (`sync --inline` needs no Redis)",
                err=True,
            )
            sys.exit(1)
        if not alive:
            click.echo(
                "invoice-sync: warning: no worker is running (none has sent a heartbeat to "
                f"Redis in the last {broker.HEARTBEAT_TTL} s), so the message waits in the "
                "queue until one starts: start the daemon's workers with `invoice-sync worker` "
                "(see the Procfile), or run `invoice-sync sync --inline` instead",
                err=True,
            )
            if not wait:
                sys.exit(1)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        results: dict[tuple[str, str], CycleResult] = {}
        while len(results) < len(targets) and time.monotonic() < deadline:
            for name, stream in targets:
                if (name, stream) not in results:
                    run = app.runs.followed_run(
                        name, *baseline[(name, stream)], full=full, stream=stream
                    )
                    if run is not None:
                        results[(name, stream)] = CycleResult.from_run(run)
            time.sleep(0.2)
    finally:
        app.close()
    missing = [_label(*target) for target in targets if target not in results]
    click.echo(format_summary([results[t] for t in targets if t in results]))
    if missing:
        click.echo(f"still running after {timeout:g}s: {', '.join(missing)}", err=True)
    sys.exit(1 if missing or any(r.status != "ok" for r in results.values()) else 0)


def _label(source: str, stream: str) -> str:
    """How a source's stream is named in output: the source alone for its invoices."""
    return source if stream == INVOICES else f"{source} ({stream})"


def _redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _sync_with_progress(app: Any, source: Any, **options: Any) -> CycleResult:
    if not sys.stderr.isatty():
        return app.sync_inline(source, **options)
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total:
            bar = click.progressbar(
                length=total, label=f"{source.name}: fetching {options['stream']}", file=sys.stderr
            )
            bar.__enter__()
        if bar is not None:
            bar.update(done - bar.pos)

    try:
        return app.sync_inline(source, on_progress=progress, **options)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def format_summary(results: list[CycleResult]) -> str:
    from store.runs import RUN_COUNTERS

    columns = (*RUN_COUNTERS, "seconds")
    headers = ("source", "stream", *columns, "status")
    rows = [(r.source, r.stream, *(str(getattr(r, c)) for c in columns), r.status) for r in results]
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"{_label(r.source, r.stream)}: {r.error}" for r in results if r.error]
    return "\n".join(lines)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when a source's last success is older than 3 intervals, its last cycle was "
    "blocked, or the last reconciliation failed.",
)
@click.pass_obj
def status(obj: Context, as_json: bool, check: bool) -> None:
    """Per source: last success and its age, counts, running/queued cycles, last error."""
    import datetime as dt

    from workers.app import App

    config = obj.config()
    app = App.open(config)
    try:
        statuses = app.runs.status([s.name for s in config.sources])
        running = {s.name: app.runs.running(s.name) is not None for s in config.sources}
        pending = {s.name: app.runs.pending_full(s.name) is not None for s in config.sources}
        accounts = app.bank.accounts()
        from store.pushes import STATUSES, PushStore
        from store.review import summary

        reconciliation = summary(app.engine)
        push_counts = PushStore(app.engine).counts()
        extra_streams = {
            s.name: {
                stream: (
                    app.runs.last_success(s.name, stream),
                    app.runs.last_status(s.name, stream),
                )
                for stream in s.streams[1:]
            }
            for s in config.sources
        }
    finally:
        app.close()
    queue, queued, workers, redis_error = _queue_state(config)
    now = dt.datetime.now(dt.UTC)
    report = []
    failing: dict[str, list[str]] = {}
    for source, s in zip(config.sources, statuses, strict=True):
        age, stale, blocked = _health(now, s.last_success_at, s.last_status, source.interval)
        streams: dict[str, dict[str, Any]] = {}
        for stream, (success, last_status) in extra_streams[source.name].items():
            _age, stream_stale, stream_blocked = _health(now, success, last_status, source.interval)
            streams[stream] = {
                "last_success_at": _iso(success),
                "last_status": last_status,
                "stale": stream_stale,
                "blocked": stream_blocked,
            }
        for stream, flagged in ((INVOICES, {"stale": stale, "blocked": blocked}), *streams.items()):
            for flag in ("stale", "blocked"):
                if flagged[flag]:
                    failing.setdefault(flag, []).append(_label(source.name, stream))
        report.append(
            {
                **s.as_dict(),
                "last_success_age_seconds": age,
                "stale": stale,
                "blocked": blocked,
                "running": running[source.name],
                "full_resync_pending": pending[source.name],
                "queued_messages": queued.get(source.name, 0) if queued is not None else None,
                "streams": streams,
                "payment_pushes": {
                    "write_back": source.write_back,
                    **{k: push_counts.get(source.name, {}).get(k, 0) for k in STATUSES},
                },
            }
        )
    if as_json:
        body = {
            "sources": report,
            "bank_accounts": [
                {
                    "account_iban": a.account_iban,
                    "transactions": a.transactions,
                    "newest_booking_date": _iso(a.newest_booking_date),
                    "last_import_at": _iso(a.last_import_at),
                    "last_import_file": a.last_import_file,
                }
                for a in accounts
            ],
            "reconciliation": {
                "last_run_at": _iso(reconciliation.last_run_at),
                "last_status": reconciliation.last_status,
                "last_error": reconciliation.last_error,
                "to_review": reconciliation.to_review,
                "invoices": reconciliation.invoices,
                "transactions": reconciliation.transactions,
            },
            "queue": queue,
            "workers_alive": workers,
            "redis_error": redis_error,
        }
        click.echo(json.dumps(body, indent=2))
    else:
        for r in report:
            last = r["last_success_at"] or "never"
            ago = f" ({r['last_success_age_seconds']:.0f}s ago)" if r["last_success_at"] else ""
            click.echo(
                f"{r['source']}: last successful sync {last}{ago}; mirrored {r['mirrored']}, "
                f"deleted {r['deleted']}, quarantined {r['quarantined']}"
            )
            activity = "running" if r["running"] else "idle"
            if r["full_resync_pending"]:
                activity += ", a full resync waits for the running cycle"
            if r["queued_messages"]:
                activity += f", {r['queued_messages']} message(s) queued"
            click.echo(f"  {activity}{_flags(r)}")
            if r["last_error"]:
                click.echo(f"  last error: {r['last_error']}")
            for stream, info in r["streams"].items():
                click.echo(
                    f"  {stream}: last successful sync {info['last_success_at'] or 'never'}, "
                    f"last status {info['last_status'] or '-'}{_flags(info)}"
                )
            pushes = r["payment_pushes"]
            if pushes["write_back"] != "off" or any(pushes[k] for k in STATUSES):
                counts = ", ".join(f"{k} {pushes[k]}" for k in STATUSES if k != "cancelled")
                click.echo(
                    f"  write-back ({pushes['write_back']}): payments {counts}"
                    + (" (`push-payments` says why they failed)" if pushes["failed"] else "")
                )
        for a in accounts:
            last = (
                f"last import {a.last_import_at.isoformat()} ({a.last_import_file})"
                if a.last_import_at
                else "no file import"
            )
            click.echo(
                f"bank {a.account_iban}: {a.transactions} transactions, newest booked "
                f"{a.newest_booking_date}; {last}"
            )
        if reconciliation.last_status is not None:
            click.echo(
                f"reconciliation: last run {_iso(reconciliation.last_run_at)}, "
                f"{reconciliation.last_status}; {reconciliation.to_review} transaction(s) to "
                "review (`invoice-sync review`)"
            )
            if reconciliation.last_status == "failed":
                click.echo(f"  last error: {reconciliation.last_error}")
        if queue is not None:
            click.echo(
                f"queue: {queue['ready']} ready, {queue['delayed']} delayed; "
                f"workers alive: {workers}"
            )
        else:
            click.echo(f"queue: unknown ({redis_error})")
    if reconciliation.last_status == "failed":
        failing.setdefault("failed", []).append("reconciliation")
    if check and failing:
        for flag, names in failing.items():
            click.echo(f"{flag}: {', '.join(names)}", err=True)
        sys.exit(1)


def _health(
    now: Any, last_success: Any, last_status: str | None, interval: float
) -> tuple[float | None, bool, bool]:
    """(age in seconds, stale, blocked) of one stream: stale when its last success is older
    than 3 intervals (or never was), blocked when the mass-deletion guard stopped its last
    cycle."""
    age = (now - last_success).total_seconds() if last_success else None
    stale = age is None or age > 3 * interval
    return (round(age, 1) if age is not None else None), stale, last_status == "blocked"


def _flags(info: dict[str, Any]) -> str:
    """`; BLOCKED; STALE` as the text output shows a stream's trouble."""
    return "".join(f"; {flag.upper()}" for flag in ("blocked", "stale") if info[flag])


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _queue_state(
    config: AppConfig,
) -> tuple[dict[str, int] | None, dict[str, int] | None, int | None, str | None]:
    """Queue depth and live workers from Redis; status still answers (from the database)
    when Redis is down."""
    import redis

    from workers import broker

    try:
        return (
            broker.queue_depth(config),
            broker.queued_sources(config),
            broker.workers_alive(config),
            None,
        )
    except redis.RedisError as exc:
        return None, None, None, f"Redis unavailable: {type(exc).__name__}"


@cli.command("import-bank")
@config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--account",
    metavar="IBAN",
    help="The account, for files that do not name it as an IBAN (some CSV and older MT940).",
)
@click.pass_obj
def import_bank(obj: Context, files: tuple[Path, ...], account: str | None) -> None:
    """Import bank statement files (camt.053, MT940, ING/Rabobank CSV): one line per file."""
    from workers.app import App
    from workers.bank_import import AccountError, import_bank_file, normalize_account

    try:
        iban = normalize_account(account) if account else None
    except AccountError as exc:
        raise click.BadParameter(str(exc), param_hint="--account") from None
    app = App.open(obj.config())
    try:
        results = [import_bank_file(app.bank, path, iban) for path in files]
    finally:
        app.close()
    for result in results:
        click.echo(result.line())
    sys.exit(1 if any(r.status != "ok" for r in results) else 0)


@cli.command()
@config_option
@click.option("--inline", is_flag=True, help="Run here and now, not in the daemon's workers.")
@click.option(
    "--full",
    is_flag=True,
    help="Look at every transaction again and redo the engine's own matches "
    "(a person's decisions stay).",
)
@click.pass_obj
def reconcile(obj: Context, inline: bool, full: bool) -> None:
    """Match bank transactions to invoices; print counts per rule and per status."""
    config = obj.config()
    if not inline:
        _enqueue_reconcile(config, full)
        return
    from workers.app import App
    from workers.reconciliation.engine import reconcile as run

    app = App.open(config)
    try:
        result = run(app.engine, full=full)
        click.echo(format_reconciliation(app, result))
    finally:
        app.close()


def _enqueue_reconcile(config: AppConfig, full: bool) -> None:
    import redis

    from workers import broker

    broker.configure(config)
    from workers.actors import reconcile_run

    try:
        message = reconcile_run.send(full)
        alive = broker.workers_alive(config)
    except redis.RedisError as exc:
        click.echo(
            f"invoice-sync: cannot enqueue on Redis at {_redacted_url(config.redis_url)}: "
            f"{type(exc).__name__}; is it running? (`reconcile --inline` needs no Redis)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"reconciliation enqueued, message {message.message_id}")
    if not alive:
        click.echo(
            "invoice-sync: warning: no worker is running, so the message waits in the queue; "
            "start `invoice-sync worker`, or run `invoice-sync reconcile --inline`",
            err=True,
        )
        sys.exit(1)


def format_reconciliation(app: Any, result: Any) -> str:
    from store.review import status_counts

    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "none"

    if result.status == "unchanged":
        head = f"reconciliation run {result.run_id}: nothing new since the last run"
    else:
        head = (
            f"reconciliation run {result.run_id}: {result.transactions} transaction(s) looked "
            f"at against {result.invoices} invoice(s); automatic matches: "
            f"{counts(dict(result.rules))}; suggestions: {result.suggestions}"
        )
    invoices, transactions = status_counts(app.engine)
    return f"{head}\ninvoices: {counts(invoices)}\ntransactions: {counts(transactions)}"


@cli.command()
@config_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Show only the first N transactions (the best first); says how many more wait.",
)
@click.pass_obj
def review(obj: Context, limit: int | None) -> None:
    """The suggestions and unmatched money waiting for a person, best first, with why."""
    from workers.app import App
    from workers.reconciliation.review import format_review, review_list

    app = App.open(obj.config())
    try:
        rows = review_list(app.engine)
    finally:
        app.close()
    shown = rows if limit is None else rows[:limit]
    click.echo(format_review(shown))
    if len(shown) < len(rows):
        click.echo(f"... and {len(rows) - len(shown)} more (`review` without --limit shows all)")


@cli.command()
@config_option
@click.option(
    "--format",
    "fmt",
    default="text",
    show_default=True,
    type=click.Choice(["text", "csv", "html"]),
    help="text for a terminal, csv for a spreadsheet, html for one self-contained page.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file (UTF-8) instead of stdout.",
)
@click.pass_obj
def report(obj: Context, fmt: str, out: Path | None) -> None:
    """Open receivables by age and the reconciliation's exceptions, as a bookkeeper reads them."""
    import datetime as dt

    from workers.app import App
    from workers.reconciliation.report import load_report, render

    app = App.open(obj.config())
    try:
        body = render(load_report(app.engine, dt.date.today()), fmt)
    finally:
        app.close()
    if out is None:
        click.echo(body, nl=False)
        return
    try:
        out.write_text(body, encoding="utf-8", newline="")
    except OSError as exc:
        click.echo(f"invoice-sync: cannot write {out}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    click.echo(f"{fmt} report written to {out}")


def _by_option(func: Callable[..., Any]) -> Callable[..., Any]:
    import getpass

    return click.option(
        "--by",
        default=lambda: getpass.getuser(),
        show_default="your user name",
        help="Who decides (recorded in decided_by).",
    )(func)


def _decide(obj: Context, decision: Callable[[Any], int], what: str) -> None:
    """Record the decision and bring the statuses of its transaction and invoice up to date at
    once; what it frees for other invoices is re-matched by the next run (the daemon's, or
    `reconcile --inline`), so a decision costs no whole run."""
    import datetime as dt

    from store.review import ReviewStore
    from workers.app import App
    from workers.reconciliation.review import DecisionError, refresh

    app = App.open(obj.config())
    try:
        try:
            match_id = decision(app.engine)
        except DecisionError as exc:
            click.echo(f"invoice-sync: {exc}", err=True)
            sys.exit(1)
        made = ReviewStore(app.engine).match(match_id)
        assert made is not None
        click.echo(f"{what}: match {match_id}")
        click.echo(
            refresh(app.engine, made["bank_transaction_id"], made["invoice_id"], dt.date.today())
        )
        if made["status"] == "rejected":
            _rejected_push(app.engine, made["bank_transaction_id"], made["invoice_id"])
    finally:
        app.close()


def _rejected_push(engine: Any, transaction_id: int, invoice_id: int) -> None:
    """What a rejection means for write-back: a planned push is cancelled with it; one already
    sent is a payment at the source that a person must undo there."""
    from store.pushes import CANCELLED, FAILED, PushStore

    push = PushStore(engine).for_pair(transaction_id, invoice_id)
    if push is None or push["status"] == FAILED:
        return
    if push["status"] == CANCELLED:
        click.echo(f"write-back: push {push['id']} cancelled, nothing was sent")
        return
    payment = push["remote_payment_id"] or "(id not known yet)"
    click.echo(
        f"invoice-sync: write-back already registered this payment at {push['source']} "
        f"(push {push['id']}, {push['status']}, payment {payment}, marker "
        f"{push['idempotency_key']!r}): undo it there, or with `invoice-sync undo-payment "
        f"{push['id']}` where the source allows it",
        err=True,
    )


@cli.command("match")
@config_option
@click.argument("transaction", type=int)
@click.argument("invoice")
@click.option("--amount", help="The part of the transaction that pays the invoice.")
@_by_option
@click.pass_obj
def match_command(
    obj: Context, transaction: int, invoice: str, amount: str | None, by: str
) -> None:
    """Record that bank transaction TRANSACTION pays INVOICE (its id or number)."""
    from decimal import Decimal, InvalidOperation

    from workers.reconciliation.review import match

    try:
        value = Decimal(amount.replace(",", ".")) if amount is not None else None
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not an amount", param_hint="--amount") from None
    if value is not None and not value.is_finite():
        raise click.BadParameter(f"{amount!r} is not an amount", param_hint="--amount")
    _decide(
        obj,
        lambda engine: match(engine, transaction, invoice, value, by),
        f"transaction {transaction} pays invoice {invoice}, confirmed by {by}",
    )


@cli.command()
@config_option
@click.argument("transaction", type=int)
@click.argument("invoice")
@_by_option
@click.pass_obj
def reject(obj: Context, transaction: int, invoice: str, by: str) -> None:
    """Record that TRANSACTION does not pay INVOICE: never suggested or matched again."""
    from workers.reconciliation.review import reject as reject_pair

    _decide(
        obj,
        lambda engine: reject_pair(engine, transaction, invoice, by),
        f"transaction {transaction} does not pay invoice {invoice}, rejected by {by}",
    )


@cli.command()
@config_option
@click.argument("match_id", type=int)
@_by_option
@click.pass_obj
def confirm(obj: Context, match_id: int, by: str) -> None:
    """Confirm a suggested (or automatic) match by its id, as `review` shows it."""
    from workers.reconciliation.review import confirm as confirm_match

    _decide(
        obj,
        lambda engine: confirm_match(engine, match_id, by),
        f"match {match_id} confirmed by {by}",
    )


@cli.command("push-payments")
@config_option
@click.option(
    "--source", "sources", multiple=True, metavar="NAME", help="Only this source (repeatable)."
)
@click.option(
    "--apply",
    is_flag=True,
    help='Send the payments (sources with write_back = "apply"); without it, show the plan.',
)
@click.option(
    "--retry",
    "retry",
    multiple=True,
    type=int,
    metavar="PUSH_ID",
    help="Plan a failed push again once its cause is mended (repeatable).",
)
@click.pass_obj
def push_payments(
    obj: Context, sources: tuple[str, ...], apply: bool, retry: tuple[int, ...]
) -> None:
    """Register at the invoicing systems the bank payments they do not know about, each once."""
    from store.mirror import utcnow
    from store.pushes import FAILED, PushStore
    from workers.app import App
    from workers.write_back import plan, plan_line, planned, push_source

    config = obj.config()
    selected = config.select(sources)
    on = [s for s in selected if s.write_back != "off"]
    sending = [s for s in on if apply and s.write_back == "apply"]
    for source in sending:
        config.token(source)  # every token is checked before anything is sent
    app = App.open(config)
    store = PushStore(app.engine)
    failed = False
    try:
        if retry:
            again = store.retry(retry, utcnow())
            click.echo(f"{again} failed push(es) planned again")
            if again < len(retry):
                click.echo("invoice-sync: --retry takes the ids of failed pushes", err=True)
                failed = True
        plan(store, [s.name for s in on])
        for source in selected:
            if source.write_back == "off":
                click.echo(f'{source.name}: write_back is "off": nothing planned or sent')
                continue
            if source not in sending:
                if apply:
                    click.echo(
                        f'{source.name}: write_back is "dry-run": --apply sends nothing; the plan:'
                    )
                pushes = planned(store, source.name)
                for push in pushes:
                    click.echo(plan_line(push))
                click.echo(f"{source.name}: {len(pushes)} payment(s) planned, nothing sent")
                continue
            with app.connector(source) as connector:
                result = push_source(store, connector, source.name)
            for outcome in result.outcomes:
                click.echo(outcome.line())
            counts = Counter(o.outcome for o in result.outcomes)
            summary = ", ".join(f"{n} {what}" for what, n in counts.items()) or "nothing to send"
            click.echo(f"{source.name}: {summary}")
            if result.in_flight:
                click.echo(
                    f"{source.name}: {result.in_flight} payment(s) being sent by another worker, "
                    "or of unknown outcome: looked for at the source before any new attempt"
                )
            if result.stopped:
                click.echo(f"{source.name}: stopped: {result.stopped}", err=True)
            failed = failed or result.failed
        for source in on:
            for push in store.pushes(source.name, (FAILED,)):
                click.echo(
                    f"{source.name}: push {push.id} failed (`--retry {push.id}` once mended): "
                    f"{plan_line(push, push.amount)}: {push.last_error}"
                )
    finally:
        app.close()
    sys.exit(1 if failed else 0)


@cli.command("undo-payment")
@config_option
@click.argument("push_id", type=int)
@_by_option
@click.pass_obj
def undo_payment(obj: Context, push_id: int, by: str) -> None:
    """Delete at its source the payment write-back registered as push PUSH_ID (its match was
    wrong): Moneybird, Recras and Flowtly allow it; WeFact does not."""
    from connectors.errors import ConnectorError
    from store.pushes import PushStore
    from workers.app import App
    from workers.write_back import UndoError, undo

    config = obj.config()
    app = App.open(config)
    try:
        store = PushStore(app.engine)
        push = store.get(push_id)
        if push is None:
            click.echo(f"invoice-sync: no payment push {push_id}", err=True)
            sys.exit(1)
        source = config.source(push.source)
        try:
            with app.connector(source) as connector:
                said = undo(store, connector, push, by)
        except (UndoError, ConnectorError) as exc:
            click.echo(f"invoice-sync: {exc}", err=True)
            sys.exit(1)
        click.echo(f"push {push_id}: {said}")
    finally:
        app.close()


@cli.command()
@config_option
@click.option("--processes", "-p", default=2, show_default=True, help="Worker processes.")
@click.option("--threads", "-t", default=4, show_default=True, help="Threads per process.")
@click.pass_obj
def worker(obj: Context, processes: int, threads: int) -> None:
    """Run dramatiq workers for the sync actors (same as `dramatiq workers.actors`)."""
    import os

    from workers.broker import QUEUE

    config = obj.config()
    from workers.config import config_path

    os.environ["INVOICE_SYNC_CONFIG"] = str(config_path(obj.config_path).resolve())
    if config.metrics_port:
        from workers.broker import prometheus_environment

        os.environ.update(prometheus_environment(config))
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.actors",
        "--queues",
        QUEUE,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    os.execv(sys.executable, argv)


@cli.command()
@config_option
@click.pass_obj
def scheduler(obj: Context) -> None:
    """Enqueue a cycle per source on its interval. Run exactly one per deployment."""
    from workers import broker
    from workers.scheduler import run_scheduler

    config = obj.config()
    broker.configure(config)
    from workers.actors import reconcile_run, scan_bank_inbox, sync_cycle

    run_scheduler(
        config,
        lambda source, stream: sync_cycle.send(source, False, stream),
        scan_bank_inbox.send,
        lambda: reconcile_run.send(False),
    )


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
    """Sync the built-in Moneybird and Recras simulators into SQLite, change them, sync again."""
    from workers.demo import run_demo

    logging.getLogger().setLevel(logging.WARNING)
    run_demo(invoices=invoices, database=database, echo=click.echo)


def main() -> None:
    """The console script. Once a command is done, the process ends at once: an interpreter's
    teardown after SQLAlchemy, psycopg and httpx were loaded took 0.15-0.2 s on this machine, a
    fifth of an idle cron sync. Each command has already committed and closed what it opened;
    here the logs and the output are flushed, and only the teardown is skipped (not under a
    profiler or a tracer, which write their results at exit)."""
    from workers.memory import return_large_blocks

    return_large_blocks()
    try:
        cli(prog_name="invoice-sync")  # standalone mode: always ends in SystemExit
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or coverage writes its results at exit: let it
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) has nothing more to take
            pass
    os._exit(code or 0)
