"""Which connector class serves which `kind` in the config file."""

from __future__ import annotations

from connectors.base import Connector
from connectors.moneybird.connector import MoneybirdConnector
from connectors.ratelimit import Limiter
from connectors.source import SourceConfig

CONNECTORS: dict[str, type[Connector]] = {"moneybird": MoneybirdConnector}


class UnsupportedKind(Exception):
    pass


def ordered_versions(kind: str) -> bool:
    """Whether a kind's versions are ordered (its streams share the connector's answer), for a
    batch message that is checked against the mirror before any connector is built."""
    cls = CONNECTORS.get(kind)
    return True if cls is None else cls.ordered_versions


def build_connector(source: SourceConfig, token: str, limiter: Limiter | None = None) -> Connector:
    try:
        cls = CONNECTORS[source.kind]
    except KeyError:
        raise UnsupportedKind(
            f"source {source.name!r}: kind {source.kind!r} has no connector yet "
            f"(available: {', '.join(sorted(CONNECTORS))})"
        ) from None
    return cls.from_config(source, token, limiter)
