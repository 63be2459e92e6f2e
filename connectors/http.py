"""The one HTTP client every connector uses: timeouts, pacing, retries, exact JSON.

Retries back off exponentially with jitter (stamina) and honour `Retry-After` / `RateLimit-Reset`
in all three spellings servers use (delta seconds, epoch seconds, HTTP date). 401/403 and other
4xx are permanent and never retried.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import json
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import httpx
import msgspec
import orjson
import stamina

from connectors.errors import (
    AnsweredError,
    AuthError,
    NotSent,
    PermanentError,
    RateLimited,
    TransientError,
    UncertainOutcome,
)
from connectors.ratelimit import Limiter, Unlimited
from connectors.records import RawJSON

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")

_DECODER = json.JSONDecoder(parse_float=Decimal)
_INEXACT = object()
_SKIP = re.compile(r"[\s,]*")
_EPOCH_THRESHOLD = 1_000_000_000  # larger "seconds" values are epoch timestamps, not deltas
#: the longest pause a server's header can impose on us (a wrong clock must not stop a source)
MAX_PAUSE = 900.0


def parse_wait(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` or `RateLimit-Reset` header value."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    now = time.time() if now is None else now
    try:
        number = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return max(0.0, when.timestamp() - now)
    if number >= _EPOCH_THRESHOLD:
        return max(0.0, number - now)
    return max(0.0, number)


def _decode_fast(content: bytes) -> Any:
    """orjson's answer when it is provably exact, else `_INEXACT`.

    orjson reads numbers with a fraction as floats. If re-encoding reproduces the body byte for
    byte, every float's shortest repr is the number as sent, so `Decimal(repr(x))` is exact.
    Compact bodies without fractions (Moneybird sends money as strings) pass; others take the
    exact decoder.
    """
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return _INEXACT
    return value if orjson.dumps(value) == content.strip() else _INEXACT


def decode_json(content: bytes, what: str) -> Any:
    """Decode JSON so that no number loses a digit (see `_decode_fast`)."""
    value = _decode_fast(content)
    if value is not _INEXACT:
        return value
    try:
        return _DECODER.decode(content.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransientError(f"{what}: response is not valid JSON ({exc})") from exc


def _exact_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dump_json(value: Any) -> str:
    """JSON text of what `decode_json` gave: every Decimal written with exactly its digits."""
    return orjson.dumps(value, default=_exact_number).decode()


#: a decoder for one element of an answer that builds only the fields a connector reads
Shape = msgspec.json.Decoder[Any]
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])


def json_shape(fields: Any) -> Shape:
    """The decoder for `fields` (a TypedDict, `total=False`, whose values are `Any` or nested
    such dicts): unknown keys are skipped without building objects, and every number with a
    fraction becomes the exact `Decimal` it spells."""
    return msgspec.json.Decoder(fields, float_hook=Decimal)


def iter_json_array(
    content: bytes, what: str, shape: Shape | None = None
) -> Iterator[tuple[Any, RawJSON]]:
    """Yield each element of a JSON array with its JSON text, every number spelled as received.

    With a `shape`, each element holds only the fields it names (see `_shaped`). Either way each
    element's text is exactly the bytes it had in the body.
    """
    if shape is not None and (shaped := _shaped(content, shape)) is not None:
        return iter(shaped)
    items = _decode_fast(content)
    if isinstance(items, list):
        return iter([(item, RawJSON(orjson.dumps(item).decode())) for item in items])
    try:
        text = content.decode()
        pos = _SKIP.match(text, 0).end()  # type: ignore[union-attr]
        if not text.startswith("[", pos):
            raise ValueError("expected a JSON array")
        pos = _SKIP.match(text, pos + 1).end()  # type: ignore[union-attr]
        exact: list[tuple[Any, RawJSON]] = []
        while not text.startswith("]", pos):
            if pos >= len(text):
                raise ValueError("array is not closed")
            value, end = _DECODER.raw_decode(text, pos)
            exact.append((value, RawJSON(text[pos:end])))
            pos = _SKIP.match(text, end).end()  # type: ignore[union-attr]
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransientError(f"{what}: response is not a valid JSON array ({exc})") from exc
    return iter(exact)


def _shaped(content: bytes, shape: Shape) -> list[tuple[Any, RawJSON]] | None:
    """Moneybird sends about 5 KB an invoice, of which a tenth is read: building every object
    of the rest was a fifth of an initial sync's CPU. An element the shape does not fit (a field
    of another type, an escape it refuses) is decoded whole, so the connector judges it as it
    always did; None when the body is not a clean UTF-8 array (the exact path then says why)."""
    try:
        elements = _ELEMENTS.decode(content)
    except msgspec.DecodeError:
        return None
    shaped: list[tuple[Any, RawJSON]] = []
    for element in elements:
        try:
            text = bytes(element).decode()
        except UnicodeDecodeError:
            return None
        try:
            value = shape.decode(element)
        except msgspec.DecodeError:
            try:
                value = _DECODER.decode(text)
            except ValueError:
                return None
        shaped.append((value, RawJSON(text)))
    return shaped


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client of this process shares (what httpx builds for
    `verify=True`, honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`). httpx builds one per client,
    loading the CA bundle each time (0.05 s of CPU here), and the daemon makes a client for
    every batch message; a context is safe to share between threads."""
    return httpx.create_ssl_context()


