"""The one list of source kinds: each kind's config model, which names its connector.

Config loading imports only these small models; a connector (and its HTTP stack) is imported
when a source of its kind is first built.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from connectors.flowtly.config import FlowtlySource
from connectors.moneybird.config import MoneybirdSource
from connectors.recras.config import RecrasSource
from connectors.source import SourceConfig
from connectors.wefact.config import WeFactSource

AnySource = Annotated[
    MoneybirdSource | RecrasSource | WeFactSource | FlowtlySource, Field(discriminator="kind")
]

MODELS: dict[str, type[SourceConfig]] = {
    "moneybird": MoneybirdSource,
    "recras": RecrasSource,
    "wefact": WeFactSource,
    "flowtly": FlowtlySource,
}
KINDS = tuple(MODELS)

_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(AnySource)


def source_config(values: dict[str, Any]) -> SourceConfig:
    """One `[[sources]]` table as its kind's model (pydantic's ValidationError if it is wrong)."""
    return _ADAPTER.validate_python(values)


def connector_class(kind: str) -> type[Any]:
    """The connector class serving `kind`, imported now; KeyError for an unknown kind."""
    module, _, name = MODELS[kind].connector.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
