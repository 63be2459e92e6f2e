"""Import one bank statement file: the one function the command line and the daemon's inbox call.

Parse (streaming) -> give each transaction its account and dedup key -> write all of it in one
database transaction, or nothing -> record the import in `bank_imports`. A file that cannot be
read imports nothing and says exactly why; one that does not balance imports with a warning.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.bank import BankFile, BankFileError, BankTransaction, open_bank_file
from connectors.bank.child_process import InChildProcess, SplitFailed
from connectors.bank.records import is_iban_shaped
from store.bank import BankStore, transaction_row
from store.mirror import utcnow

#: a bank reference longer than this is hashed into the key (the column holds 80)
_MAX_REFERENCE = 72
#: files this large are parsed by a process of their own while this one writes (below it,
#: starting that process costs more than the overlap gains)
IN_CHILD_FROM_BYTES = 2 * 1024 * 1024


class AccountError(ValueError):
    """`--account` is missing, malformed, or contradicts the file."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    file: str
    format: str | None
    accounts: tuple[str, ...]
    statements: int
    new: int
    present: int
    balance_check: str | None
    status: str
    error: str | None
    import_id: int | None = None

    def line(self) -> str:
        """What `import-bank` prints for the file."""
        if self.status != "ok":
            return f"{self.file}: FAILED: {self.error}"
        balance = self.balance_check or "no balances in the file"
        if self.balance_check not in (None, "ok"):
            balance = f"WARNING: does not balance: {self.balance_check}"
        return (
            f"{self.file}: {self.format}, account {', '.join(self.accounts) or '-'}, "
            f"{self.statements} statement(s), {self.new} new, {self.present} already present; "
            f"balance check: {balance}"
        )


def normalize_account(value: str) -> str:
    """An account as typed by a person (`--account`): must be a valid IBAN, checksum included."""
    from stdnum import iban
    from stdnum.exceptions import ValidationError

    try:
        return str(iban.validate(value))
    except ValidationError as exc:
        raise AccountError(f"--account {value!r} is not a valid IBAN ({exc})") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dedup_key(tx: BankTransaction, account: str, occurrence: int) -> str:
    """The bank's own reference where it gives a stable one; otherwise what a person would
    call "the same transaction": account, date, amount, counterparty, text, and which of the
    identical ones of that statement it is (so two identical payments on one day stay two)."""
    if tx.bank_reference:
        if len(tx.bank_reference) <= _MAX_REFERENCE:
            return f"ref:{tx.bank_reference}"
        return "ref#" + hashlib.sha256(tx.bank_reference.encode()).hexdigest()[:64]
    return "hash:" + _identity(tx, account, occurrence)


def _identity(tx: BankTransaction, account: str, occurrence: int | None) -> str:
    amount = format(tx.amount.normalize(), "f") if tx.amount else "0"
    parts = (
        account,
        tx.booking_date.isoformat(),
        amount,
        tx.currency,
        tx.counterparty_iban or "",
        tx.counterparty_name or "",
        tx.description or "",
        tx.payment_reference or "",
        tx.end_to_end_id or "",
        "" if occurrence is None else str(occurrence),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]


