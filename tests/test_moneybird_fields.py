"""Moneybird's batch answers are decoded into only the fields `normalize` reads
(`connectors/moneybird/fields.py`). Over real HTTP from the simulator, every invoice must come
out of `normalize` exactly as it does from the whole invoice, odd spellings included; what the
shape does not fit is decoded whole."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from connectors.http import decode_json, iter_json_array
from connectors.moneybird.fields import SALES_INVOICE, SalesInvoiceFields
from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from connectors.records import Invoice, RawJSON
from connectors.registry import build_connector
from tests.conftest import TOKEN, make_source


def _judged(connector: Any, record: Any, raw: str) -> Invoice | str:
    try:
        invoice: Invoice = connector.normalize(record, raw)
        return invoice
    except ValueError as exc:
        return f"refused: {exc}"


def _odd(payload: dict[str, Any], case: int) -> dict[str, Any]:
    """The same invoice spelled in ways the API and hand-edited data allow."""
    odd = copy.deepcopy(payload)
    if case == 0:  # money as JSON numbers, one with a trailing zero
        odd["total_price_excl_tax"] = Decimal("100.10")
        odd["total_price_incl_tax"] = 121
    elif case == 1:  # no contact, no details, unknown nested keys
        odd["contact"] = None
        odd["details"] = None
        odd["extra"] = {"nested": [1, 2.5, {"x": None}]}
    elif case == 2:  # a detail that is not an object: the shape does not fit
        odd["details"] = ["not an object"]
    elif case == 3:  # a contact of another type
        odd["contact"] = ["x"]
    elif case == 4:  # a NUL, a character outside the BMP and a long text in a description
        for detail in odd.get("details") or []:
            detail["description"] = "caf\u00e9 \x00 \U0001f600 " + "x" * 5000
    elif case == 5:  # amounts with a comma and a sign, quantity as text
        for detail in odd.get("details") or []:
            detail["price"] = "1.234,50" if detail.get("price") else detail.get("price")
            detail["amount_decimal"] = None
            detail["amount"] = "3 x"
    elif case == 6:  # a state Moneybird does not have
        odd["state"] = "lost"
    elif case == 7:  # a mandate's IBAN, rows in another order
        odd["contact"] = {**(odd.get("contact") or {}), "sepa_iban": "nl91 abna 0417 1643 00"}
        for detail in odd.get("details") or []:
            detail["row_order"] = 7
    return odd


def test_every_invoice_reads_the_same_from_its_fields_as_from_the_whole(
    token: str, simulator: MoneybirdSimulator, server: SimulatorServer
) -> None:
    ids = simulator.ids()
    for case, remote_id in enumerate(ids[:8]):
        simulator.set_raw(remote_id, _odd(simulator.invoice(remote_id), case))
    for remote_id in ids[8:12]:
        simulator.pay_invoice(remote_id, Decimal("1.05"))
    connector = build_connector(make_source(server, simulator), TOKEN)
    seen = 0
    try:
        for start in range(0, len(ids), 100):
            for record, raw in connector.fetch_batch(ids[start : start + 100]):
                whole = decode_json(raw.encode(), "test")
                assert _judged(connector, record, raw) == _judged(connector, whole, raw)
                seen += 1
    finally:
        connector.close()
    assert seen == len(ids)


def test_a_body_the_shape_cannot_take_goes_the_exact_way() -> None:
    body = (
        b'[{"id": "1", "state": "open", "total_paid": 1.10}, {"id": "2", "details": "x"},'
        b' {"id": "3", "payments": [{"id": "p", "price": "5", "transaction_identifier":'
        b' "\\ud800"}]}]'
    )
    (first, first_raw), (second, _), (third, _) = list(iter_json_array(body, "t", SALES_INVOICE))
    assert first == {"id": "1", "state": "open", "total_paid": Decimal("1.10")}
    assert first_raw == '{"id": "1", "state": "open", "total_paid": 1.10}'
    assert second == {"id": "2", "details": "x"}  # decoded whole for normalize to refuse
    assert third["payments"][0]["transaction_identifier"] == "\ud800"  # a lone surrogate, as ever
    invalid_utf8 = b'[{"id": "1", "note": "\xff"}]'
    with pytest.raises(Exception, match="not a valid JSON array"):
        list(iter_json_array(invalid_utf8, "t", SALES_INVOICE))
    with pytest.raises(Exception, match="not a valid JSON array"):
        list(iter_json_array(b'{"id": "1"}', "t", SALES_INVOICE))


class _Reading(dict):  # type: ignore[type-arg]
    """A dict that notes every key read from it, nested dicts and lists of dicts included."""

    def __init__(self, data: dict[str, Any], path: str, read: set[str]) -> None:
        super().__init__({k: _reading(v, f"{path}{k}", read) for k, v in data.items()})
        self._path, self._read = path, read

    def get(self, key: str, default: Any = None) -> Any:
        self._read.add(self._path + key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._read.add(self._path + key)
        return super().__getitem__(key)


def _reading(value: Any, path: str, read: set[str]) -> Any:
    if isinstance(value, dict):
        return _Reading(value, path + ".", read)
    if isinstance(value, list):
        return [_reading(v, path + "[]", read) for v in value]
    return value


def _declared(fields: Any, path: str = "") -> set[str]:
    names: set[str] = set()
    for name, hint in get_type_hints(fields).items():
        names.add(path + name)
        for arg in (hint, *get_args(hint)):
            inner = get_args(arg)[0] if get_origin(arg) is list else arg
            if is_typeddict(inner):
                names |= _declared(inner, f"{path}{name}{'[]' if inner is not arg else ''}.")
    return names


def test_the_shape_names_every_field_normalize_reads(
    token: str, simulator: MoneybirdSimulator, server: SimulatorServer
) -> None:
    connector = build_connector(make_source(server, simulator), TOKEN)
    read: set[str] = set()
    try:
        for remote_id in simulator.ids()[:40]:
            simulator.pay_invoice(remote_id, Decimal("1.00"))
            payload = simulator.invoice(remote_id)
            payload["contact"] = {**payload["contact"], "company_name": None}
            connector.normalize(_Reading(payload, "", read), RawJSON("{}"))
    finally:
        connector.close()
    assert "payments[].transaction_identifier" in read and "contact.sepa_iban" in read
    assert read <= _declared(SalesInvoiceFields), read - _declared(SalesInvoiceFields)
