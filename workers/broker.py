"""The dramatiq broker on Redis, and the middleware that puts message context on log lines.

Exactly one broker per process. Worker processes (`dramatiq workers.actors`) configure it from
the config file named by `$INVOICE_SYNC_CONFIG`; the CLI configures it from `--config` before it
imports the actors.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware

from workers.config import AppConfig

QUEUE = "invoice-sync"

_broker: RedisBroker | None = None
_config: AppConfig | None = None


class LogContext(Middleware):
    """Every log line written while a message is processed names its actor, message and source."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
        context = {"actor": message.actor_name, "message_id": message.message_id}
        if message.args:
            context["source"] = message.args[0]
        if message.actor_name == "sync_batch" and len(message.args) > 1:
            context["run_id"] = message.args[1]
        structlog.contextvars.bind_contextvars(**context)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message


HEARTBEAT_EVERY = 10.0
HEARTBEAT_TTL = 35


def _heartbeat_prefix(namespace: str) -> str:
    return f"{namespace}:worker-alive:"


class Heartbeat(Middleware):
    """Each worker process says it is alive (a Redis key with a TTL, refreshed every 10 s), so
    `sync` can warn when a message would only wait in the queue. dramatiq's own heartbeats
    cannot tell: every process that enqueues (the CLI, the scheduler) writes one too."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        import os
        import socket
        import threading

        self._client = client
        self._key = f"{_heartbeat_prefix(namespace)}{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        import threading

        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self._client.set(self._key, "1", ex=HEARTBEAT_TTL)
            except redis.RedisError:
                pass  # Redis is down: the broker itself reports that; try again next beat
            self._stop.wait(HEARTBEAT_EVERY)

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()
        try:
            self._client.delete(self._key)
        except redis.RedisError:
            pass


def workers_alive(config: AppConfig) -> int:
    """Worker processes that sent a heartbeat in the last `HEARTBEAT_TTL` seconds."""
    client = redis_client(config)
    return sum(1 for _ in client.scan_iter(f"{_heartbeat_prefix(config.redis_namespace)}*"))


def configure(config: AppConfig, *, worker: bool = False) -> RedisBroker:
    """Set the process's broker (once; later calls return the same one).

    Worker processes also get dramatiq's Prometheus middleware (unless `metrics_port = 0`).
    """
    global _broker, _config
    if _broker is None:
        _broker = RedisBroker(url=config.redis_url, namespace=config.redis_namespace)
        _broker.add_middleware(LogContext())
        _broker.add_middleware(CurrentMessage())
        if worker:
            _broker.add_middleware(Heartbeat(redis_client(config), config.redis_namespace))
        if worker and config.metrics_port:
            _add_prometheus(_broker, config)
        dramatiq.set_broker(_broker)
        _config = config
    return _broker


def prometheus_environment(config: AppConfig) -> dict[str, str]:
    """dramatiq reads its Prometheus settings from the environment when its module loads, in
    every process it starts (the exposition server's included): set them before `dramatiq` runs.
    One metrics directory per deployment namespace keeps parallel deployments apart."""
    import os
    import tempfile

    directory = os.path.join(
        tempfile.gettempdir(), f"invoice-sync-prometheus-{config.redis_namespace}"
    )
    return {"dramatiq_prom_port": str(config.metrics_port), "dramatiq_prom_db": directory}


def _add_prometheus(broker: RedisBroker, config: AppConfig) -> None:
    import os

    for key, value in prometheus_environment(config).items():
        os.environ.setdefault(key, value)
    from dramatiq.middleware.prometheus import Prometheus

    broker.add_middleware(Prometheus())


def current_config() -> AppConfig:
    if _config is None:
        raise RuntimeError("the broker is not configured yet")
    return _config


def redis_client(config: AppConfig) -> redis.Redis:
    return redis.Redis.from_url(config.redis_url)


def queue_depth(config: AppConfig) -> dict[str, int]:
    """Messages waiting (ready and delayed) in our queue."""
    client = redis_client(config)
    prefix = f"{config.redis_namespace}:{QUEUE}"
    return {"ready": int(client.llen(prefix)), "delayed": int(client.llen(f"{prefix}.DQ"))}


def queued_sources(config: AppConfig) -> dict[str, int]:
    """Per source, how many of its messages wait in the queue (read from the message bodies)."""
    import json

    client = redis_client(config)
    counts: dict[str, int] = {}
    for key in (
        f"{config.redis_namespace}:{QUEUE}.msgs",
        f"{config.redis_namespace}:{QUEUE}.DQ.msgs",
    ):
        for raw in client.hvals(key):
            try:
                args = json.loads(raw).get("args") or []
            except ValueError:
                continue
            if args:
                counts[str(args[0])] = counts.get(str(args[0]), 0) + 1
    return counts
