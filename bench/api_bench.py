"""Benchmark: a Recras, WeFact or Flowtly source of 10,000 invoices, as a user runs it: the
initial mirror, a cycle with nothing changed, one after 1 % changed and one after 1 % were
deleted, each as a fresh `invoice-sync sync --inline` process, timed spawn to exit, with its
requests counted.

The simulator runs in this process on loopback (the timed command is another process). None of
these APIs has a batch fetch, so requests per cycle matter as much as seconds.

    .venv/bin/python bench/api_bench.py [--kinds recras,wefact,flowtly] [--invoices 10000]
        [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import COMMAND_ENV, fresh_database, run_command  # noqa: E402
from connectors.flowtly.simulator import FlowtlySimulator  # noqa: E402
from connectors.recras.simulator import RecrasSimulator  # noqa: E402
from connectors.simulation import SimulatorServer  # noqa: E402
from connectors.wefact.simulator import WeFactSimulator  # noqa: E402

TOKEN = "bench-api-key"


@dataclass(frozen=True)
class Kind:
    """How to seed, change and configure one API for the benchmark."""

    simulator: Callable[[int, dt.date], Any]
    unpaid: Callable[[Any], list[int]]
    change: Callable[[Any, random.Random, int], None]
    delete: Callable[[Any, random.Random, int], None]
    #: extra config keys; the deletion phase adds `deletion_keys` (WeFact lists completely then)
    keys: str = ""
    deletion_keys: str = ""


def _recras(n: int, today: dt.date) -> RecrasSimulator:
    start = today - dt.timedelta(days=390)
    return RecrasSimulator(token=TOKEN, invoices=n, seed=3, start_date=start, days=380)


def _recras_unpaid(sim: RecrasSimulator) -> list[int]:
    return [
        i for i in sim.invoice_ids() if sim.invoice(i)["status"] in ("verzonden", "deels_betaald")
    ]


def _recras_change(sim: RecrasSimulator, rng: random.Random, count: int) -> None:
    """Half the changes pay an unpaid invoice, half add a line to any invoice."""
    for invoice_id in rng.sample(_recras_unpaid(sim), count // 2):
        sim.pay(invoice_id)
    for invoice_id in rng.sample(sim.invoice_ids(), count - count // 2):
        sim.add_line(invoice_id)


def _wefact(n: int, today: dt.date) -> WeFactSimulator:
    start = today - dt.timedelta(days=390)
    return WeFactSimulator(token=TOKEN, invoices=n, seed=3, start_date=start, days=380)


def _wefact_unpaid(sim: WeFactSimulator) -> list[int]:
    return [i for i in sim.identifiers() if sim.truth(i)["status"] in (2, 3)]


def _wefact_change(sim: WeFactSimulator, rng: random.Random, count: int) -> None:
    for identifier in rng.sample(_wefact_unpaid(sim), count // 2):
        sim.pay(identifier)
    for identifier in rng.sample(sim.identifiers(), count - count // 2):
        sim.add_line(identifier)


def _flowtly(n: int, today: dt.date) -> FlowtlySimulator:
    start = today - dt.timedelta(days=390)
    return FlowtlySimulator(token=TOKEN, invoices=n, seed=3, start_date=start, days=380)


def _flowtly_unpaid(sim: FlowtlySimulator) -> list[int]:
    return [i for i in sim.invoice_ids() if sim.totals(i)["paid"] < sim.totals(i)["gross"]]


def _flowtly_change(sim: FlowtlySimulator, rng: random.Random, count: int) -> None:
    for invoice_id in rng.sample(_flowtly_unpaid(sim), count // 2):
        sim.pay(invoice_id)
    for invoice_id in rng.sample(sim.invoice_ids(), count - count // 2):
        sim.add_row(invoice_id)


KINDS = {
    "recras": Kind(
        _recras,
        _recras_unpaid,
        _recras_change,
        lambda sim, rng, count: [
            sim.delete_invoice(i) for i in rng.sample(sim.invoice_ids(), count)
        ],
    ),
    "wefact": Kind(
        _wefact,
        _wefact_unpaid,
        _wefact_change,
        lambda sim, rng, count: [
            sim.delete_invoice(i) for i in rng.sample(sim.identifiers(), count)
        ],
        deletion_keys='full_listing_every = "1s"\n',
    ),
    "flowtly": Kind(
        _flowtly,
        _flowtly_unpaid,
        _flowtly_change,
        lambda sim, rng, count: [
            sim.delete_invoice(i) for i in rng.sample(sim.invoice_ids(), count)
        ],
    ),
}


def run_kind(name: str, kind: Kind, n: int, database: str, workdir: Path) -> list[dict[str, Any]]:
    simulator = kind.simulator(n, dt.date.today())
    rng = random.Random(5)
    env = {**COMMAND_ENV, "BENCH_API_KEY": TOKEN}
    results = []
    with SimulatorServer(simulator) as server:
        url = fresh_database(database, workdir)
        unpaid = len(kind.unpaid(simulator))
        for phase in ("initial", "no change", "1% changed", "1% deleted"):
            keys = kind.keys
            if phase == "1% changed":
                kind.change(simulator, rng, n // 100)
            if phase == "1% deleted":
                kind.delete(simulator, rng, n // 100)
                keys += kind.deletion_keys
            config = workdir / f"{name}-{database}.toml"
            config.write_text(
                f'database_url = "{url}"\n\n[[sources]]\nname = "bench"\nkind = "{name}"\n'
                f'base_url = "{server.base_url}"\ntoken_env = "BENCH_API_KEY"\n'
                f'timeout = "120s"\n{keys}'
            )
            out, wall, rss = run_command(config, "sync", "--inline", env=env, big_parent=True)
            header, row = out.splitlines()[:2]
            values = dict(zip(header.split(), row.split(), strict=True))
            fetched = int(values["new"]) + int(values["changed"])
            results.append(
                {
                    "kind": name,
                    "database": database,
                    "phase": phase,
                    "invoices": n,
                    "unpaid_at_start": unpaid,
                    "listed": int(values["listed"]),
                    "new": int(values["new"]),
                    "changed": int(values["changed"]),
                    "deleted": int(values["deleted"]),
                    "requests": int(values["requests"]),
                    "seconds": float(values["seconds"]),
                    "wall": round(wall, 2),
                    "invoices_per_s": round(fetched / wall) if fetched else None,
                    "peak_rss_mb": round(rss, 1),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kinds", default="recras,wefact,flowtly")
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="invoice-sync-api-bench-"))
    results = []
    try:
        for name in args.kinds.split(","):
            for database in args.databases.split(","):
                results += run_kind(name, KINDS[name], args.invoices, database, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print("| kind | database | phase | listed | new | changed | deleted | requests | wall s "
          "| invoices/s | RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rate = f"{r['invoices_per_s']:,}" if r["invoices_per_s"] else "-"
        print(
            f"| {r['kind']} | {r['database']} | {r['phase']} | {r['listed']} | {r['new']} "
            f"| {r['changed']} | {r['deleted']} | {r['requests']} | {r['wall']} | {rate} "
            f"| {r['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
