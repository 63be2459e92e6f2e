"""structlog set-up: JSON lines off a terminal, readable lines on one, secrets never printed.

Every token the process loads is registered with `register_secret`; the redaction processor
replaces it (and any `Authorization`/`Bearer` value) wherever it appears in an event, including
stdlib records from httpx and dramatiq, which go through the same pipeline.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SENSITIVE_KEYS = re.compile(r"(token|authorization|password|secret|api_key)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",]+", re.I)
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact_text(text: str) -> str:
    text = _BEARER.sub(r"\1" + REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def describe_error(exc: BaseException) -> str:
    """An exception as `sync_runs.error` and the logs record it: type and text, no secrets.

    A database error is described by the driver's own message (which names the table and
    column), not SQLAlchemy's dump of the statement and its parameters.
    """
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        text = f"{type(exc).__name__}: {type(orig).__name__}: {' '.join(str(orig).split())}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if len(text) > 2000:
        text = text[:2000] + " [...]"
    return redact_text(text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if _SENSITIVE_KEYS.search(str(k)) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(repr(value))
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SENSITIVE_KEYS.search(key) and key not in ("token_env", "password_env"):
            event[key] = REDACTED
        else:
            event[key] = _redact_value(event[key])
    return event


def _redact_rendered(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Exception tracebacks are rendered late; scrub them after rendering too."""
    if isinstance(event.get("exception"), str):
        event["exception"] = redact_text(event["exception"])
    return event


def configure(*, level: str = "INFO", json: bool | None = None, stream: Any = None) -> None:
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_rendered,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # mt-940 logs every field it rejects; our parser reports the file's problem once, by line
    logging.getLogger("mt940").setLevel(logging.CRITICAL)


def get_logger(name: str = "invoice_sync", **context: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name).bind(**context)
