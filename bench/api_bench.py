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
    """One API's simulator, and how to read and change its invoices for the benchmark."""

    simulator: type[Any]
    ids: Callable[[Any], list[int]]
    unpaid: Callable[[Any, int], bool]
    #: makes an invoice bigger (a line, a row) without paying it
    extend: Callable[[Any, int], None]
    #: config keys the deletion phase adds (WeFact lists completely then)
    deletion_keys: str = ""

    def seed(self, n: int, today: dt.date) -> Any:
        start = today - dt.timedelta(days=390)
        return self.simulator(token=TOKEN, invoices=n, seed=3, start_date=start, days=380)

    def unpaid_ids(self, sim: Any) -> list[int]:
        return [i for i in self.ids(sim) if self.unpaid(sim, i)]

    def change(self, sim: Any, rng: random.Random, count: int) -> None:
        """Half the changes pay an unpaid invoice, half make any invoice bigger."""
        for invoice_id in rng.sample(self.unpaid_ids(sim), count // 2):
            sim.pay(invoice_id)
        for invoice_id in rng.sample(self.ids(sim), count - count // 2):
            self.extend(sim, invoice_id)

    def delete(self, sim: Any, rng: random.Random, count: int) -> None:
        for invoice_id in rng.sample(self.ids(sim), count):
            sim.delete_invoice(invoice_id)


KINDS = {
    "recras": Kind(
        RecrasSimulator,
        lambda sim: sim.invoice_ids(),
        lambda sim, i: sim.invoice(i)["status"] in ("verzonden", "deels_betaald"),
        lambda sim, i: sim.add_line(i),
    ),
    "wefact": Kind(
        WeFactSimulator,
        lambda sim: sim.identifiers(),
        lambda sim, i: sim.truth(i)["status"] in (2, 3),
        lambda sim, i: sim.add_line(i),
        deletion_keys='full_listing_every = "1s"\n',
    ),
    "flowtly": Kind(
        FlowtlySimulator,
        lambda sim: sim.invoice_ids(),
        lambda sim, i: sim.totals(i)["paid"] < sim.totals(i)["gross"],
        lambda sim, i: sim.add_row(i),
    ),
}


def run_kind(name: str, kind: Kind, n: int, database: str, workdir: Path) -> list[dict[str, Any]]:
    simulator = kind.seed(n, dt.date.today())
    rng = random.Random(5)
    env = {**COMMAND_ENV, "BENCH_API_KEY": TOKEN}
    results = []
    with SimulatorServer(simulator) as server:
        url = fresh_database(database, workdir)
        unpaid = len(kind.unpaid_ids(simulator))
        for phase in ("initial", "no change", "1% changed", "1% deleted"):
            keys = ""
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
