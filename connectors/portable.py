"""Exceptions sent from a child process to the one that started it, which pickles them."""

from __future__ import annotations

import pickle
from collections.abc import Callable


def portable(exc: BaseException, words: Callable[[BaseException], BaseException]) -> BaseException:
    """The exception itself where it survives pickling (an exception whose constructor takes
    other arguments than its message does not), else `words(exc)`: one that says the same."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip means: send words instead
        return words(exc)
    return exc
