"""The config keys of a Moneybird source (`kind = "moneybird"`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from connectors.source import SourceConfig
from connectors.streams import FINANCIAL_MUTATIONS, INVOICES


class MoneybirdSource(SourceConfig):
    connector: ClassVar[str] = "connectors.moneybird.connector:MoneybirdConnector"

    kind: Literal["moneybird"]
    administration_id: str = Field(pattern=r"^\d+$")
    #: also mirror the administration's bank transactions (financial mutations)
    bank: bool = False
    #: write-back: the financial account a registered payment is booked on (optional; a payment
    #: for a bank transaction that came from Moneybird itself links that financial mutation)
    financial_account_id: str | None = Field(default=None, pattern=r"^\d+$")

    @property
    def streams(self) -> tuple[str, ...]:
        return (INVOICES, FINANCIAL_MUTATIONS) if self.bank else (INVOICES,)
