"""Moneybird's bank transactions ("financial mutations") through their synchronization pair.

The same pair as sales invoices (`GET .../financial_mutations/synchronization.json` lists ids and
versions, `POST` fetches up to 100), behind the token's `bank` scope. The account a mutation is
booked on is a `financial_account_id`; its IBAN comes from `GET .../financial_accounts.json`,
read once per stream object (so once per inline cycle, once per daemon batch message). That
endpoint needs the `settings` scope; without it (or for an account it does not list) the account
is recorded as `moneybird:<financial account id>`, and a warning says why.

Assumptions the API does not state:
- `amount` is signed as the bank booked it (money in positive), as in Moneybird's own examples.
- The Moneybird id is the transaction's `bank_reference` (so it deduplicates against itself,
  never against a statement file of the same account: those are separate origins).
- A financial account whose `identifier` is not IBAN-shaped (a PSP or cash account) is recorded
  the same way, as `moneybird:<financial account id>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from connectors.bank.records import BankTransaction, is_iban_shaped
from connectors.base import NO_HISTORY, NOTHING_LISTED, Listing, ListingHistory
from connectors.errors import AuthError, ConnectorError
from connectors.moneybird.listing import VersionList, parse_listing
from connectors.parsing import parse_date, parse_decimal, parse_id
from connectors.records import RawJSON, RemoteBankTransaction

if TYPE_CHECKING:
    from connectors.moneybird.connector import MoneybirdConnector


class FinancialMutations:
    batch_size = 100
    ordered_versions = True

    def __init__(self, connector: MoneybirdConnector) -> None:
        self.name = connector.name
        self.client = connector.client
        self._connector = connector
        base = connector.administration_id
        self._path = f"{base}/financial_mutations/synchronization.json"
        self._accounts_path = f"{base}/financial_accounts.json"
        self._accounts: dict[str, str] | None = None

    @property
    def requests(self) -> int:
        return self.client.requests

    @property
    def throttled(self) -> int:
        return self.client.throttled

    def _scoped(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """A 403 here means the token lacks the `bank` scope: say so, and what to do."""
        try:
            return call(*args, **kwargs)
        except AuthError as exc:
            if "HTTP 403" not in str(exc):
                raise
            raise AuthError(
                f"{exc}; financial mutations need the token's `bank` scope: grant it, or set "
                "bank = false for this source"
            ) from None

    def listing(self, history: ListingHistory = NO_HISTORY) -> Listing:
        pairs = self.version_list()
        return Listing(streamed=pairs, digest=pairs.digest)

    def confirm_gone(self, remote_ids: Sequence[str]) -> list[str]:
        return list(remote_ids)  # the listing covers every mutation: it is its own proof

    def list_versions(self) -> dict[str, str]:
        return self.version_list().as_dict()

    def version_list(self) -> VersionList:
        self.accounts()
        return self._scoped(
            self.client.download,
            "GET",
            self._path,
            parse_listing,
            params={"filter": self._connector.period_filter()},
        )

    def accounts(self) -> dict[str, str]:
        """Financial account id -> the account as `bank_transactions.account_iban` holds it."""
        if self._accounts is None:
            try:
                listed = self.client.request_json("GET", self._accounts_path)
            except AuthError as exc:
                if "HTTP 403" not in str(exc):
                    raise
                structlog.get_logger("invoice_sync").warning(
                    "the token may not read financial accounts (scope `settings`): bank "
                    "transactions are recorded on account moneybird:<financial account id>",
                    source=self.name,
                )
                self._accounts = {}
                return self._accounts
            if not isinstance(listed, list):
                raise ConnectorError(f"{self.name}: financial accounts: expected a JSON array")
            accounts: dict[str, str] = {}
            for item in listed:
                if not isinstance(item, dict) or item.get("id") is None:
                    continue
                account_id = str(item["id"])
                identifier = re.sub(r"\s", "", str(item.get("identifier") or "")).upper()
                shaped = is_iban_shaped(identifier)
                accounts[account_id] = identifier if shaped else f"moneybird:{account_id}"
            self._accounts = accounts
        return self._accounts

    def fetch_batch(
        self, remote_ids: Sequence[str], listed: Mapping[str, RawJSON] = NOTHING_LISTED
    ) -> Iterator[tuple[Any, RawJSON]]:
        if len(remote_ids) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} ids per fetch, got {len(remote_ids)}")
        return self._scoped(
            self.client.request_json_array,
            "POST",
            self._path,
            json={"ids": [str(i) for i in remote_ids]},
        )

    def normalize(self, record: Any, raw: RawJSON) -> RemoteBankTransaction:
        if not isinstance(record, dict):
            raise ValueError(f"expected a financial mutation object, got {type(record).__name__}")
        from connectors.moneybird.connector import _currency, _version

        remote_id = parse_id(record.get("id"), "id")
        account_id = parse_id(record.get("financial_account_id"), "financial_account_id")
        account = self.accounts().get(account_id) or f"moneybird:{account_id}"
        booked = parse_date(record.get("date"), "date")
        if booked is None:
            raise ValueError("date: missing")
        sepa = record.get("sepa_fields") if isinstance(record.get("sepa_fields"), dict) else {}
        assert isinstance(sepa, dict)
        end_to_end = sepa.get("eref") or None
        contra = record.get("contra_account_number") or None
        return RemoteBankTransaction(
            remote_id=remote_id,
            remote_version=_version(record.get("version")),
            raw=raw,
            transaction=BankTransaction(
                account_iban=account,
                booking_date=booked,
                value_date=None,
                amount=parse_decimal(record.get("amount"), "amount"),
                currency=_currency(record.get("currency")),
                counterparty_name=record.get("contra_account_name") or None,
                counterparty_iban=str(contra) if contra else None,
                description=record.get("message") or None,
                payment_reference=None,
                payment_reference_issuer=None,
                end_to_end_id=str(end_to_end)
                if end_to_end and end_to_end != "NOTPROVIDED"
                else None,
                bank_reference=remote_id,
                reversal=False,
                return_reason=None,
                raw=raw,
            ),
        )

    def identify(self, record: Any) -> tuple[str | None, str | None]:
        return self._connector.identify(record)
