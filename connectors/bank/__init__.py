"""Bank statement files as a source: detect the format from the content, then parse it.

`open_bank_file(path)` returns a `BankFile` whose `transactions()` streams `BankTransaction`s and
whose `statements` are complete once that stream is exhausted. Parsers never touch the database.
"""

from __future__ import annotations

from connectors.bank.base import BankFile, open_bank_file
from connectors.bank.records import BankFileError, BankTransaction, StatementSummary

__all__ = ["BankFile", "BankFileError", "BankTransaction", "StatementSummary", "open_bank_file"]
