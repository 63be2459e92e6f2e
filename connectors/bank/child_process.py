"""A large bank file parsed by child processes, while this process writes what they have parsed.

Parsing holds the interpreter (lxml hands every element to Python), and so do turning the
transactions into rows and copying them out: in one process they take turns on one core. Child
processes parse on the other cores instead, so a large import costs about the parse alone, shared
out. A camt.053 is cut into parts (`camt053_parts`), each child parsing its parts into files of
their own that this process reads in file order; a file that cannot be cut is read by children
each taking every n-th entry, sent over their stdout and merged entry by entry. Either way the
children send framed pickles: chunks of transactions as tuples, then the statements' summaries,
or the error that stopped them. Nothing here touches the database.

    python -m connectors.bank.child_process MODULE:CLASS FILE share INDEX COUNT
    python -m connectors.bank.child_process MODULE:CLASS FILE part PARTS N:OUTPUT...
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
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from connectors.bank.base import BankFile
from connectors.bank.records import BankTransaction, StatementSummary
from connectors.portable import portable

#: transactions per message: large enough that pickling is cheap, small enough to start early
CHUNK = 1000
_FIELDS = tuple(f.name for f in dataclasses.fields(BankTransaction))
_values = operator.attrgetter(*_FIELDS)
#: the environment variable that tells a child its importer's process id (it may be gone
#: before the child gets to ask for its parent)
PARENT_PID_ENV = "INVOICE_SYNC_IMPORTER_PID"
#: the directory `connectors` is imported from, for the child's `sys.path`
_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class ParserProcessDied(RuntimeError):
    """A parsing process died without saying why (killed, out of memory, a broken install)."""


class SplitFailed(RuntimeError):
    """A part of a cut file did not parse, or did not fit the part before it: the file is to be
    read again without cutting (which says what is wrong with it, if anything)."""


def _frame(message: tuple[str, Any, int]) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(8, "little") + payload


def _spawn(
    bank_file: InChildProcess, job: list[str], errors: IO[bytes], pipe: bool
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_ROOT, env.get("PYTHONPATH"))))
    env[PARENT_PID_ENV] = str(os.getpid())
    return subprocess.Popen(
        [sys.executable, "-m", __name__, bank_file.parser, str(bank_file.path), *job],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipe else subprocess.DEVNULL,
        stderr=errors,
        env=env,
    )


class _Child:
    """What one parsing process sends for one stream of work, not yet handed on: read from its
    pipe as it comes (a share of the entries), or from a file it writes ahead, without waiting
    for this process to read it (a part of a cut file)."""

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        errors: IO[bytes],
        output: IO[bytes] | None = None,
    ) -> None:
        self.name = name
        self.process = process
        self.errors = errors
        stream = process.stdout if output is None else output
        assert stream is not None
        self.stream: IO[bytes] = stream
        self.items: deque[tuple[int, tuple[Any, ...]]] = deque()
        #: every entry before this one has been sent whole
        self.watermark = 0
        self.statements: list[StatementSummary] | None = None
        self.error: BaseException | None = None

    @property
    def ended(self) -> bool:
        return self.statements is not None or self.error is not None

    def receive(self) -> None:
        """Read the next message (waits until the process has sent one)."""
        header = self._exactly(8)
        payload = self._exactly(int.from_bytes(header, "little")) if header else None
        if not payload:
            code = self.process.wait()
            self.errors.seek(0)
            said = self.errors.read()[-2000:].decode("utf-8", "replace").strip()
            self.error = ParserProcessDied(
                f"the process parsing {self.name} ended unexpectedly (exit code {code})"
                + (f": {said.splitlines()[-1]}" if said else "")
            )
            return
        kind, body, self.watermark = pickle.loads(payload)
        if kind == "chunk":
            self.items.extend(body)
        elif kind == "done":
            self.statements = body
        else:
            self.error = body

    def _exactly(self, size: int) -> bytes | None:
        """`size` bytes, waiting for a file still being written; None once the process has
        ended without writing them."""
        data = bytearray()
        while len(data) < size:
            chunk = self.stream.read(size - len(data))
            if chunk:
                data += chunk
            elif self.process.poll() is not None:
                chunk = self.stream.read(size - len(data))  # written just before it ended
                if not chunk:
                    return None
                data += chunk
            else:
                time.sleep(0.002)
        return bytes(data)


def _part_file(stack: contextlib.ExitStack) -> tuple[IO[bytes], str]:
    """A file for a child to write a part into, opened here for reading first: the child
    removes its name once it has opened it, so that nothing is left on disk however this
    process ends (the name is removed here too, if the child never got that far)."""
    handle, name = tempfile.mkstemp(prefix="invoice-sync-part-")
    stream = stack.enter_context(os.fdopen(handle, "rb"))
    stack.callback(_remove, name)
    return stream, name


def _remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:  # a consumer stopped early: nothing is left running
        process.kill()
    process.wait()


class InChildProcess(BankFile):
    """Streams `parser`'s transactions, parsed by child processes and put back in file order;
    `statements` are complete once the stream is exhausted, as with the parser itself.

    A file the format can cut (camt.053) is cut into twice as many parts as processes, each
    parsed as a document of its own; one that cannot be cut is read by several processes each
    reading every n-th entry (each parses the whole file), if the format can skip entries, else
    by one process."""

    def __init__(self, parser: BankFile, processes: int | None = None, cut: bool = True) -> None:
        super().__init__(parser.path)
        self.format = parser.format
        self._parser = parser
        #: the parser's class, which the child imports alone (not every format's)
        self.parser = f"{type(parser).__module__}:{type(parser).__qualname__}"
        self.cutting = cut
        #: how many processes read the file: by default one per core (up to 4) for a format
        #: that can be cut or skip entries; the writer needs little of a core
        self.processes = 1
        if parser.shares_entries:
            self.processes = max(1, processes or min(4, os.cpu_count() or 1))
        #: the parsing processes while the stream is open (and after, for their exit codes)
        self.children: list[subprocess.Popen[bytes]] = []

    def whole(self) -> InChildProcess:
        """The same file, read without cutting it (after `SplitFailed`)."""
        return InChildProcess(self._parser, self.processes, cut=False)

    def transactions(self) -> Iterator[BankTransaction]:
        count = self.processes
        # twice as many parts as processes: the importer reads a part while the next are parsed,
        # and only the last is left to it once parsing ends
        parts = self._parser.cut(2 * count) if self.cutting and count > 1 else None
        with contextlib.ExitStack() as stack:
            readers: list[_Child] = []
            by_part: dict[int, _Child] = {}
            processes: list[subprocess.Popen[bytes]] = []
            for index in range(count):
                errors = stack.enter_context(tempfile.TemporaryFile())
                if parts:
                    mine = range(index, len(parts), count)
                    if not mine:
                        continue
                    outputs = {number: _part_file(stack) for number in mine}
                    job = ["part", str(2 * count), *(f"{n}:{o[1]}" for n, o in outputs.items())]
                    process = _spawn(self, job, errors, pipe=False)
                    by_part.update(
                        (n, _Child(self.name, process, errors, o[0])) for n, o in outputs.items()
                    )
                else:
                    process = _spawn(self, ["share", str(index), str(count)], errors, pipe=True)
                    readers.append(_Child(self.name, process, errors))
                processes.append(process)
                stack.callback(_stop, process)
            readers += [by_part[number] for number in sorted(by_part)]
            for reader in readers:
                stack.callback(reader.stream.close)
            self.children = processes
            if parts:
                yield from self._in_order(readers)
            else:
                yield from self._merge(readers)

    def _in_order(self, children: list[_Child]) -> Iterator[BankTransaction]:
        """Part after part; a part that fails or does not continue the statement the part
        before it ended in raises `SplitFailed`."""
        make = BankTransaction
        statements: list[StatementSummary] = []
        for child in children:
            while not child.ended:
                child.receive()
                while child.items:
                    yield make(*child.items.popleft()[1])
            if child.error is not None:
                raise SplitFailed(f"{self.name}: a part did not parse: {child.error}")
            assert child.statements is not None
            _continue(statements, child.statements, self.name)
        self.statements = statements

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
                raise ParserProcessDied("the parsing processes read different statements")
            for summary, other in zip(first, others, strict=True):
                summary.transactions += other.transactions
                summary.total += other.total
                summary.currency = summary.currency or other.currency
        return first


def _continue(statements: list[StatementSummary], more: list[StatementSummary], name: str) -> None:
    """Append a part's statements; its first is the one the previous part ended in, read from
    the same header (account, id, balances), whose entries are added up."""
    if statements:
        last = statements[-1]
        first = more[0] if more else None
        if first is None or _header(first) != _header(last):
            raise SplitFailed(f"{name}: a part does not continue the statement before it")
        last.transactions += first.transactions
        last.total += first.total
        last.currency = last.currency or first.currency
        more = more[1:]
    expected = statements[-1].index + 1 if statements else 0
    for summary in more:
        if summary.index != expected:
            raise SplitFailed(f"{name}: a part's statements are not numbered as expected")
        statements.append(summary)
        expected += 1


def _header(summary: StatementSummary) -> tuple[Any, ...]:
    """What a statement says before its entries: every part that reads it reads this alike."""
    return (
        summary.index,
        summary.account,
        summary.statement_id,
        summary.opening_balance,
        summary.closing_balance,
    )


def _portable(exc: BaseException) -> BaseException:
    return portable(exc, lambda gone: RuntimeError(f"{type(gone).__name__}: {gone}"))


def serve(parser_class: str, path: Path, job: list[str], out: IO[bytes] | None) -> None:
    """Parse `path` and send what `_Child.receive` reads: chunks of (entry, values), then the
    statements or the error, each with the number of entries read so far. `job` is
    `share INDEX COUNT` (every COUNT-th entry, to `out`) or `part PARTS N:FILE...` (part N of
    the file cut in PARTS, to FILE, for each given)."""
    module, _, name = parser_class.partition(":")
    make = getattr(importlib.import_module(module), name)
    if job[0] == "share":
        assert out is not None
        parser = make(path)
        parser.share = (int(job[1]), int(job[2]))
        _send_all(parser, out)
        return
    parts: Sequence[Any] | None = None
    outputs: list[tuple[str, IO[bytes]]] = []
    for assignment in job[2:]:  # every name removed at once: the parent reads its own handles
        number, _, output = assignment.partition(":")
        outputs.append((number, open(output, "wb")))  # noqa: SIM115 - closed below
        _remove(output)
    for number, written in outputs:
        with written:
            parser = make(path)
            try:
                parts = parser.cut(int(job[1])) if parts is None else parts
                if not parts or int(number) >= len(parts):
                    raise ValueError("the file no longer cuts into the parts it was cut into")
                parser.read_only(parts[int(number)])
            except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
                _send(written, "error", _portable(exc), 0)
                continue
            _send_all(parser, written)


#: the importer that started this process (from `PARENT_PID_ENV`, set in `main`): a part's
#: output is a file, which a parent gone away does not close, so each message first checks that
#: this process is still its child
_PARENT: int | None = None


def _send(out: IO[bytes], kind: str, payload: Any, position: int) -> None:
    if _PARENT is not None and os.getppid() != _PARENT:
        os._exit(1)  # orphaned (the importer was killed): nobody will read the rest
    out.write(_frame((kind, payload, position)))
    out.flush()


def _send_all(parser: BankFile, out: IO[bytes]) -> None:
    """The parser's transactions in chunks, then its statements, or the error that stopped it."""
    try:
        chunk: list[tuple[int, tuple[Any, ...]]] = []
        for transaction in parser.transactions():
            chunk.append((parser.position, _values(transaction)))
            if len(chunk) >= CHUNK:
                _send(out, "chunk", chunk, parser.position)
                chunk = []
        if chunk:
            _send(out, "chunk", chunk, parser.position)
        _send(out, "done", parser.statements, parser.position)
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        _send(out, "error", _portable(exc), parser.position)


def main() -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and a parent gone away ends
    # this process at its next message (a broken pipe, or `_send` finding it orphaned).
    global _PARENT
    _PARENT = int(os.environ.get(PARENT_PID_ENV) or os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser, path, *job = sys.argv[1:]
    out = os.fdopen(os.dup(1), "wb") if job[0] == "share" else None
    os.dup2(2, 1)  # whatever else might print stays out of the message stream
    try:
        serve(parser, Path(path), job, out)
    except BrokenPipeError:
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
