"""The config keys of a Flowtly source (`kind = "flowtly"`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from connectors.source import SourceConfig


class FlowtlySource(SourceConfig):
    connector: ClassVar[str] = "connectors.flowtly.connector:FlowtlyConnector"

    kind: Literal["flowtly"]
    base_url: str = Field(default="https://api.flowtly.eu", pattern=r"^https?://")
    #: `bearer`: the token in `token_env` is sent as is; `login`: `username` and the password in
    #: `password_env` are exchanged for a JWT, kept in memory only and renewed when refused
    auth: Literal["bearer", "login"] = "bearer"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: items per collection page (`itemsPerPage`; API Platform's default is 30)
    page_size: int = Field(default=100, ge=1, le=1000)
    #: Flowtly documents no rate limit: one request at a time per collection instead
    rate_limit: int | None = Field(default=None, ge=1)

    @property
    def secret_key(self) -> str:
        return "password_env" if self.auth == "login" else "token_env"

    @model_validator(mode="after")
    def _login_needs_a_user(self) -> FlowtlySource:
        if self.auth == "login" and not self.username:
            raise ValueError("username: required key is missing for auth = 'login'")
        return self
