"""What can go wrong talking to a remote API, split by what the caller should do about it."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: the message names the source and what happened, never a secret."""


class PermanentError(ConnectorError):
    """Retrying will not help (bad token, missing permission, bad request): stop the source."""


class AuthError(PermanentError):
    """401/403: the token is wrong, expired or lacks a scope."""


class TransientError(ConnectorError):
    """Network trouble, 5xx, a truncated body: worth retrying after a backoff."""


class RateLimited(TransientError):
    """429: `retry_after` says how long the server asked us to wait, in seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AnsweredError(TransientError):
    """The server answered, with an error of its own in a 2xx envelope that names no known
    cause: a read tries again, but a write was refused (`ApiClient.write` fails it)."""


class NotSent(TransientError):
    """The request never reached the server (no connection, no free connection): safe to send
    again even when it writes."""


class UncertainOutcome(ConnectorError):
    """A write whose outcome is unknown (no response, a 5xx, a cut-off body): it may have been
    carried out. Never retried blindly: the caller reads the record back first."""
