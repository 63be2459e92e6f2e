"""A large bank file parsed in a process of its own, while this one writes what it has parsed.

Parsing holds the interpreter (lxml hands every element to Python), and so do turning the
transactions into rows and copying them out: in one process they take turns on one core. A child
process parses on the other core instead, so a large import costs about the parse alone. The
child speaks pickle over its stdout: chunks of transactions as tuples, then the statements'
summaries, or the error that stopped it. Nothing here touches the database.

    python -m connectors.bank.child_process MODULE:CLASS FILE INDEX COUNT   (what the parent runs)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import operator
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from connectors.bank.base import BankFile
from connectors.bank.records import BankTransaction, StatementSummary

#: transactions per message: large enough that pickling is cheap, small enough to start early
CHUNK = 1000
_FIELDS = tuple(f.name for f in dataclasses.fields(BankTransaction))
_values = operator.attrgetter(*_FIELDS)
#: the directory `connectors` is imported from, for the child's `sys.path`
_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class ChildProcessError(RuntimeError):
    """A parsing process died without saying why (killed, out of memory, a broken install)."""


class _Child:
    """One parsing process and what it has sent that has not been handed on yet."""

    def __init__(self, bank_file: InChildProcess, share: tuple[int, int], errors: IO[bytes]):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_ROOT, env.get("PYTHONPATH"))))
        self.name = bank_file.name
        self.errors = errors
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                bank_file.parser,
                str(bank_file.path),
                *map(str, share),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        assert self.process.stdout is not None
        self.stream: IO[bytes] = self.process.stdout
        self.items: deque[tuple[int, tuple[Any, ...]]] = deque()
        #: every entry before this one has been sent whole
        self.watermark = 0
        self.statements: list[StatementSummary] | None = None
        self.error: BaseException | None = None

    @property
    def ended(self) -> bool:
        return self.statements is not None or self.error is not None

    def receive(self) -> None:
        """Read the next message (blocks until the process sends one)."""
        try:
            kind, payload, self.watermark = pickle.load(self.stream)
        except (EOFError, pickle.UnpicklingError):
            code = self.process.wait()
            self.errors.seek(0)
            said = self.errors.read()[-2000:].decode("utf-8", "replace").strip()
            self.error = ChildProcessError(
                f"the process parsing {self.name} ended unexpectedly (exit code {code})"
                + (f": {said.splitlines()[-1]}" if said else "")
            )
            return
        if kind == "chunk":
            self.items.extend(payload)
        elif kind == "done":
            self.statements = payload
        else:
            self.error = payload

    def stop(self) -> None:
        self.stream.close()
        if self.process.poll() is None:  # a consumer stopped early: nothing is left running
            self.process.kill()
        self.process.wait()


class InChildProcess(BankFile):
    """Streams `parser`'s transactions, parsed by child processes and put back in file order;
    `statements` are complete once the stream is exhausted, as with the parser itself."""

    def __init__(self, parser: BankFile, processes: int | None = None) -> None:
        super().__init__(parser.path)
        self.format = parser.format
        #: the parser's class, which the child imports alone (not every format's)
        self.parser = f"{type(parser).__module__}:{type(parser).__qualname__}"
        #: how many processes read the file: by default one per core (up to 4) for a format
        #: that can skip entries, each reading every n-th; the writer needs little of a core
        self.processes = 1
        if parser.shares_entries:
            self.processes = max(1, processes or min(4, os.cpu_count() or 1))
        #: the parsing processes while the stream is open (and after, for their exit codes)
        self.children: list[subprocess.Popen[bytes]] = []

    def transactions(self) -> Iterator[BankTransaction]:
        with contextlib.ExitStack() as stack:
            children: list[_Child] = []
            for index in range(self.processes):
                errors = stack.enter_context(tempfile.TemporaryFile())
                children.append(_Child(self, (index, self.processes), errors))
                stack.callback(children[-1].stop)
            self.children = [c.process for c in children]
            yield from self._merge(children)

    def _merge(self, children: list[_Child]) -> Iterator[BankTransaction]:
        """Entry by entry, from the process that read it (each sends its entries in order)."""
        make = BankTransaction
        count = len(children)
        entry = 0
        while True:
            child = children[entry % count]
            while True:
                items = child.items
                if items:
                    if items[0][0] == entry:
                        yield make(*items.popleft()[1])
                        continue
                    break  # its next item is a later entry's
                if child.watermark > entry:
                    break
                if child.error is not None:
                    raise child.error
                if child.statements is not None:
                    self.statements = self._finish(children)
                    return
                child.receive()
            entry += 1

    @staticmethod
    def _finish(children: list[_Child]) -> list[StatementSummary]:
        """Every process read every statement; each counted only its share of the entries."""
        for child in children:
            while not child.ended:
                child.receive()
                child.items.clear()
            if child.error is not None:
                raise child.error
        first = children[0].statements
        assert first is not None
        for child in children[1:]:
            others = child.statements
            assert others is not None
            if len(others) != len(first):
                raise ChildProcessError("the parsing processes read different statements")
            for summary, other in zip(first, others, strict=True):
                summary.transactions += other.transactions
                summary.total += other.total
                summary.currency = summary.currency or other.currency
        return first


def _portable(exc: BaseException) -> BaseException:
    """The exception itself where it survives pickling, else one that says the same."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip means: send words instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def serve(parser_class: str, path: Path, share: tuple[int, int], out: IO[bytes]) -> None:
    """Parse `path`'s share and send what `_Child.receive` reads: chunks of (entry, values),
    then the statements or the error, each with the number of entries read so far."""
    parser: BankFile | None = None

    def send(kind: str, payload: Any) -> None:
        position = parser.position if parser is not None else 0
        pickle.dump((kind, payload, position), out, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        module, _, name = parser_class.partition(":")
        parser = getattr(importlib.import_module(module), name)(path)
        assert isinstance(parser, BankFile)
        parser.share = share
        chunk: list[tuple[int, tuple[Any, ...]]] = []
        for transaction in parser.transactions():
            chunk.append((parser.position, _values(transaction)))
            if len(chunk) >= CHUNK:
                send("chunk", chunk)
                chunk = []
        if chunk:
            send("chunk", chunk)
        send("done", parser.statements)
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        send("error", _portable(exc))
    out.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and a parent gone away ends
    # this process at its next write (a broken pipe).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else might print stays out of the pickle stream
    try:
        parser, path, index, count = sys.argv[1:5]
        serve(parser, Path(path), (int(index), int(count)), out)
    except BrokenPipeError:
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