class _Rows:
    """Turns the parser's stream into rows for the store, resolving each transaction's account
    and counting identical transactions per statement for their dedup keys."""

    def __init__(
        self, bank_file: BankFile, account: str | None, import_id: int, origin_file: str
    ) -> None:
        self.bank_file = bank_file
        self.account = account
        self.import_id = import_id
        self.origin_file = origin_file
        self.accounts: dict[str, None] = {}
        self._seen: dict[str, int] = {}
        self._statement = -1
        self._last_account: tuple[str | None, str] = (None, "")

    def _account_of(self, tx: BankTransaction) -> str:
        """The account a transaction is booked on; a statement's transactions all name the same
        one, so the last answer is kept for the next."""
        if tx.account_iban == self._last_account[0] and tx.account_iban is not None:
            return self._last_account[1]
        account = self._resolve_account(tx)
        self._last_account = (tx.account_iban, account)
        return account

    def _resolve_account(self, tx: BankTransaction) -> str:
        named = tx.account_iban.replace(" ", "").upper() if tx.account_iban else None
        if is_iban_shaped(named):
            assert named is not None
            if self.account is not None and named != self.account:
                raise AccountError(
                    f"the file is for account {named}, but --account says {self.account}"
                )
            return named
        if self.account is not None:
            return self.account
        what = (
            f"names its account {tx.account_iban!r}, which is not an IBAN"
            if named
            else ("names no account")
        )
        raise AccountError(f"the file {what}; pass --account IBAN")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        now = utcnow()
        for tx in self.bank_file.transactions():
            if tx.statement != self._statement:
                self._statement, self._seen = tx.statement, {}
            account = self._account_of(tx)
            self.accounts.setdefault(account)
            if tx.bank_reference:
                occurrence = 0
            else:
                identity = _identity(tx, account, None)
                occurrence = self._seen.get(identity, 0)
                self._seen[identity] = occurrence + 1
            yield transaction_row(
                tx,
                account=account,
                origin=self.bank_file.format,
                dedup_key=dedup_key(tx, account, occurrence),
                imported_at=now,
                origin_file=self.origin_file,
                import_id=self.import_id,
            )


def _describe(name: str, exc: Exception) -> str:
    if isinstance(exc, BankFileError):
        return str(exc)
    if isinstance(exc, AccountError):
        return f"{name}: {exc}"
    from workers.logs import describe_error, get_logger

    get_logger(file=name).debug("bank import failed", exc_info=True)
    return f"{name}: {describe_error(exc)}"


def import_bank_file(store: BankStore, path: Path, account: str | None = None) -> ImportResult:
    """Import one file: all of it or nothing, recorded in `bank_imports` either way."""
    name = path.name
    try:
        sha256 = sha256_of(path)
    except OSError as exc:
        return ImportResult(name, None, (), 0, 0, 0, None, "failed", f"{name}: {exc.strerror}")
    import_id = store.start_import(name, sha256, utcnow())
    bank_file: BankFile | None = None
    rows: _Rows | None = None
    try:
        bank_file = open_bank_file(path)
        if path.stat().st_size >= IN_CHILD_FROM_BYTES and sys.executable:
            bank_file = InChildProcess(bank_file)
        origin_file = f"{name} sha256:{sha256}"
        rows = _Rows(bank_file, account, import_id, origin_file)
        try:
            written = store.write(rows)
        except SplitFailed:  # nothing was kept: read the file whole, which says what is wrong
            assert isinstance(bank_file, InChildProcess)
            bank_file = bank_file.whole()
            rows = _Rows(bank_file, account, import_id, origin_file)
            written = store.write(rows)
    except Exception as exc:  # whatever broke, the file imports nothing and says why
        error = _describe(name, exc)
        store.finish_import(
            import_id,
            utcnow(),
            status="failed",
            error=error,
            format=bank_file.format if bank_file else None,
        )
        return ImportResult(
            name,
            bank_file.format if bank_file else None,
            (),
            0,
            0,
            0,
            None,
            "failed",
            error,
            import_id,
        )
    problems = [p for s in bank_file.statements if (p := s.balance_problem())]
    has_balances = any(s.closing_balance is not None for s in bank_file.statements)
    balance = "; ".join(problems) if problems else ("ok" if has_balances else None)
    accounts = tuple(rows.accounts)
    result = ImportResult(
        name,
        bank_file.format,
        accounts,
        len(bank_file.statements),
        written.new,
        written.present,
        balance,
        "ok",
        None,
        import_id,
    )
    store.finish_import(
        import_id,
        utcnow(),
        status="ok",
        format=bank_file.format,
        accounts=", ".join(accounts) or None,
        statements=result.statements,
        transactions_new=result.new,
        transactions_present=result.present,
        balance_check=balance,
    )
    return result
