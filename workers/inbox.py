"""The bank inbox: a folder the daemon watches; every file dropped in it is imported once.

Each scan imports the files that stopped growing (size and modification time unchanged across
two looks a moment apart; a file still being written waits for the next scan), then moves each
to `processed/` or, with its error in a `.error` file beside it, to `failed/`. A file that was
imported but not yet moved when a worker died is imported again next scan: every transaction is
then already present, so nothing doubles.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

from store.bank import BankStore
from workers.bank_import import ImportResult, import_bank_file
from workers.logs import get_logger

PROCESSED = "processed"
FAILED = "failed"


def _candidates(inbox: Path) -> dict[Path, tuple[int, int]]:
    """Files directly in the inbox (not hidden, not our folders) -> (size, mtime in ns)."""
    found: dict[Path, tuple[int, int]] = {}
    with os.scandir(inbox) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            found[Path(entry.path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def settled_files(inbox: Path, settle: float) -> Iterator[Path]:
    """The files whose size and mtime did not change during `settle` seconds, oldest first."""
    first = _candidates(inbox)
    if not first:
        return
    time.sleep(settle)
    second = _candidates(inbox)
    still = [path for path, look in first.items() if second.get(path) == look]
    yield from sorted(still, key=lambda p: (second[p][1], p.name))


def _destination(folder: Path, name: str) -> Path:
    """`folder/name`, or with a timestamp before the suffix if that name is taken."""
    folder.mkdir(exist_ok=True)
    target = folder / name
    if not target.exists():
        return target
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return folder / f"{Path(name).stem}.{stamp}{Path(name).suffix}"


def scan_inbox(
    store: BankStore, inbox: Path, *, account: str | None = None, settle: float = 2.0
) -> list[ImportResult]:
    log = get_logger(inbox=str(inbox))
    results = []
    for path in settled_files(inbox, settle):
        result = import_bank_file(store, path, account)
        results.append(result)
        folder = inbox / (PROCESSED if result.status == "ok" else FAILED)
        target = _destination(folder, path.name)
        try:
            path.rename(target)
        except FileNotFoundError:
            continue  # another worker's scan moved it first
        if result.status != "ok":
            target.with_name(target.name + ".error").write_text(
                (result.error or "failed") + "\n", encoding="utf-8"
            )
            log.warning("bank file failed", file=path.name, error=result.error)
        else:
            log.info(
                "bank file imported",
                file=path.name,
                new=result.new,
                present=result.present,
                balance_check=result.balance_check,
            )
    return results
