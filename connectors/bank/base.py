"""The interface every bank file parser fills in, and the dispatch from content to parser."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from connectors.bank.records import BankFileError, BankTransaction, StatementSummary

#: bytes read from the start of a file to tell its format
HEAD_BYTES = 4096


class BankFile(abc.ABC):
    #: `camt053`, `mt940` or `csv`: what `bank_imports.format` and `bank_transactions.origin` say
    format: str
    #: whether `share` is honoured: the format can skip an entry without reading it, so several
    #: processes can each read a share of one file (camt.053)
    shares_entries: ClassVar[bool] = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.statements: list[StatementSummary] = []
        #: read only the entries whose number modulo `share[1]` is `share[0]` (the statements'
        #: other fields are read whole); a statement's `transactions` and `total` then count
        #: this share alone
        self.share = (0, 1)
        #: entries ended so far, read or skipped: the number of the entry being read
        self.position = 0

    @property
    def name(self) -> str:
        return self.path.name

    def error(self, where: str | None, problem: str) -> BankFileError:
        return BankFileError(self.name, self.format, where, problem)

    def cut(self, parts: int) -> Sequence[Any] | None:
        """The file in up to `parts` parts that each parse on their own (`read_only`), or None
        where the format or this file cannot be cut."""
        return None

    def read_only(self, part: Any) -> None:
        """Read only `part` of the file (one of `cut`'s); its statements keep their indexes."""
        raise NotImplementedError(f"{self.format} files are not cut into parts")

    @abc.abstractmethod
    def transactions(self) -> Iterator[BankTransaction]:
        """Stream the file's transactions in file order; raise `BankFileError` where it breaks."""


def detect(path: Path, head: bytes) -> type[BankFile]:
    """The parser for this content (never the file name); unsupported formats are refused by
    name (camt.052/054, MT942, ...)."""
    import connectors.bank.camt053 as camt053
    import connectors.bank.csv_export as csv_export
    import connectors.bank.mt940 as mt940

    for module in (camt053, mt940, csv_export):
        parser = module.sniff(path, head)
        if parser is not None:
            return parser
    raise BankFileError(path.name, None, None, "not a camt.053, MT940 or bank CSV file")


def open_bank_file(path: Path) -> BankFile:
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as exc:
        raise BankFileError(path.name, None, None, f"cannot be read: {exc.strerror}") from None
    if not head.strip():
        raise BankFileError(path.name, None, None, "the file is empty")
    return detect(path, head)(path)
