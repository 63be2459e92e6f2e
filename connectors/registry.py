"""Which connector class serves which `kind` in the config file."""

from __future__ import annotations

from connectors.base import Connector
from connectors.moneybird.connector import MoneybirdConnector
from connectors.ratelimit import Limiter
from connectors.source import SourceConfig

CONNECTORS: dict[str, type[Connector]] = {"moneybird": MoneybirdConnector}


class UnsupportedKind(Exception):
    pass


def build_connector(source: SourceConfig, token: str, limiter: Limiter | None = None) -> Connector:
    try:
        cls = CONNECTORS[source.kind]
    except KeyError:
        raise UnsupportedKind(
            f"source {source.name!r}: kind {source.kind!r} has no connector yet "
            f"(available: {', '.join(sorted(CONNECTORS))})"
        ) from None
    return cls.from_config(source, token, limiter)
