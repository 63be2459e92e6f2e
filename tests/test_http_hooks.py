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
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.errors import AuthError, PermanentError, TransientError
from connectors.http import ApiClient, decode_json
from connectors.simulation import SimulatorServer

ITEMS = list(range(1, 26))


class PagedApi:
    """Twenty-five items, `limit` a page from `offset`; a one-endpoint RPC that answers its
    errors with HTTP 200."""

    base_path = ""

    def __init__(self) -> None:
        self.requests = 0
        self.fail_rpc = ["Server busy", "Invalid API key"]
        self.app = Starlette(
            routes=[
                Route("/items", self._items, methods=["GET"]),
                Route("/rpc", self._rpc, methods=["POST"]),
            ]
        )

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
