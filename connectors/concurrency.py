"""Bounded concurrency for APIs without a batch fetch: a few requests in flight, never a storm."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")


class _Abandoned(Exception):
    """Not started: an earlier item failed."""


def bounded(work: Callable[[A], B], items: Sequence[A], concurrency: int) -> list[B]:
    """`work` over `items`, `concurrency` at a time, results in order. The first failure stops
    what has not started, and is the one raised: a refused key costs a request per thread, not
    one per item."""
    failed = threading.Event()

    def guarded(item: A) -> B:
        if failed.is_set():
            raise _Abandoned
        try:
            return work(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(concurrency, thread_name_prefix="bounded") as pool:
        futures = [pool.submit(guarded, item) for item in items]
        return [future.result() for future in futures]
