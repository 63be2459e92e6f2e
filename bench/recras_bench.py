"""Benchmark: a Recras source of 10,000 invoices: initial mirror, an idle cycle, a 1 % change
cycle and a 1 % deletion cycle, each as a fresh `invoice-sync sync --inline` process.

The simulator runs in this process on loopback (the timed command is another process); Recras
has no batch fetch, so requests per cycle matter as much as seconds.

    .venv/bin/python bench/recras_bench.py [--invoices 10000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import COMMAND_ENV, fresh_database, run_command  # noqa: E402
from connectors.recras.simulator import RecrasSimulator  # noqa: E402
from connectors.simulation import SimulatorServer  # noqa: E402

TOKEN = "bench-recras-key"


def change(simulator: RecrasSimulator, rng: random.Random, count: int) -> None:
    """Half the changes pay an unpaid invoice, half add a line to any invoice."""
    ids = simulator.invoice_ids()
    unpaid = [i for i in ids if simulator.invoice(i)["status"] in ("verzonden", "deels_betaald")]
    for invoice_id in rng.sample(unpaid, min(count // 2, len(unpaid))):
        simulator.pay(invoice_id)
    for invoice_id in rng.sample(ids, count - count // 2):
        simulator.add_line(invoice_id)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    n = args.invoices
    today = dt.date.today()
    workdir = Path(tempfile.mkdtemp(prefix="invoice-sync-recras-bench-"))
    env = {**COMMAND_ENV, "BENCH_RECRAS_KEY": TOKEN}
    results = []
    try:
        for kind in args.databases.split(","):
            simulator = RecrasSimulator(
                token=TOKEN, invoices=n, seed=3, start_date=today - dt.timedelta(days=390), days=380
            )
            rng = random.Random(5)
            with SimulatorServer(simulator) as server:
                config = workdir / f"{kind}.toml"
                config.write_text(
                    f'database_url = "{fresh_database(kind, workdir)}"\n\n[[sources]]\n'
                    f'name = "bench"\nkind = "recras"\nbase_url = "{server.base_url}"\n'
                    f'token_env = "BENCH_RECRAS_KEY"\ntimeout = "120s"\n'
                )
                unpaid = sum(
                    simulator.invoice(i)["status"] in ("verzonden", "deels_betaald")
                    for i in simulator.invoice_ids()
                )
                phases = ("initial", "no change", "1% changed", "1% deleted")
                for phase in phases:
                    if phase == "1% changed":
                        change(simulator, rng, n // 100)
                    if phase == "1% deleted":
                        for invoice_id in rng.sample(simulator.invoice_ids(), n // 100):
                            simulator.delete_invoice(invoice_id)
                    out, wall, rss = run_command(config, "sync", "--inline", env=env)
                    header, row = out.splitlines()[:2]
                    values = dict(zip(header.split(), row.split(), strict=True))
                    fetched = int(values["new"]) + int(values["changed"])
                    results.append(
                        {
                            "database": kind,
                            "phase": phase,
                            "invoices": n,
                            "unpaid_at_start": unpaid,
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
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        "| database | phase | new | changed | deleted | requests | wall s | invoices/s | RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rate = f"{r['invoices_per_s']:,}" if r["invoices_per_s"] else "-"
        print(
            f"| {r['database']} | {r['phase']} | {r['new']} | {r['changed']} | {r['deleted']} "
            f"| {r['requests']} | {r['wall']} | {rate} | {r['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
