"""Wiring: from a loaded config to a migrated database and ready connectors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from connectors.source import SourceConfig
from connectors.streams import FINANCIAL_MUTATIONS, INVOICES
from store.bank import BankMirror, BankStore
from store.db import make_engine, upgrade
from store.mirror import Mirror
from store.runs import Runs
from workers.config import AppConfig, ConfigError
from workers.logs import register_secret

if TYPE_CHECKING:  # the HTTP side loads only when a command talks to an API
    from connectors.base import Connector
    from connectors.ratelimit import Limiter
    from workers.engine import CycleResult


@dataclass
class App:
    config: AppConfig
    engine: Engine
    mirror: Mirror
    runs: Runs
    bank: BankStore
    bank_mirror: BankMirror

    @classmethod
    def open(cls, config: AppConfig, *, migrate: bool = True) -> App:
        engine = make_engine(config.database_url)
        if migrate:
            upgrade(engine)
        return cls(
            config, engine, Mirror(engine), Runs(engine), BankStore(engine), BankMirror(engine)
        )

    def mirror_of(self, stream: str) -> Mirror:
        """The store side of a stream (the connector side is `Connector.stream`)."""
        return {INVOICES: self.mirror, FINANCIAL_MUTATIONS: self.bank_mirror}[stream]

    def connector(self, source: SourceConfig, limiter: Limiter | None = None) -> Connector:
        """`limiter` defaults to the account's shared window (`shared_limiter`)."""
        from connectors.registry import UnsupportedKind, build_connector

        token = self.config.token(source)
        register_secret(token)
        if limiter is None and source.rate_limit:
            limiter = self._shared_limiter(source, token)
        try:
            return build_connector(source, token, limiter)
        except UnsupportedKind as exc:
            raise ConfigError(f"{self.config.path}: {exc}") from None

    def _shared_limiter(self, source: SourceConfig, token: str) -> Limiter:
        import redis

        from workers.limiter import shared_limiter

        assert source.rate_limit is not None
        client = redis.Redis.from_url(
            self.config.redis_url, socket_connect_timeout=1.0, socket_timeout=5.0
        )
        return shared_limiter(
            client,
            self.config.redis_namespace,
            source.kind,
            token,
            source.rate_limit,
            source.rate_window,
        )

    def sync_inline(
        self,
        source: SourceConfig,
        *,
        full: bool = False,
        allow_mass_delete: bool = False,
        timeout: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        stream: str = INVOICES,
        processes: int = 1,
    ) -> CycleResult:
        """`processes`: worker processes a large cycle may write its batches with
        (`workers.batch_processes`); 1 keeps every batch in this process."""
        from workers.batch_processes import Assignment, offer
        from workers.engine import run_cycle

        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        with self.connector(source) as connector:
            records = connector.stream(stream)
            assignment = Assignment(self.config, source, stream, records.batch_size, level)
            return run_cycle(
                records,
                self.mirror_of(stream),
                self.runs,
                full=full,
                mass_delete_fraction=None if allow_mass_delete else source.mass_delete_fraction,
                timeout=timeout,
                on_progress=on_progress,
                processes=offer(assignment, processes),
            )

    def close(self) -> None:
        self.engine.dispose()
