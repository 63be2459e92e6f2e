"""Benchmark: importing a large camt.053 and a large MT940, then importing each again.

Files of N transactions (default 100,000) are generated first (`tests/bankgen.py`: camt.053.001.02
as Dutch banks send it, MT940 in the Rabobank structured dialect). Each import runs as a fresh
`invoice-sync import-bank FILE` child process, timed from spawn to exit (the interpreter's start,
imports and the migration check included), with the child's own peak RSS from `wait4`. The second
import of the same file finds every transaction already present. The same two imports are then
run again into an emptied database while the memory of the command and its parsing processes
together is sampled every 10 ms (reading it costs enough CPU to slow the import, so those runs
are not timed). Memory is measured at two file sizes to show it does not grow with the file.

    .venv/bin/python bench/bank_bench.py [--transactions 100000] [--databases postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import TreeMemory, fresh_database, run_command  # noqa: E402
from tests.bankgen import random_transactions, write_camt053, write_mt940  # noqa: E402

ACCOUNT = "NL91ABNA0417164300"
PHASES = ("first import", "re-import")
PER_STATEMENT = 10_000


def generate(kind: str, path: Path, count: int) -> None:
    """In a process of its own, so that the benchmark's own memory stays small: a child forked
    from a large parent would report the parent's pages as its peak RSS."""
    subprocess.run(
        [sys.executable, __file__, "--generate", kind, str(path), str(count)], check=True
    )


def _write(kind: str, path: Path, count: int) -> None:
    transactions = random_transactions(count, dt.date(2025, 1, 1))
    statements = []
    while chunk := [t for _, t in zip(range(PER_STATEMENT), transactions, strict=False)]:
        statements.append(chunk)
    if kind == "camt053":
        write_camt053(path, ACCOUNT, statements)
    else:
        write_mt940(path, ACCOUNT, statements)


def run_import(
    config: Path, path: Path, tree: TreeMemory | None = None
) -> tuple[str, float, float]:
    """One import as its own process: its output line, wall time and its own peak RSS; with
    `tree`, the memory of it and its parsing processes together is sampled meanwhile (which
    costs CPU: such a run's time is not a timing figure)."""
    out, wall, rss = run_command(config, "import-bank", str(path), tree=tree)
    return out.strip(), wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--formats", default="camt053,mt940")
    parser.add_argument("--generate", nargs=3, metavar=("FORMAT", "PATH", "COUNT"))
    args = parser.parse_args()
    if args.generate:
        kind, path, count = args.generate
        _write(kind, Path(path), int(count))
        return
    workdir = Path(tempfile.mkdtemp(prefix="invoice-sync-bank-bench-"))
    results = []
    try:
        for kind in args.formats.split(","):
            path = workdir / f"statement-{kind}.{'xml' if kind == 'camt053' else 'sta'}"
            generate(kind, path, args.transactions)
            size_mb = path.stat().st_size / 1e6
            for database in args.databases.split(","):
                url = fresh_database(database, workdir)
                config = workdir / f"{database}.toml"
                config.write_text(f'database_url = "{url}"\n')
                timed = [(phase, *run_import(config, path)) for phase in PHASES]
                fresh_database(database, workdir)  # the same two imports, memory sampled
                trees = {phase: TreeMemory() for phase in PHASES}
                for phase in PHASES:
                    run_import(config, path, trees[phase])
                for phase, out, wall, rss in timed:
                    tree_rss = max(trees[phase].peak_mb, rss)
                    results.append(
                        {
                            "format": kind,
                            "database": database,
                            "phase": phase,
                            "transactions": args.transactions,
                            "file_mb": round(size_mb, 1),
                            "wall": round(wall, 2),
                            "transactions_per_s": round(args.transactions / wall),
                            "peak_rss_mb": round(rss, 1),
                            "peak_rss_with_parsers_mb": round(tree_rss, 1),
                            "output": out,
                        }
                    )
                    print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        "| format | database | phase | transactions | file MB | wall s | tx/s | peak RSS MB "
        "| with parsing processes MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['format']} | {r['database']} | {r['phase']} | {r['transactions']:,} "
            f"| {r['file_mb']} | {r['wall']} | {r['transactions_per_s']:,} | {r['peak_rss_mb']} "
            f"| {r['peak_rss_with_parsers_mb']} |"
        )


if __name__ == "__main__":
    main()
