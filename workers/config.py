"""The config file: where it is found, what it may say, and one clear line when it is wrong.

Lookup order: `--config PATH`, else `$INVOICE_SYNC_CONFIG`, else `./invoice-sync.toml`.
`$DATABASE_URL` and `$REDIS_URL` override the file. Secrets are never in the file: each source
names the environment variable that holds its token (`token_env`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.kinds import KINDS, AnySource
from connectors.source import SourceConfig

DEFAULT_PATH = "invoice-sync.toml"


class ConfigError(Exception):
    """A config problem, worded as the one line an ops person needs to fix it (exit code 2)."""


class AppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = "sqlite:///invoice-sync.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = Field(default="invoice-sync", pattern=r"^[A-Za-z0-9_.:-]+$")
    metrics_port: int | None = Field(default=9191, ge=0, le=65535)
    bank_inbox: Path | None = None
    sources: tuple[AnySource, ...] = Field(default=())
    path: Path | None = None

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: tuple[AnySource, ...]) -> tuple[AnySource, ...]:
        seen: set[str] = set()
        for source in sources:
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice")
            seen.add(source.name)
        return sources

    def select(self, names: tuple[str, ...] | list[str]) -> list[SourceConfig]:
        """The named sources (all when none are named); an unknown name is a config error."""
        if not names:
            return list(self.sources)
        by_name = {s.name: s for s in self.sources}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ConfigError(
                f"{self.path}: no source named {', '.join(map(repr, unknown))} "
                f"(configured: {', '.join(by_name) or 'none'})"
            )
        return [by_name[n] for n in names]

    def source(self, name: str) -> SourceConfig:
        return self.select([name])[0]

    def token(self, source: SourceConfig) -> str:
        value = os.environ.get(source.secret_env, "")
        if not value.strip():
            raise ConfigError(
                f"{self.path}: source {source.name!r}: {source.secret_key}: environment variable "
                f"{source.secret_env} is not set"
            )
        return value.strip()


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    return Path(explicit or os.environ.get("INVOICE_SYNC_CONFIG") or DEFAULT_PATH)


def load_config(explicit: str | os.PathLike[str] | None = None) -> AppConfig:
    path = config_path(explicit)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (pass --config or set INVOICE_SYNC_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> AppConfig:
    data = dict(data)
    for key, env in (("database_url", "DATABASE_URL"), ("redis_url", "REDIS_URL")):
        if os.environ.get(env):
            data[key] = os.environ[env]
    raw_sources = data.get("sources", [])
    try:
        return AppConfig(**data, path=path)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, raw_sources, path)) from None


def _describe(exc: ValidationError, raw_sources: Any, path: Path) -> str:
    """First problem only, phrased as file, source, key: the one line ops need."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = ""
    if loc[:1] == ["sources"] and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        name = None
        if isinstance(raw_sources, list) and index < len(raw_sources):
            entry = raw_sources[index]
            name = entry.get("name") if isinstance(entry, dict) else None
        where = f"source {name!r}: " if name else f"sources[{index}]: "
        loc = loc[2:]
        if loc[:1] and loc[0] in KINDS:  # the kind's model that judged it
            loc = loc[1:]
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag")
        return f"{path}: {where}kind: unknown kind {tag!r} (known: {', '.join(KINDS)})"
    if error["type"] == "union_tag_not_found":
        return f"{path}: {where}kind: required key is missing (known: {', '.join(KINDS)})"
    if not loc:
        return f"{path}: {where}{message}"
    key = ".".join(str(part) for part in loc)
    if error["type"] == "literal_error" and loc[-1:] == ["kind"]:
        message = f"unknown kind {error.get('input')!r} (known: {', '.join(KINDS)})"
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{path}: {where}{key}: {message}"