def _backoff(exc: Exception) -> bool | float:
    if isinstance(exc, RateLimited):
        base = exc.retry_after if exc.retry_after is not None else 5.0
        return base + random.uniform(0.05, 0.5)
    return isinstance(exc, TransientError)


class ApiClient:
    """Sends requests for one remote account (one token), counting every request it sends."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        limiter: Limiter | None = None,
        timeout: float = 30.0,
        attempts: int = 6,
        retry_timeout: float = 600.0,
        wait_initial: float = 0.5,
        wait_max: float = 30.0,
    ) -> None:
        self.name = name
        self.limiter: Limiter = limiter or Unlimited()
        self.requests = 0
        self.throttled = 0
        self._count_lock = threading.Lock()
        self._attempts = attempts
        self._retry_timeout = retry_timeout
        self._wait_initial = wait_initial
        self._wait_max = wait_max
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=dict(headers),
            verify=tls_context(),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            # A connection for every thread that may send at once (the engine's batches times a
            # connector's own concurrency): threads queueing for fewer connections made
            # httpcore read closed sockets under load ("Bad file descriptor", then a retry).
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    def use_auth(self, auth: httpx.Auth) -> None:
        """A credential flow httpx runs around every request (a login that yields a JWT), for
        a client built without a fixed `Authorization` header."""
        self._http.auth = auth

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(
            method, path, lambda response, what: decode_json(response.content, what), **kwargs
        )

    def request_json_array(
        self, method: str, path: str, shape: Shape | None = None, **kwargs: Any
    ) -> Iterator[tuple[Any, RawJSON]]:
        """Like `request_json` for an array answer, keeping each element's exact text; `shape`
        names the fields the caller reads (`json_shape`)."""
        return self.call(
            method,
            path,
            lambda response, what: iter_json_array(response.content, what, shape),
            **kwargs,
        )

    def pages(
        self,
        fetch: Callable[[dict[str, Any]], T],
        next_page: Callable[[T, dict[str, Any]], dict[str, Any] | None],
        first: dict[str, Any],
    ) -> Iterator[T]:
        """Each page of a paged answer, one request at a time. `fetch(values)` asks for one
        page (the connector knows where paging values go: query, JSON body, form);
        `next_page(page, values)` is its paging rule: the values of the following page, or
        None after the last."""
        sent: dict[str, Any] | None = first
        while sent is not None:
            page = fetch(sent)
            yield page
            following = next_page(page, sent)
            if following is not None and following == sent:
                raise PermanentError(f"{self.name}: the next page repeats this one (a paging bug)")
            sent = following

    def check_envelope(self, response: httpx.Response, what: str) -> None:
        """A 2xx answer that is an error all the same (an API whose errors come back as HTTP 200
        with an error body): a subclass raises the error it means, as `_send_once` would for
        an HTTP status (AuthError stops the source, TransientError is retried)."""

    def refusal_detail(self, response: httpx.Response) -> str:
        """What an API's error envelope says of a 401/403 (a subclass reads its format); empty
        when it says nothing useful. Never echo the request: it carries the secret."""
        return ""

    def call(
        self, method: str, path: str, parse: Callable[[httpx.Response, str], T], **kwargs: Any
    ) -> T:
        """Send, then `parse(response, what)`; parsing sits inside the retry, so a truncated
        body is retried like a dropped connection."""
        return cast(T, self._call(method, path, parse, False, **kwargs))

    def download(
        self, method: str, path: str, parse: Callable[[IO[bytes], str], T], **kwargs: Any
    ) -> T:
        """`call` for an answer too large to hold: the body goes to an anonymous temporary
        file as it arrives, and `parse(file, what)` reads it from there (inside the retry, as
        `call`'s parse; what it returns may keep the file). Not for an API whose errors come
        inside an HTTP 200 (`check_envelope`): the body is not looked at here."""
        what = f"{self.name}: {method} {path}"

        def once() -> T:
            body = tempfile.TemporaryFile(prefix="invoice-sync-answer-")
            try:
                self._send_once(method, path, what, False, into=body, **kwargs)
                return parse(body, what)
            except BaseException:
                body.close()
                raise

        return self._retrying(once)

    def write(
        self, method: str, path: str, parse: Callable[[httpx.Response, str], T], **kwargs: Any
    ) -> T:
        """A call that changes something and must not happen twice (registering a payment).

        Retried only where nothing can have been written: a 429, or a request that never left
        (no connection). An answer that may hide a success (no response, a timeout while
        waiting, a 5xx, a cut-off body) raises `UncertainOutcome` at once: the caller reads the
        record back before it sends again. Errors a status names (4xx) stay what they are."""
        what = f"{self.name}: {method} {path}"

        def once() -> T:
            try:
                response = self._send_once(method, path, what, False, **kwargs)
                assert response is not None
                return parse(response, what)
            except (RateLimited, NotSent):
                raise
            except AnsweredError as exc:
                raise PermanentError(str(exc)) from None
            except TransientError as exc:
                raise UncertainOutcome(f"{exc}; it may have been carried out") from None

        return self._retrying(once)

    def _retrying(self, once: Callable[[], T]) -> T:
        """`once()` again after a backoff with jitter while it raises a TransientError."""
        for attempt in stamina.retry_context(
            on=_backoff,
            attempts=self._attempts,
            timeout=self._retry_timeout,
            wait_initial=self._wait_initial,
            wait_max=self._wait_max,
        ):
            with attempt:
                return once()
        raise AssertionError("unreachable")  # pragma: no cover

    def call_unless_missing(
        self, method: str, path: str, parse: Callable[[httpx.Response, str], T], **kwargs: Any
    ) -> T | None:
        """`call`, answering None for a 404: a record that went away between list and fetch."""
        return self._call(method, path, parse, True, **kwargs)

    def delete(self, path: str) -> None:
        """An idempotent DELETE: retried like a read, and a 404 means it is already gone."""
        self._call("DELETE", path, lambda response, what: None, True)

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[httpx.Response, str], T],
        missing_ok: bool,
        **kwargs: Any,
    ) -> T | None:
        what = f"{self.name}: {method} {path}"

        def once() -> T | None:
            response = self._send_once(method, path, what, missing_ok, **kwargs)
            return None if response is None else parse(response, what)

        return self._retrying(once)

    def _send_once(
        self,
        method: str,
        path: str,
        what: str,
        missing_ok: bool,
        into: IO[bytes] | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """One request; `into`: a 2xx answer's body is written there, not kept."""
        self.limiter.acquire()
        with self._count_lock:
            self.requests += 1
        try:
            if into is None:
                response = self._http.request(method, path, **kwargs)
                response.read()
            else:
                request = self._http.build_request(method, path, **kwargs)
                response = self._http.send(request, stream=True)
                try:
                    if response.status_code < 300:
                        for chunk in response.iter_bytes():
                            into.write(chunk)
                        into.seek(0)
                    else:
                        response.read()
                finally:
                    response.close()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"{what}: could not connect ({type(exc).__name__}: {exc})") from None
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"{what}: connection failed ({type(exc).__name__}: {exc})"
            ) from None
        self._note_rate_headers(response)
        status = response.status_code
        if status < 300:
            if into is None:
                self.check_envelope(response, what)
            return response
        if status == 404 and missing_ok:
            return None
        if status == 429:
            with self._count_lock:
                self.throttled += 1
            wait = parse_wait(response.headers.get("Retry-After"))
            if wait is None:
                wait = parse_wait(response.headers.get("RateLimit-Reset"))
            if wait is not None:
                self.limiter.pause(min(wait, MAX_PAUSE))
            raise RateLimited(f"{what}: rate limited (HTTP 429), retry after {wait}s", wait)
        if status in (401, 403):
            detail = self.refusal_detail(response)
            raise AuthError(
                f"{what}: HTTP {status}: "
                + (detail or "the API refused the token (wrong, expired, no scope)")
            )
        if status >= 500 or status == 408:
            raise TransientError(f"{what}: server error HTTP {status}")
        raise PermanentError(f"{what}: HTTP {status}: {response.text[:200]}")

    def _note_rate_headers(self, response: httpx.Response) -> None:
        """When the server says the window is spent, every sender sharing the limiter waits for
        its reset instead of earning a 429; unless our own window is spent too and frees no
        sooner than the reset (in its whole seconds): then it is our own doing, and our window
        times the next request to the fraction of a second."""
        if response.headers.get("RateLimit-Remaining", "").strip() != "0":
            return
        wait = parse_wait(response.headers.get("RateLimit-Reset"))
        if wait is not None and self.limiter.free_in() < wait - 1.0:
            self.limiter.pause(min(wait, MAX_PAUSE))
