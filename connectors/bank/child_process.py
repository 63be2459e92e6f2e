"""A large bank file parsed in a process of its own, while this one writes what it has parsed.

Parsing holds the interpreter (lxml hands every element to Python), and so do turning the
transactions into rows and copying them out: in one process they take turns on one core. A child
process parses on the other core instead, so a large import costs about the parse alone. The
child speaks pickle over its stdout: chunks of transactions as tuples, then the statements'
summaries, or the error that stopped it. Nothing here touches the database.

    python -m connectors.bank.child_process FILE   (what the parent runs; not a user command)
"""

from __future__ import annotations

import dataclasses
import operator
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from connectors.bank.base import BankFile, open_bank_file
from connectors.bank.records import BankTransaction

#: transactions per message: large enough that pickling is cheap, small enough to start early
CHUNK = 1000
_FIELDS = tuple(f.name for f in dataclasses.fields(BankTransaction))
_values = operator.attrgetter(*_FIELDS)
#: the directory `connectors` is imported from, for the child's `sys.path`
_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class ChildProcessError(RuntimeError):
    """The parsing process died without saying why (killed, out of memory, a broken install)."""


class InChildProcess(BankFile):
    """Streams `parser`'s transactions, parsed by a child process; `statements` are complete once
    the stream is exhausted, as with the parser itself."""

    def __init__(self, parser: BankFile) -> None:
        super().__init__(parser.path)
        self.format = parser.format
        #: the parsing process while the stream is open (and after, for its exit code)
        self.process: subprocess.Popen[bytes] | None = None

    def transactions(self) -> Iterator[BankTransaction]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_ROOT, env.get("PYTHONPATH"))))
        with tempfile.TemporaryFile() as errors:
            child = self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
            assert child.stdout is not None
            try:
                yield from self._receive(child.stdout, child, errors)
            finally:
                # a consumer that stops early (its write failed) leaves nothing running
                child.stdout.close()
                if child.poll() is None:
                    child.kill()
                child.wait()

    def _receive(
        self, stream: IO[bytes], child: subprocess.Popen[bytes], errors: IO[bytes]
    ) -> Iterator[BankTransaction]:
        make = BankTransaction
        while True:
            try:
                kind, payload = pickle.load(stream)
            except (EOFError, pickle.UnpicklingError):
                code = child.wait()
                errors.seek(0)
                said = errors.read()[-2000:].decode("utf-8", "replace").strip()
                raise ChildProcessError(
                    f"the process parsing {self.name} ended unexpectedly (exit code {code})"
                    + (f": {said.splitlines()[-1]}" if said else "")
                ) from None
            if kind == "chunk":
                for values in payload:
                    yield make(*values)
            elif kind == "done":
                self.statements = payload
                return
            else:
                raise payload


def _portable(exc: BaseException) -> BaseException:
    """The exception itself where it survives pickling, else one that says the same."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip means: send words instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def serve(path: Path, out: IO[bytes]) -> None:
    """Parse `path` and send what the parent's `_receive` reads."""

    def send(message: tuple[str, Any]) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        parser = open_bank_file(path)
        chunk: list[tuple[Any, ...]] = []
        for transaction in parser.transactions():
            chunk.append(_values(transaction))
            if len(chunk) >= CHUNK:
                send(("chunk", chunk))
                chunk = []
        if chunk:
            send(("chunk", chunk))
        send(("done", parser.statements))
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        send(("error", _portable(exc)))
    out.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and a parent gone away ends
    # this process at its next write (a broken pipe).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else might print stays out of the pickle stream
    try:
        serve(Path(sys.argv[1]), out)
    except BrokenPipeError:
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
