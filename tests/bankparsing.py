"""What the bank parser tests share: opening a file through one parser (its `sniff` must claim
it), and the settings every parser's fuzz tests run under."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, settings

from connectors.bank.base import HEAD_BYTES, BankFile
from connectors.bank.records import BankTransaction

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
