"""The HTTP client's per-connector hooks, over real HTTP on loopback: a connector's paging rule
(`ApiClient.pages`) and an error envelope inside an HTTP 200 (`ApiClient.check_envelope`), as
WeFact (offset/limit, `"status": "error"`) and Flowtly (`?page=N`) need them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connectors.errors import AuthError, NotSent, PermanentError, TransientError, UncertainOutcome
from connectors.http import ApiClient, decode_json
from connectors.simulation import RawEndpoint, SimulatorServer, drop_connection

ITEMS = list(range(1, 26))


class PagedApi:
    """Twenty-five items, `limit` a page from `offset`; a one-endpoint RPC that answers its
    errors with HTTP 200."""

    base_path = ""

    def __init__(self) -> None:
        self.requests = 0
        self.fail_rpc = ["Server busy", "Invalid API key"]
        #: payments recorded, and how the next answers to /pay go wrong after recording
        self.payments: list[bytes] = []
        self.pay_faults: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/items", self._items, methods=["GET"]),
                Route("/rpc", self._rpc, methods=["POST"]),
                Route("/pay", RawEndpoint(self._pay), methods=["POST"]),
            ]
        )

    async def _pay(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        fault = self.pay_faults.pop(0) if self.pay_faults else ""
        if fault == "429":  # refused before anything was written
            await Response("slow down", 429, {"Retry-After": "0"})(scope, receive, send)
            return
        self.payments.append(body)
        if fault == "drop":  # written, then the answer is lost
            await drop_connection(receive)
            return
        if fault == "500":
            await Response("oops", 500)(scope, receive, send)
            return
        if fault == "truncate":
            await Response(b'{"id": 1', 201, media_type="application/json")(scope, receive, send)
            return
        await JSONResponse({"id": len(self.payments)}, 201)(scope, receive, send)

    async def _items(self, request: Request) -> JSONResponse:
        self.requests += 1
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", 10))
        if request.query_params.get("stuck"):
            offset = 0
        return JSONResponse({"total": len(ITEMS), "items": ITEMS[offset : offset + limit]})

    async def _rpc(self, request: Request) -> JSONResponse:
        self.requests += 1
        if self.fail_rpc:
            return JSONResponse({"status": "error", "errors": [self.fail_rpc.pop(0)]})
        return JSONResponse({"status": "success", "invoices": []})


class EnvelopeClient(ApiClient):
    def check_envelope(self, response: httpx.Response, what: str) -> None:
        body = orjson.loads(response.content)
        if body.get("status") != "error":
            return
        errors = "; ".join(body.get("errors", []))
        if "API key" in errors:
            raise AuthError(f"{what}: {errors}")
        raise TransientError(f"{what}: {errors}")


@pytest.fixture
def api() -> Iterator[tuple[PagedApi, str]]:
    paged = PagedApi()
    with SimulatorServer(paged) as server:
        yield paged, server.base_url


def _json(response: httpx.Response, what: str) -> Any:
    return decode_json(response.content, what)


def _items(client: ApiClient) -> Any:
    return lambda values: client.call("GET", "items", _json, params=values)


def _offset_rule(page: Any, sent: dict[str, Any]) -> dict[str, Any] | None:
    following = sent["offset"] + len(page["items"])
    return None if following >= page["total"] else {**sent, "offset": following}


def test_pages_follow_the_connectors_paging_rule(api: tuple[PagedApi, str]) -> None:
    paged, base_url = api
    with ApiClient(name="paged", base_url=base_url, headers={}, timeout=5) as client:
        pages = list(client.pages(_items(client), _offset_rule, {"offset": 0, "limit": 10}))
    assert [item for page in pages for item in page["items"]] == ITEMS
    assert len(pages) == paged.requests == 3


def test_a_page_that_repeats_is_an_error_not_a_loop(api: tuple[PagedApi, str]) -> None:
    _, base_url = api

    def stuck_rule(page: Any, sent: dict[str, Any]) -> dict[str, Any] | None:
        return {**sent, "offset": 0}  # a server that ignores the offset, a rule that trusts it

    with ApiClient(name="paged", base_url=base_url, headers={}, timeout=5) as client:
        with pytest.raises(PermanentError, match="repeats"):
            list(client.pages(_items(client), stuck_rule, {"offset": 0, "stuck": 1}))


def test_an_error_envelope_in_a_200_is_retried_or_stops_as_an_http_error_would(
    api: tuple[PagedApi, str],
) -> None:
    paged, base_url = api
    client = EnvelopeClient(
        name="rpc", base_url=base_url, headers={}, timeout=5, wait_initial=0.01, wait_max=0.02
    )
    with client:
        with pytest.raises(AuthError, match="Invalid API key"):
            client.request_json("POST", "rpc", data={"controller": "invoice", "action": "list"})
        assert paged.requests == 2, "the busy answer was retried, the bad key was not"
        answer = client.request_json("POST", "rpc", data={"controller": "invoice"})
    assert answer == {"status": "success", "invoices": []}


@pytest.mark.parametrize("fault", ["500", "drop", "truncate"])
def test_a_write_whose_answer_may_hide_a_success_is_uncertain_and_not_sent_again(
    api: tuple[PagedApi, str], fault: str
) -> None:
    paged, base_url = api
    paged.pay_faults = [fault]
    client = ApiClient(name="books", base_url=base_url, headers={}, timeout=5, wait_initial=0.01)
    with client, pytest.raises(UncertainOutcome, match="may have been carried out"):
        client.write("POST", "pay", _json, json={"amount": "12.10"})
    assert len(paged.payments) == 1, "sent once: the payment landed, the answer did not"


def test_a_write_refused_before_writing_is_sent_again(api: tuple[PagedApi, str]) -> None:
    paged, base_url = api
    paged.pay_faults = ["429"]
    with ApiClient(name="books", base_url=base_url, headers={}, timeout=5) as client:
        answer = client.write("POST", "pay", _json, json={"amount": "12.10"})
    assert answer == {"id": 1} and len(paged.payments) == 1


def test_a_write_that_never_left_is_retried_then_reported(api: tuple[PagedApi, str]) -> None:
    _, base_url = api
    closed = base_url.rsplit(":", 1)[0] + ":9"  # nothing listens on the discard port
    client = ApiClient(
        name="books", base_url=closed, headers={}, timeout=2, attempts=2, wait_initial=0.01
    )
    with client, pytest.raises(NotSent):
        client.write("POST", "pay", _json, json={"amount": "12.10"})
    assert client.requests == 2, "a request that never left is safe to send again"
    assert issubclass(NotSent, TransientError)


def test_every_client_shares_one_verifying_tls_context() -> None:
    """httpx would build a context per client, loading the CA bundle each time (0.05 s of CPU),
    and the daemon makes a client per batch message. Shared, it still verifies."""
    import ssl

    from connectors.http import tls_context

    clients = [
        ApiClient(name=name, base_url="https://example.invalid/api", headers={})
        for name in ("first", "second")
    ]
    try:
        used = [client._http._transport._pool._ssl_context for client in clients]  # type: ignore[attr-defined]
    finally:
        for client in clients:
            client.close()

    assert used[0] is used[1] is tls_context()
    assert tls_context().verify_mode == ssl.CERT_REQUIRED and tls_context().check_hostname
