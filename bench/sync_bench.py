"""Benchmark: initial mirror, a 1 % change cycle, two idle cycles and a deletion cycle.

Both idle cycles get the listing the cycle before them left the mirror equal to, so neither
compares it with the mirror (`sync_runs.listing_digest`); the second is the steady state of a
cron job every five minutes.

The simulator runs in its own process (rate limit off); every cycle runs as a fresh
`invoice-sync sync --inline` child process, so the peak RSS reported is that cycle's alone
(from `wait4`), and `seconds` is the cycle as the engine timed it, without interpreter start-up.
An initial mirror into PostgreSQL runs its batches in worker processes (`--processes`): a second
initial mirror into an emptied database samples the memory of the command and its workers
together (their proportional set sizes, every 10 ms: reading them costs enough CPU to slow the
run, so that run's time is not a figure); `--one-process` adds one with `--processes 1`.

    .venv/bin/python bench/sync_bench.py [--invoices 100000] [--databases sqlite,postgresql]
        [--one-process]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).with_name("invoice-sync")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = "invoice_sync_bench"
#: the environment a timed command runs in: as an installed command runs for its users, with
#: Python's bytecode cache (this machine's environment sets PYTHONDONTWRITEBYTECODE=1, which
#: would make every run compile the project's modules again: about 0.25 s of each start)
COMMAND_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(invoices: int) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.moneybird.simulator",
            "--invoices",
            str(invoices),
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--no-rate-limit",
            "--warm",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.split("listening on", 1)[1].strip()


def mutate(base_url: str, **counts: int) -> None:
    request = urllib.request.Request(
        base_url.rsplit("/api/v2", 1)[0] + "/_simulator/mutate",
        data=json.dumps(counts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        path = workdir / "bench.db"
        for p in workdir.glob("bench.db*"):
            p.unlink()
        return f"sqlite:///{path}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{PG_DB}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"


class TreeMemory:
    """The most memory a command and its child processes held at once (the sum of their
    proportional set sizes, so that what they share is counted once), sampled every 10 ms from
    /proc while it runs: for commands that start processes of their own, whose peaks `wait4`
    does not add up. A peak shorter than a sample can be missed."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._thread: threading.Thread | None = None

    def watch(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _sample(self, pid: int) -> None:
        while (total := _tree_pss_kb(pid)) is not None:
            self.peak_mb = max(self.peak_mb, total / 1024)
            time.sleep(0.01)


def _tree_pss_kb(pid: int) -> int | None:
    """Proportional set size of `pid` and its descendants in kB (pages shared between them, a
    library or a child just forked from the parent, counted once in all, not once each); None
    once `pid` has exited."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            pss = next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), None)
        children = [
            child
            for task in Path(f"/proc/{pid}/task").iterdir()  # a thread's children are its own
            for child in (task / "children").read_text().split()
        ]
    except (OSError, ValueError):
        return None
    if pss is None:  # a zombie: it has exited
        return None
    return pss + sum(_tree_pss_kb(int(child)) or 0 for child in children)


def run_command(
    config: Path,
    *args: str,
    env: dict[str, str] = COMMAND_ENV,
    big_parent: bool = False,
    python: list[str] | None = None,
    tree: TreeMemory | None = None,
) -> tuple[str, float, float]:
    """One `invoice-sync` command as its own process, as a user runs it: its output, the wall
    time from spawn to exit, and the child's own peak RSS in MB (from wait4).

    `big_parent`: this process holds a lot of memory (an in-process simulator). Linux counts the
    forked copy of the parent in the child's peak RSS, so the command then runs under
    `/usr/bin/time`, whose own child starts small, and its `%M` is the figure. `python`: run
    the command as `python <python> -m workers` instead (a profiler's options). `tree`: also
    sample the memory of the command and its children together."""
    timer = ["/usr/bin/time", "-f", "%M"] if big_parent else []
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [
                *timer,
                *([sys.executable, *python, "-m", "workers"] if python else [str(BIN)]),
                "--config",
                str(config),
                "--log-level",
                "WARNING",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert proc.stdout is not None
        if tree is not None:
            tree.watch(proc.pid)
        out = proc.stdout.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if tree is not None:
            tree.wait()
        code = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
        if code != 0:
            raise SystemExit(f"{' '.join(args)} failed ({code}):\n{out}\n{stderr}")
    peak_kb = int(stderr.strip().splitlines()[-1]) if big_parent else usage.ru_maxrss
    return out, wall, peak_kb / 1024


def peak_rss_mb(
    config: Path, *options: str, tree: TreeMemory | None = None
) -> tuple[dict[str, float | int | str], float]:
    """Run one cycle; its summary row, wall time and the command's own peak RSS. With `tree`,
    the memory of the command and its batch worker processes together is sampled meanwhile
    (which costs CPU: such a run's time is not a timing figure)."""
    env = {**COMMAND_ENV, "BENCH_MONEYBIRD_TOKEN": TOKEN}
    out, wall, rss = run_command(config, "sync", "--inline", *options, env=env, tree=tree)
    header, row = out.splitlines()[:2]
    values: dict[str, float | int | str] = dict(zip(header.split(), row.split(), strict=True))
    values["wall"] = round(wall, 2)
    return values, rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="also time the initial mirror with `--processes 1` (batches in the command's "
        "own threads), into a fresh database",
    )
    args = parser.parse_args()
    n = args.invoices
    workdir = Path(tempfile.mkdtemp(prefix="invoice-sync-bench-"))
    results = []
    simulator = None
    try:
        for kind in args.databases.split(","):
            simulator, base_url = start_simulator(n)  # the same seeded data for every database
            url = fresh_database(kind, workdir)
            config = workdir / f"{kind}.toml"
            config.write_text(
                f'database_url = "{url}"\n\n[[sources]]\nname = "bench"\nkind = "moneybird"\n'
                f'base_url = "{base_url}"\nadministration_id = "123456789"\n'
                f'token_env = "BENCH_MONEYBIRD_TOKEN"\nsince = "2000-01-01"\nrate_limit = 1000000\n'
                f'timeout = "120s"\n'
            )
            # (phase, changes first, options, from an empty database, sample the workers' memory)
            phases: list[tuple[str, dict[str, int], tuple[str, ...], bool, bool]] = [
                ("initial", {}, (), False, False),
                ("1% changed", {"change": n // 100}, (), False, False),
                ("no change", {}, (), False, False),
                ("no change again", {}, (), False, False),
                ("1% deleted", {"delete": n // 100}, (), False, False),
            ]
            if kind == "postgresql":  # SQLite's batches stay in the command
                phases.insert(1, ("initial, memory with workers", {}, (), True, True))
            if args.one_process:
                phases.insert(1, ("initial, one process", {}, ("--processes", "1"), True, False))
            for phase, counts, options, fresh, sample in phases:
                if counts:
                    mutate(base_url, **counts)
                if fresh:  # the same initial mirror again
                    fresh_database(kind, workdir)
                tree = TreeMemory() if sample else None
                values, rss = peak_rss_mb(config, *options, tree=tree)
                seconds = float(values["seconds"])
                fetched = int(values["new"]) + int(values["changed"])
                results.append(
                    {
                        "database": kind,
                        "phase": phase,
                        "invoices": n,
                        "fetched": fetched,
                        "requests": int(values["requests"]),
                        "seconds": seconds,
                        "wall": values["wall"],
                        "invoices_per_s": round(fetched / seconds) if fetched and seconds else None,
                        "peak_rss_mb": round(rss, 1),
                        "peak_pss_with_workers_mb": round(tree.peak_mb, 1) if tree else None,
                        "deleted": int(values["deleted"]),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
            simulator.terminate()
            simulator.wait(timeout=10)
    finally:
        if simulator is not None and simulator.poll() is None:
            simulator.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    help_wall = _help_wall()
    print()
    print(f"`invoice-sync --help`: {help_wall:.2f} s wall (best of 5)")
    print()
    print(
        "| database | phase | fetched | requests | seconds | wall s | invoices/s (wall) "
        "| peak RSS MB | with batch workers, PSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        fetched, wall = int(r["fetched"]), float(r["wall"])
        rate = f"{round(fetched / wall):,}" if fetched and wall else "-"
        print(
            f"| {r['database']} | {r['phase']} | {r['fetched']} | {r['requests']} | {r['seconds']} "
            f"| {r['wall']} | {rate} | {r['peak_rss_mb']} "
            f"| {r['peak_pss_with_workers_mb'] or '-'} |"
        )


def _help_wall() -> float:
    """`invoice-sync --help` from spawn to exit, the floor under every command."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(
            [str(BIN), "--help"], cwd=ROOT, env=COMMAND_ENV, capture_output=True, check=True
        )
        best = min(best, time.perf_counter() - started)
    return best


if __name__ == "__main__":
    main()
