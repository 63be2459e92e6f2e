"""Exceptions a child process sends back (`connectors.portable`): pure logic."""

from __future__ import annotations

import pickle

from connectors.errors import AuthError, RateLimited
from connectors.portable import portable


def _words(exc: BaseException) -> BaseException:
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def test_an_exception_that_pickles_is_sent_as_itself() -> None:
    refused = AuthError("acme: 401 Unauthorized")

    assert portable(refused, _words) is refused
    assert isinstance(pickle.loads(pickle.dumps(refused)), AuthError)


def test_one_that_does_not_is_sent_as_words() -> None:
    limited = RateLimited("acme: 429 Too Many Requests", retry_after=3.0)  # needs two arguments

    sent = portable(limited, _words)

    assert type(sent) is RuntimeError
    assert str(sent) == "RateLimited: acme: 429 Too Many Requests"
    assert str(pickle.loads(pickle.dumps(sent))) == str(sent)
