"""One configured remote account (a `[[sources]]` table in the config file)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from connectors.streams import INVOICES

_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s?)?\s*$")


def parse_duration(value: object) -> float:
    """`"5m"`, `"1h30m"`, `"90s"`, `"90"` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '5m', '30s' or '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)) and value.strip():
        hours, minutes, secs = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    else:
        raise ValueError(f"{value!r} is not a duration like '5m', '30s' or '1h'")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class SourceConfig(BaseModel):
    """The keys every kind shares; each kind adds its own in its connector's `config` module.
    Keys are a documented contract (README, "Configuration"); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: `package.module:Class` of the connector that serves this kind, imported when it is built
    connector: ClassVar[str]

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    kind: str
    base_url: str = Field(pattern=r"^https?://")
    #: the environment variable holding the source's token (every kind but Flowtly's `login`)
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    since: dt.date = dt.date(2000, 1, 1)
    interval: Duration = 300.0
    rate_limit: int | None = Field(default=150, ge=1)
    rate_window: Duration = 300.0
    timeout: Duration = 30.0
    mass_delete_fraction: float = Field(default=0.5, gt=0, le=1)
    #: register bank payments reconciliation found at this source: `off`, `dry-run` (plan and
    #: show only) or `apply` (`push-payments --apply` and the daemon send them)
    write_back: Literal["off", "dry-run", "apply"] = "off"

    @property
    def streams(self) -> tuple[str, ...]:
        """What this source mirrors."""
        return (INVOICES,)

    @property
    def secret_key(self) -> str:
        """The config key naming the environment variable that holds this source's secret."""
        return "token_env"

    @property
    def secret_env(self) -> str:
        value = getattr(self, self.secret_key)
        assert isinstance(value, str)  # the validator below made sure
        return value

    @model_validator(mode="after")
    def _secret_named(self) -> SourceConfig:
        if not getattr(self, self.secret_key, None):
            raise ValueError(f"{self.secret_key}: required key is missing")
        return self
