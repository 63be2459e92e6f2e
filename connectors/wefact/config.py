"""The config keys of a WeFact source (`kind = "wefact"`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from connectors.source import Duration, SourceConfig


class WeFactSource(SourceConfig):
    connector: ClassVar[str] = "connectors.wefact.connector:WeFactConnector"

    kind: Literal["wefact"]
    base_url: str = Field(default="https://api.mijnwefact.nl/v2/", pattern=r"^https?://")
    #: how often a cycle lists every invoice (to see deletions); between, it lists changes
    full_listing_every: Duration = 86_400.0
    #: WeFact documents no rate limit: requests are paced by bounded concurrency instead
    rate_limit: int | None = Field(default=None, ge=1)
