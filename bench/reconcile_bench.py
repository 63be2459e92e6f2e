"""Benchmark: reconciliation quality against labelled data, and its speed as users feel it.

For each size (default 10,000 and 100,000 invoices, about as many bank transactions) and each
database, labelled data from `bench/reconcile_data.py` is loaded into a fresh database, then
`invoice-sync reconcile --inline` runs as a child process, timed from spawn to exit (interpreter
start, imports, migration check, load, match, write) with its peak RSS from `wait4`; then a second
run with nothing new. The matches written are then compared with the truth:

- automatic precision: of the (transaction, invoice) pairs matched automatically, how many are
  true, overall and per rule;
- automatic recall: of the transactions that pay something, how many were matched automatically
  to exactly the invoices they pay;
- suggestions: of the transactions that pay something and were not matched so, how many have a
  true invoice as their first suggestion (top-1) or among their suggestions (top-3).

    .venv/bin/python bench/reconcile_bench.py [--sizes 10000,100000] [--databases postgresql,sqlite]
        [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from bench.reconcile_data import generate, load  # noqa: E402
from bench.sync_bench import fresh_database, run_command  # noqa: E402
from store.db import make_engine, upgrade  # noqa: E402
from store.schema import (  # noqa: E402
    bank_transactions,
    invoices,
    reconciliation_matches,
)


def evaluate(
    engine: sa.Engine, truth: dict[str, list[tuple[str, Any]]], kinds: dict[str, str]
) -> dict[str, Any]:
    with engine.connect() as connection:
        tx_key = dict(
            connection.execute(
                sa.select(bank_transactions.c.id, bank_transactions.c.dedup_key)
            ).all()
        )
        invoice_key = dict(connection.execute(sa.select(invoices.c.id, invoices.c.remote_id)).all())
        rows = connection.execute(
            sa.select(
                reconciliation_matches.c.bank_transaction_id,
                reconciliation_matches.c.invoice_id,
                reconciliation_matches.c.status,
                reconciliation_matches.c.rule,
                reconciliation_matches.c.confidence,
            )
        ).all()
    auto: dict[str, set[str]] = defaultdict(set)
    suggested: dict[str, list[tuple[float, str]]] = defaultdict(list)
    per_rule: Counter[str] = Counter()
    per_rule_true: Counter[str] = Counter()
    for tx_id, invoice_id, status, rule, confidence in rows:
        key, invoice = tx_key[tx_id], invoice_key[invoice_id]
        true = {remote for remote, _ in truth.get(key, [])}
        if status == "auto":
            auto[key].add(invoice)
            per_rule[rule] += 1
            per_rule_true[rule] += invoice in true
        elif status == "suggested":
            suggested[key].append((confidence, invoice))
    pays = [key for key, pairs in truth.items() if pairs]
    complete = sum(1 for key in pays if auto.get(key) == {r for r, _ in truth[key]})
    rest = [key for key in pays if auto.get(key) != {r for r, _ in truth[key]}]
    top1 = top3 = 0
    for key in rest:
        true = {r for r, _ in truth[key]}
        ranked = [invoice for _, invoice in sorted(suggested.get(key, []), key=lambda s: -s[0])]
        top1 += bool(ranked and ranked[0] in true)
        top3 += bool(true & set(ranked[:3]))
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for key in pays:
        kind = per_kind[kinds.get(key, "?")]
        kind["paying"] += 1
        true = {r for r, _ in truth[key]}
        if auto.get(key) == true:
            kind["auto"] += 1
        else:
            ranked = [i for _, i in sorted(suggested.get(key, []), key=lambda s: -s[0])]
            kind["top3"] += bool(true & set(ranked[:3]))
            kind["wrong_auto"] += bool(auto.get(key, set()) - true)
    auto_pairs = sum(per_rule.values())
    auto_true = sum(per_rule_true.values())
    return {
        "auto_pairs": auto_pairs,
        "auto_precision": round(auto_true / auto_pairs, 5) if auto_pairs else None,
        "auto_recall": round(complete / len(pays), 4) if pays else None,
        "paying_transactions": len(pays),
        "rest": len(rest),
        "suggest_top1": round(top1 / len(rest), 4) if rest else None,
        "suggest_top3": round(top3 / len(rest), 4) if rest else None,
        "per_kind": {kind: dict(counts) for kind, counts in sorted(per_kind.items())},
        "per_rule": {
            rule: {
                "pairs": per_rule[rule],
                "precision": round(per_rule_true[rule] / per_rule[rule], 5),
            }
            for rule in sorted(per_rule)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        workdir = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            data = generate(args.seed, size)
            for database in args.databases.split(","):
                url = fresh_database(database, workdir)
                engine = make_engine(url)
                upgrade(engine)
                load(engine, data)
                config = workdir / "bench.toml"
                config.write_text(f'database_url = "{url}"\n')
                out, first, rss = run_command(config, "reconcile", "--inline", big_parent=True)
                out = out.strip()
                _, second, _ = run_command(config, "reconcile", "--inline", big_parent=True)
                quality = evaluate(engine, data.truth, data.kinds)
                engine.dispose()
                result = {
                    "database": database,
                    "invoices": len(data.invoices),
                    "transactions": len(data.transactions),
                    "first_run_s": round(first, 2),
                    "second_run_s": round(second, 2),
                    "peak_rss_mb": round(rss, 1),
                    **quality,
                    "output": out,
                }
                results.append(result)
                print(json.dumps(result), flush=True)
    print()
    print(
        "| database | invoices | transactions | first run s | nothing new s | peak RSS MB | "
        "auto precision | auto recall | top-1 | top-3 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['database']} | {r['invoices']:,} | {r['transactions']:,} | {r['first_run_s']} | "
            f"{r['second_run_s']} | {r['peak_rss_mb']} | {r['auto_precision']} | "
            f"{r['auto_recall']} | {r['suggest_top1']} | {r['suggest_top3']} |"
        )
    print()
    for database in dict.fromkeys(r["database"] for r in results):
        runs = sorted(
            (r for r in results if r["database"] == database), key=lambda r: r["invoices"]
        )
        for small, large in zip(runs, runs[1:], strict=False):
            print(
                f"{database}: {large['invoices'] / small['invoices']:g}x the data took "
                f"{large['first_run_s'] / small['first_run_s']:.1f}x the time "
                f"({small['first_run_s']} s -> {large['first_run_s']} s)"
            )


if __name__ == "__main__":
    main()
