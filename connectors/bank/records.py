"""What a bank statement file turns into: normalized transactions and per-statement summaries.

Parsers (one module per format in this package) yield `BankTransaction`s one at a time, so a file
of any size is read in constant memory; the store writes them and never sees the file format.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", re.ASCII)


def is_iban_shaped(value: str | None) -> bool:
    """Country, two check digits, 11-30 letters or digits. The checksum is not verified: bank
    sample files are anonymised with IBANs whose checksum fails, and they are still IBANs."""
    return value is not None and _IBAN_SHAPE.fullmatch(value) is not None


class BankFileError(ValueError):
    """A file that cannot be imported: names the file, its format and where it broke.

    Raised for anything unreadable (truncated, malformed, wrongly encoded, hostile, unsupported);
    an import that meets one writes nothing of that file.
    """

    def __init__(self, file: str, format: str | None, where: str | None, problem: str) -> None:
        self.file, self.format, self.where, self.problem = file, format, where, problem
        parts = [file, format or "unknown format", where, problem]
        super().__init__(": ".join(p for p in parts if p))

    def __reduce__(self) -> tuple[type[BankFileError], tuple[str, str | None, str | None, str]]:
        # the message is built from the four parts; pickling keeps the parts (a parser in a
        # child process raises it in the parent)
        return type(self), (self.file, self.format, self.where, self.problem)


@dataclass(slots=True)
class BankTransaction:
    """One booked transaction; `amount` is signed: money in is positive.

    Not frozen: a frozen dataclass costs four times as much to build (2.5 against 0.6 us, each
    field set through `object.__setattr__`), and a large import builds one per transaction in
    the parsing process and again in the importer. Nothing changes one once built."""

    #: the statement's account (IBAN where the file gives one; None if the file names none)
    account_iban: str | None
    booking_date: dt.date
    value_date: dt.date | None
    amount: Decimal
    currency: str
    counterparty_name: str | None
    counterparty_iban: str | None
    #: free remittance text (camt `Ustrd` joined, MT940 `/REMI/USTD//` or the whole `:86:`)
    description: str | None
    #: a structured reference (camt `Strd/CdtrRefInf/Ref`, MT940 `/REMI/STRD/CUR/...`, CSV column)
    payment_reference: str | None
    #: who issued that reference: `CUR` (Dutch betalingskenmerk), `ISO` (RF creditor reference)...
    payment_reference_issuer: str | None
    end_to_end_id: str | None
    #: the bank's own id of the transaction when it gives a stable one (camt AcctSvcrRef/NtryRef)
    bank_reference: str | None
    reversal: bool
    #: a returned payment's reason code (camt `RtrInf/Rsn/Cd`, e.g. `AC06`)
    return_reason: str | None
    #: the transaction's fragment of the source file, verbatim (an XML element, MT940 lines, a row)
    raw: str
    #: 0-based index of the statement within the file
    statement: int = 0


@dataclass(slots=True)
class StatementSummary:
    """Filled in while the file is read; complete once its transactions are exhausted."""

    index: int
    #: the account as the file names it (an IBAN, or a bank's own account number)
    account: str | None
    statement_id: str | None = None
    currency: str | None = None
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    transactions: int = 0
    total: Decimal = field(default_factory=Decimal)

    def balance_problem(self) -> str | None:
        """Why opening balance + transactions is not the closing balance, if it is not."""
        if self.opening_balance is None or self.closing_balance is None:
            return None
        expected = self.opening_balance + self.total
        if expected == self.closing_balance:
            return None
        return (
            f"statement {self.statement_id or self.index + 1}: opening {self.opening_balance} "
            f"+ transactions {self.total} = {expected}, but the closing balance is "
            f"{self.closing_balance}"
        )
