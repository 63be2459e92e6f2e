"""What the bank parser tests share: opening a file through one parser (its `sniff` must claim
it), and the settings every parser's fuzz tests run under."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, settings

from connectors.bank.base import HEAD_BYTES, BankFile
from connectors.bank.records import BankFileError, BankTransaction

#: deterministic, no example database on disk, fast enough for `make test`
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def open_with(module: ModuleType, parser: type[BankFile], path: Path) -> BankFile:
    assert module.sniff(path, path.read_bytes()[:HEAD_BYTES]) is parser
    return parser(path)


def parse_with(
    module: ModuleType, parser: type[BankFile], path: Path
) -> tuple[BankFile, list[BankTransaction]]:
    bank_file = open_with(module, parser, path)
    return bank_file, list(bank_file.transactions())


def parses_or_refuses(
    module: ModuleType, parser: type[BankFile], path: Path, *, sniff_may_refuse: bool = True
) -> None:
    """What fuzzing asks of a parser: for any content, transactions with exact amounts or a
    `BankFileError`, nothing else (and from `sniff`, when it must not refuse, not even that)."""
    try:
        module.sniff(path, path.read_bytes()[:HEAD_BYTES])
    except BankFileError:
        if not sniff_may_refuse:
            raise
    try:
        for transaction in parser(path).transactions():
            assert isinstance(transaction.amount, Decimal)
    except BankFileError:
        pass
