"""The config keys of a Recras source (`kind = "recras"`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from connectors.source import SourceConfig


class RecrasSource(SourceConfig):
    connector: ClassVar[str] = "connectors.recras.connector:RecrasConnector"

    kind: Literal["recras"]
    #: days back from today whose invoices each cycle lists (and judges for deletion)
    window: int = Field(default=400, ge=1, le=3660)
    #: Recras documents no rate limit: requests are paced by bounded concurrency instead
    rate_limit: int | None = Field(default=None, ge=1)
    #: write-back: the payment method (`betaalmethode`) a registered payment is booked with
    betaalmethode_id: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _write_back_method(self) -> RecrasSource:
        if self.write_back != "off" and self.betaalmethode_id is None:
            raise ValueError("write_back needs betaalmethode_id: the payment method to book with")
        return self
