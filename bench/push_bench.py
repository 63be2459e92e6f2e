"""Benchmark: write-back of 10,000 bank payments to the Moneybird simulator under its rate limit.

Set-up (not timed): the simulator, in this process on loopback, holds enough invoices that
10,000 are open with a structured reference; a sync mirrors them, 10,000 bank transactions pay
them, reconciliation matches them. Timed: one `invoice-sync push-payments --apply` process,
spawn to exit, whose source paces itself at the simulator's own limit (`--limit` per
`--window`, a short window standing in for Moneybird's 150 per 5 minutes).

Timed first: the dry run a careful user does (`push-payments` without `--apply`: plans the
10,000 rows and prints them). Reported: the requests the simulator saw (reads and payment
POSTs), its 429s, payments carrying the same marker twice (duplicates), and the wall time
against the rate limit's minimum: with R requests at L per W seconds, the last may be admitted
no sooner than floor((R - 1) / L) * W.

    .venv/bin/python bench/push_bench.py [--payments 10000] [--limit 2500] [--window 30]
        [--databases postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import COMMAND_ENV, fresh_database, run_command  # noqa: E402
from connectors.moneybird.simulator import MoneybirdSimulator  # noqa: E402
from connectors.simulation import SimulatorServer  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.schema import bank_transactions, invoices  # noqa: E402
from workers.reconciliation.engine import reconcile  # noqa: E402

TOKEN = "bench-push-token"
#: share of the simulator's invoices that are open, unpaid and carry a reference (about 18 %)
OPEN_SHARE = 0.17


def write_config(path: Path, url: str, base_url: str, sim: MoneybirdSimulator, args: Any) -> None:
    path.write_text(
        f"""database_url = "{url}"
redis_namespace = "bench-push-{time.time_ns()}"

[[sources]]
name = "bench"
kind = "moneybird"
base_url = "{base_url}"
administration_id = "{sim.administration_id}"
token_env = "BENCH_MONEYBIRD_TOKEN"
since = "2000-01-01"
rate_limit = {args.limit}
rate_window = {args.window}
write_back = "apply"
""",
        encoding="utf-8",
    )


def pay_at_bank(url: str, count: int) -> int:
    """One bank transaction per open invoice with a reference, for its total."""
    engine = make_engine(url)
    i = invoices.c
    with engine.begin() as connection:
        rows = connection.execute(
            sa.select(i.total_incl_tax, i.total_paid, i.payment_reference)
            .where(i.state.in_(("open", "late")), i.payment_reference.is_not(None))
            .order_by(i.id)
        ).all()
        unpaid = [r for r in rows if r[0] > 0 and r[1] == 0][:count]
        today = dt.date.today()
        connection.execute(
            sa.insert(bank_transactions),
            [
                {
                    "account_iban": "NL91ABNA0417164300",
                    "booking_date": today,
                    "amount": Decimal(total),
                    "currency": "EUR",
                    "counterparty_name": "Klant",
                    "counterparty_iban": "NL18INGB1095513148",
                    "payment_reference": reference,
                    "bank_reference": f"BENCH{n}",
                    "reversal": False,
                    "origin": "camt053",
                    "dedup_key": f"ref:BENCH{n}",
                    "raw": "<Ntry/>",
                    "imported_at": dt.datetime.now(dt.UTC),
                }
                for n, (total, _paid, reference) in enumerate(unpaid)
            ],
        )
    result = reconcile(engine)
    engine.dispose()
    return sum(result.rules.values())


def run(database: str, args: Any, workdir: Path) -> dict[str, Any]:
    sim = MoneybirdSimulator(
        token=TOKEN,
        invoices=int(args.payments / OPEN_SHARE),
        seed=7,
        rate_limit=args.limit,
        rate_window=args.window,
    )
    env = {**COMMAND_ENV, "BENCH_MONEYBIRD_TOKEN": TOKEN}
    with SimulatorServer(sim) as server:
        url = fresh_database(database, workdir)
        config = workdir / "push.toml"
        write_config(config, url, server.base_url, sim, args)
        run_command(config, "sync", "--inline", env=env, big_parent=True)
        matched = pay_at_bank(url, args.payments)
        if matched < args.payments:
            raise SystemExit(f"only {matched} payments matched; raise the invoice count")
        time.sleep(args.window)  # the set-up's requests leave the simulator's window
        before, limited_before = len(sim.requests), sim.rate_limited
        plan_out, plan_wall, plan_rss = run_command(
            config, "push-payments", env=env, big_parent=True
        )
        assert len(sim.requests) == before, "a dry run sends nothing"
        assert f"bench: {matched} payment(s) planned, nothing sent" in plan_out
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        out, wall, rss = run_command(
            config, "push-payments", "--apply", env=env, big_parent=True, python=profile
        )
        requests = len(sim.requests) - before
        posts = sum(1 for _, path, _ in sim.requests[before:] if path.endswith("/payments.json"))
    markers = Counter(
        p["transaction_identifier"]
        for invoice in sim.invoices()
        for p in invoice["payments"]
        if (p["transaction_identifier"] or "").startswith("invoice-sync ")
    )
    minimum = (requests - 1) // args.limit * args.window
    return {
        "database": database,
        "payments": matched,
        "sent": out.count("-> sent"),
        "requests": requests,
        "posts": posts,
        "429s": sim.rate_limited - limited_before,
        "duplicates": sum(n - 1 for n in markers.values() if n > 1),
        "registered": len(markers),
        "dry_run_s": round(plan_wall, 1),
        "dry_run_rss_mb": round(plan_rss, 1),
        "wall_s": round(wall, 1),
        "minimum_s": minimum,
        "over_minimum": f"{(wall / minimum - 1) * 100:.1f}%" if minimum else "-",
        "peak_rss_mb": round(rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=2500, help="requests per window")
    parser.add_argument("--window", type=float, default=30.0, help="seconds")
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--profile", help="write the timed command's cProfile stats here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="push-bench-"))
    try:
        for database in args.databases.split(","):
            print(json.dumps(run(database, args, workdir)), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
