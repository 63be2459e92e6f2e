"""A large inline cycle's batches, fetched, normalized and written by worker processes.

One process runs Python on one core at a time, and an initial mirror keeps it busy (decoding
the answers, normalizing, preparing the rows), while the database server waits for it on the
other cores. Worker processes each take whole batches, as the daemon's dramatiq workers do: each
has its own connector and database connection and writes its batch in one transaction of its
own, so nothing crosses between processes but the ids and versions to fetch and each batch's
counts. The listing, the diff and the run's record stay in the process that started the cycle.

Only PostgreSQL takes several writers at once; SQLite's single writer keeps its batches in the
process that started the cycle (`offer`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.portable import portable
from workers.engine import BatchJob, BatchResult, ProcessesFor, WorkerProcessError

if TYPE_CHECKING:
    from connectors.base import RecordStream
    from connectors.source import SourceConfig
    from store.mirror import Mirror
    from workers.config import AppConfig

#: a cycle with fewer ids to fetch keeps its batches in this process: starting a worker costs
#: about half a second of CPU (its imports), which a cycle of a few thousand does not win back
PROCESSES_FROM = 5000
#: the most worker processes a cycle starts by default
MAX_PROCESSES = 4


def default_count() -> int:
    """One worker process per core (up to `MAX_PROCESSES`); 1 means none, on one core."""
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


class BatchProcessDied(WorkerProcessError):
    """A worker process ended in the middle of the cycle (killed, out of memory)."""


class BatchFailed(WorkerProcessError):
    """A batch failed in a worker process with an error that cannot be sent back as itself;
    the message is that error's type and text (`describe_error`)."""


@dataclass(frozen=True)
class Assignment:
    """What a worker process needs to build its own connector and mirror, and what decides
    whether worker processes are worth starting."""

    config: AppConfig
    source: SourceConfig
    stream: str
    batch_size: int
    log_level: str


def offer(assignment: Assignment, count: int) -> ProcessesFor | None:
    """What `run_cycle` calls once it knows how many ids it will fetch: `count` worker
    processes for a cycle of at least `PROCESSES_FROM` into PostgreSQL, else None (the batches
    stay in threads of this process).

    Only for a source whose requests are paced by a rate-limit window, which every process
    shares (in Redis), and only when the cycle's requests fit in one window: a source without
    one is held to a few requests at a time per connector, which worker processes would
    multiply, and a cycle the window paces would only keep more processes waiting."""
    source = assignment.source
    if (
        count < 2
        or not assignment.config.database_url.startswith("postgresql")
        or source.rate_limit is None
    ):
        return None
    limit = source.rate_limit

    def processes_for(to_fetch: int) -> BatchProcesses | None:
        requests = -(-to_fetch // assignment.batch_size)
        if to_fetch < PROCESSES_FROM or requests > limit:
            return None
        return BatchProcesses(assignment, count)

    return processes_for


class BatchProcesses:
    """`count` worker processes (started fresh, not forked: this process holds connections and
    threads a fork would copy), each running one batch at a time; two batches per process are
    kept under way, so none waits for the next while this process collects a result."""

    def __init__(self, assignment: Assignment, count: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        self.in_flight = 2 * count
        #: set to 1 when the cycle has failed or was interrupted: the workers end at once. A flag
        #: in shared memory, not an `Event`: setting an event waits for every process waiting on
        #: it to wake, which a killed worker never does.
        self._stop = context.RawValue("b", 0)
        self._pool = ProcessPoolExecutor(
            max_workers=count,
            mp_context=context,
            initializer=_start,
            initargs=(assignment, self._stop),
        )

    def __enter__(self) -> BatchProcesses:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        import multiprocessing

        if exc_type is not None:  # a batch under way is rolled back: the run has ended
            self._stop.value = 1
        self._pool.shutdown(wait=True, cancel_futures=True)
        # The pool's queues hold semaphores, released here and not at an interpreter teardown
        # this process may skip (they would be reported as leaked): the pool and the ended
        # workers' process objects hold them in reference cycles, and so may a traceback.
        del self._pool
        multiprocessing.active_children()  # reaps the ended workers' process objects
        gc.collect()

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        from concurrent.futures.process import BrokenProcessPool

        answer: Future[BatchResult] = Future()
        try:
            sent = self._pool.submit(_run, job)
        except BrokenProcessPool as exc:
            answer.set_exception(_died(exc))
            return answer

        def hand_on(done: Future[BatchResult]) -> None:
            try:
                answer.set_result(done.result())
            except BrokenProcessPool as exc:
                answer.set_exception(_died(exc))
            except BaseException as exc:  # noqa: BLE001 - the batch's own error, as it was
                answer.set_exception(exc)

        sent.add_done_callback(hand_on)
        return answer


def _died(exc: Exception) -> BatchProcessDied:
    return BatchProcessDied(
        f"a batch worker process ended unexpectedly ({exc}); what was written stays, and the "
        "next cycle fetches the rest"
    )


@dataclass
class _Worker:
    connector: RecordStream
    mirror: Mirror


#: this worker process's connector and mirror, or why they could not be built
_WORKER: _Worker | BaseException | None = None


def _start(assignment: Assignment, stop: Any) -> None:
    """Build the worker's connector and mirror as the starting process built its own. Ctrl-C
    is left to that process, which stops handing out batches and records the run's end."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with(os.getppid(), stop)
    from workers.logs import configure
    from workers.memory import return_large_blocks

    return_large_blocks()
    configure(level=assignment.log_level)
    try:
        from workers.app import App

        app = App.open(assignment.config, migrate=False)
        connector = app.connector(assignment.source).stream(assignment.stream)
        _WORKER = _Worker(connector, app.mirror_of(assignment.stream))
    except Exception as exc:  # noqa: BLE001 - raised by every batch, which says what it was
        _WORKER = _portable(exc)


def _end_with(parent: int, stop: Any) -> None:
    """End this worker at once when the cycle has failed or was interrupted (`stop`), or the
    process that started it has gone (killed): nothing else would end a worker waiting for a
    batch, since it holds both ends of that pipe. A batch under way is rolled back with the
    connection."""

    def watch() -> None:
        while os.getppid() == parent and not stop.value:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _run(job: BatchJob) -> BatchResult:
    worker = _WORKER
    if not isinstance(worker, _Worker):
        raise worker or RuntimeError("the batch worker process did not start")
    before = worker.connector.requests
    try:
        result = job.run(worker.connector, worker.mirror)
    except Exception as exc:  # noqa: BLE001 - sent back to the cycle, which records it
        raise _portable(exc) from None
    return dataclasses.replace(result, requests=worker.connector.requests - before)


def _portable(exc: BaseException) -> BaseException:
    from workers.logs import describe_error

    return portable(exc, lambda gone: BatchFailed(describe_error(gone)))
