"""Which connector serves a configured source (the kinds themselves: `connectors.kinds`)."""

from __future__ import annotations

from connectors.base import Connector
from connectors.kinds import KINDS, connector_class
from connectors.ratelimit import Limiter
from connectors.source import SourceConfig


class UnsupportedKind(Exception):
    pass


def ordered_versions(kind: str) -> bool:
    """Whether a kind's versions are ordered (its streams share the connector's answer), for a
    batch message that is checked against the mirror before any connector is built."""
    return kind not in KINDS or bool(connector_class(kind).ordered_versions)


def build_connector(source: SourceConfig, token: str, limiter: Limiter | None = None) -> Connector:
    try:
        cls: type[Connector] = connector_class(source.kind)
    except KeyError:
        raise UnsupportedKind(
            f"source {source.name!r}: kind {source.kind!r} has no connector "
            f"(available: {', '.join(KINDS)})"
        ) from None
    return cls.from_config(source, token, limiter)
