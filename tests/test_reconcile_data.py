"""The labelled reconciliation data of `bench/reconcile_data.py`: deterministic, complete rows,
valid references and IBANs, and a truth that agrees with the scenarios it claims."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stdnum import iban, iso11649

from bench.reconcile_data import (
    MAIN_ACCOUNT,
    SECOND_ACCOUNT,
    TX_KINDS,
    Dataset,
    generate,
    kenmerk_check_digit,
    kenmerk_is_valid,
    load,
)
from store.schema import bank_transactions, invoices, metadata

TODAY = dt.date(2026, 6, 30)
#: kinds whose transactions pay their invoices in full
FULL = {
    "reference", "reference_typo", "number", "iban_amount", "batch_numbers", "batch_sum",
    "partial", "overpayment", "double_payment", "third_party", "typo_number", "fuzzy_name",
    "refund", "direct_debit",
}  # fmt: skip
#: kinds whose text carries neither a number nor a reference
NO_TEXT = {"iban_amount", "ambiguous_amount", "batch_sum", "fuzzy_name"}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return generate(11, 3000)


def by_key(data: Dataset) -> dict[str, dict[str, Any]]:
    return {tx["dedup_key"]: tx for tx in data.transactions}


def by_id(data: Dataset) -> dict[str, dict[str, Any]]:
    return {row["remote_id"]: row for row in data.invoices}


# How a careful engine reads invoice numbers: with a separator any count of digits (leading
# zeros may be dropped), without one the padded width; never inside a longer word or number.
_SEPARATED = re.compile(r"(?<!\w)(?:F\s?)?(20\d\d)[-/ ](\d{1,5})(?!\d)", re.IGNORECASE)
_COMPACT = re.compile(r"(?<!\w)F?(20\d\d)(\d{4,5})(?!\d)", re.IGNORECASE)
_PLAIN = re.compile(r"(?<!\d)(1\d{5})(?!\d)")


def number_key(number: str) -> tuple[int, int] | str:
    if number.isdigit():
        return number
    year, seq = number.lstrip("F").split("-")
    return int(year), int(seq)


def keys_in(text: str | None) -> set[tuple[int, int] | str]:
    if not text:
        return set()
    found: set[tuple[int, int] | str] = set()
    for pattern in (_SEPARATED, _COMPACT):
        found |= {(int(m[1]), int(m[2])) for m in pattern.finditer(text)}
    found |= {m[1] for m in _PLAIN.finditer(text)}
    return found


def reference_key(reference: str) -> str:
    """RF without spaces, upper case and without the zeros Moneybird pads the code with."""
    compact = reference.replace(" ", "").upper()
    if compact.startswith("RF"):
        return compact[:4] + compact[4:].lstrip("0")
    return compact


def test_same_seed_same_data() -> None:
    first, again = generate(5, 400), generate(5, 400)
    assert first == again
    assert generate(6, 400).transactions != first.transactions
    assert generate(5, 400, today=dt.date(2026, 1, 31)).invoices != first.invoices


def test_counts() -> None:
    assert len(generate(1, 500).transactions) == 500
    for wanted in (0, 37, 150, 2000):
        data = generate(2, 300, transactions=wanted)
        assert len(data.invoices) == 300
        assert len(data.transactions) == wanted
    assert set(generate(3, 50, transactions=0).invoice_kinds.values()) <= {"unpaid", "paid_no_bank"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_kind_at_a_few_hundred_invoices(seed: int) -> None:
    data = generate(seed, 300)
    assert set(data.kinds.values()) == set(TX_KINDS)
    assert {"unpaid", "paid_no_bank"} <= set(data.invoice_kinds.values())


def test_rows_fill_the_tables(data: Dataset) -> None:
    for table, rows in ((invoices, data.invoices), (bank_transactions, data.transactions)):
        required = [c.name for c in table.columns if not c.nullable and not c.primary_key]
        for row in rows:
            assert set(row) <= set(table.c.keys())
            assert all(row[name] is not None for name in required), row
    assert len({r["remote_id"] for r in data.invoices}) == len(data.invoices)
    assert len({r["number"] for r in data.invoices}) == len(data.invoices)
    assert len({number_key(r["number"]) for r in data.invoices}) == len(data.invoices)
    assert len({r["bank_reference"] for r in data.transactions}) == len(data.transactions)
    assert all(r["dedup_key"] == f"ref:{r['bank_reference']}" for r in data.transactions)
    assert {r["account_iban"] for r in data.transactions} == {MAIN_ACCOUNT, SECOND_ACCOUNT}
    assert all(r["synced_at"].utcoffset() == dt.timedelta(0) for r in data.invoices)
    assert all(r["imported_at"].utcoffset() == dt.timedelta(0) for r in data.transactions)


def test_invoice_totals_and_states(data: Dataset) -> None:
    states: Counter[str] = Counter()
    for row in data.invoices:
        money = [row[k] for k in row if k.startswith("total_")]
        assert all(isinstance(m, Decimal) and m.as_tuple().exponent == -2 for m in money)
        assert row["total_incl_tax"] == row["total_excl_tax"] + row["total_tax"]
        assert row["total_paid"] + row["total_unpaid"] == row["total_incl_tax"]
        assert row["total_incl_tax"] != 0
        assert row["invoice_date"] < TODAY and row["due_date"] > row["invoice_date"]
        assert row["invoice_date"] >= TODAY - dt.timedelta(days=365)
        state = row["state"]
        states[state] += 1
        if state == "paid":
            assert row["total_unpaid"] == 0
        elif state in ("open", "partially_paid"):
            assert row["due_date"] >= TODAY
            assert (row["total_paid"] != 0) == (state == "partially_paid")
        else:
            assert state == "late" and row["due_date"] < TODAY
    assert {"open", "late", "paid"} <= set(states)
    credit = [r for r in data.invoices if r["total_incl_tax"] < 0]
    assert 0.01 < len(credit) / len(data.invoices) < 0.1
    styles = Counter(
        r["number"][0] if not r["number"].isdigit() else "plain" for r in data.invoices
    )
    assert styles["2"] > 0.9 * len(data.invoices) and styles["F"] and styles["plain"]


def test_references_and_ibans_are_valid(data: Dataset) -> None:
    assert kenmerk_check_digit("2234534622567") == 1  # the standard's `12 2345 3462 2567`
    kinds = Counter[str]()
    for row in data.invoices:
        reference = row["payment_reference"]
        if reference is None:
            kinds["none"] += 1
        elif reference.startswith("RF"):
            assert iso11649.is_valid(reference) and len(reference) == 25
            kinds["RF"] += 1
        else:
            assert kenmerk_is_valid(reference)
            kinds["CUR"] += 1
    assert kinds["RF"] > kinds["CUR"] > 0 and kinds["none"] > 0
    customer_ibans = {r["customer_iban"] for r in data.invoices} - {None}
    assert 0.3 < sum(r["customer_iban"] is not None for r in data.invoices) / len(data.invoices)
    assert all(iban.is_valid(i) and i == i.upper() and " " not in i for i in customer_ibans)
    for tx in data.transactions:
        assert tx["counterparty_iban"] is None or iban.is_valid(tx["counterparty_iban"])
        issuer = tx["payment_reference_issuer"]
        assert (issuer is None) == (tx["payment_reference"] is None)
        if issuer == "ISO":
            assert iso11649.is_valid(tx["payment_reference"])
        elif issuer == "CUR" and data.kinds[tx["dedup_key"]] != "reference_typo":
            assert kenmerk_is_valid(tx["payment_reference"].replace(" ", ""))


def test_truth_is_consistent(data: Dataset) -> None:
    txs, rows = by_key(data), by_id(data)
    assert set(data.truth) == set(txs) == set(data.kinds)
    assert set(data.invoice_kinds) == set(rows)
    allocated: dict[str, Decimal] = defaultdict(Decimal)
    for key, allocations in data.truth.items():
        tx = txs[key]
        amount = tx["amount"]
        assert amount != 0 and tx["booking_date"] <= TODAY
        for remote_id, part in allocations:
            assert remote_id in rows
            assert part != 0 and (part > 0) == (amount > 0)
            assert part.as_tuple().exponent == -2
            assert tx["booking_date"] > rows[remote_id]["invoice_date"]
            allocated[remote_id] += part
        total = sum((part for _, part in allocations), Decimal(0))
        assert abs(total) <= abs(amount)
        kind = data.kinds[key]
        if allocations and kind != "overpayment":
            assert total == amount, (kind, tx)
        if kind == "overpayment":
            assert len(allocations) == 1 and abs(total) < abs(amount)
    for remote_id, row in rows.items():
        kind, total, paid = (
            data.invoice_kinds[remote_id],
            row["total_incl_tax"],
            allocated[remote_id],
        )
        assert abs(paid) <= abs(total) and paid * total >= 0
        if kind in FULL:
            assert paid == total, (kind, row)
        elif kind == "partial_open":
            assert 0 < abs(paid) < abs(total)
        elif kind == "ambiguous_amount":
            assert paid in (0, total)
        else:
            assert kind in ("dd_return", "unpaid", "paid_no_bank") and paid == 0, kind
        if kind == "paid_no_bank":
            assert row["state"] == "paid"


def test_structured_references_point_at_their_invoice(data: Dataset) -> None:
    txs, rows = by_key(data), by_id(data)
    for key, kind in data.kinds.items():
        if kind not in ("reference", "reference_typo"):
            continue
        tx = txs[key]
        ((remote_id, _),) = data.truth[key]
        stored = rows[remote_id]["payment_reference"]
        wanted = reference_key(stored)
        texts = [tx["payment_reference"], tx["end_to_end_id"], tx["description"]]
        if kind == "reference":
            compact = [t.replace(" ", "").upper() for t in texts if t]
            assert any(wanted in t or stored in t for t in compact), (stored, tx)
        else:
            digits = [re.sub(r"\D", "", t) for t in texts if t and re.search(r"\d{4} ?\d{4}", t)]
            (typo,) = [d for d in digits if len(d) == 16]
            assert not kenmerk_is_valid(typo)
            assert sum(a != b for a, b in zip(typo, wanted, strict=True)) == 1


def test_invoice_numbers_in_text(data: Dataset) -> None:
    """Numbers are found where the scenario puts them, and nowhere else: distractors (order
    numbers, amounts, `1202600042999`) never read as one of our numbers."""
    txs, rows = by_key(data), by_id(data)
    ours = {number_key(r["number"]): r for r in data.invoices}
    credit_notes = {k for k, r in ours.items() if r["total_incl_tax"] < 0}
    seen = Counter[str]()
    for key, kind in data.kinds.items():
        tx = txs[key]
        found = keys_in(tx["description"]) & set(ours)
        paid = {number_key(rows[remote_id]["number"]) for remote_id, _ in data.truth[key]}
        if kind in ("number", "batch_numbers", "refund"):
            assert found == paid, (found, paid, tx["description"])
            seen[kind] += 1
        elif kind in NO_TEXT:
            assert not found and not tx["payment_reference"], tx
        elif kind == "noise":
            assert not (found if tx["amount"] > 0 else found & credit_notes), tx["description"]
    assert seen["number"] > 100 and seen["batch_numbers"] and seen["refund"]
    long_numbers = [
        t for t in data.transactions if re.search(r"\d202[56]\d{5}\d", t["description"] or "")
    ]
    assert long_numbers


def test_scenarios_look_as_documented(data: Dataset) -> None:
    txs, rows = by_key(data), by_id(data)
    ordered = sorted(data.transactions, key=lambda t: t["booking_date"])
    invoices_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in data.invoices:
        invoices_of[row["customer_remote_id"]].append(row)
    all_ibans = Counter(t["counterparty_iban"] for t in data.transactions)
    all_totals = Counter(r["total_incl_tax"] for r in data.invoices)
    for key, kind in data.kinds.items():
        tx, truth = txs[key], data.truth[key]
        if kind == "iban_amount":
            ((remote_id, amount),) = truth
            invoice = rows[remote_id]
            same = invoices_of[invoice["customer_remote_id"]]
            assert [r["total_incl_tax"] for r in same].count(amount) == 1
            earlier = [
                t for t in ordered
                if t["booking_date"] < tx["booking_date"]
                and t["counterparty_iban"] == tx["counterparty_iban"]
                and data.kinds[t["dedup_key"]] == "reference"
            ]  # fmt: skip
            assert tx["counterparty_iban"] == invoice["customer_iban"] or earlier
        elif kind == "ambiguous_amount":
            ((remote_id, amount),) = truth
            same = invoices_of[rows[remote_id]["customer_remote_id"]]
            assert [r["total_incl_tax"] for r in same].count(amount) >= 2
            assert tx["counterparty_iban"] == rows[remote_id]["customer_iban"]
        elif kind == "batch_sum":
            assert len(truth) >= 2
            assert tx["counterparty_iban"] == rows[truth[0][0]]["customer_iban"]
        elif kind in ("fuzzy_name", "typo_number", "reference_typo"):
            ((remote_id, amount),) = truth
            assert all_totals[amount] == 1
            if kind == "fuzzy_name":
                assert all_ibans[tx["counterparty_iban"]] == 1
                assert tx["counterparty_name"] != rows[remote_id]["customer_name"]
        elif kind == "third_party":
            customer_ibans = {r["customer_iban"] for r in data.invoices}
            assert tx["counterparty_iban"] not in customer_ibans
        elif kind == "refund":
            assert tx["amount"] < 0 and truth[0][1] == tx["amount"]
        elif kind == "dd_return":
            ((remote_id, amount),) = truth
            assert tx["return_reason"] and amount == tx["amount"] < 0
            (collection,) = [
                t for t in data.transactions
                if t["end_to_end_id"] == tx["end_to_end_id"] and t["amount"] == -tx["amount"]
            ]  # fmt: skip
            assert data.kinds[collection["dedup_key"]] == "direct_debit"
            assert collection["booking_date"] <= tx["booking_date"]
            assert collection["description"].startswith("SEPA Incasso")
        elif kind == "double_payment" and not truth:
            (first,) = [
                t for t in data.transactions
                if data.kinds[t["dedup_key"]] == "double_payment" and data.truth[t["dedup_key"]]
                and t["description"] == tx["description"] and t["amount"] == tx["amount"]
                and t["counterparty_iban"] == tx["counterparty_iban"]
            ]  # fmt: skip
            assert first["booking_date"] <= tx["booking_date"]
    assert any(t["reversal"] for t in data.transactions)
    assert not any(t["reversal"] for t in data.transactions if not t["return_reason"])


def test_load_into_sqlite(tmp_path: Path) -> None:
    data = generate(4, 250)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bench.db'}")
    metadata.create_all(engine)
    try:
        load(engine, data, chunk=100)
        with engine.connect() as connection:
            assert connection.scalar(sa.select(sa.func.count()).select_from(invoices)) == 250
            count = connection.scalar(sa.select(sa.func.count()).select_from(bank_transactions))
            assert count == len(data.transactions) == 250
            wanted = data.transactions[17]
            amount = connection.scalar(
                sa.select(bank_transactions.c.amount).where(
                    bank_transactions.c.dedup_key == wanted["dedup_key"]
                )
            )
            assert isinstance(amount, Decimal) and str(amount) == str(wanted["amount"])
            row = connection.execute(
                sa.select(invoices).where(invoices.c.remote_id == data.invoices[3]["remote_id"])
            ).one()
            assert row.total_incl_tax == data.invoices[3]["total_incl_tax"]
            if "customer_iban" in invoices.c:
                stored = connection.execute(sa.select(invoices.c.customer_iban)).scalars()
                assert sorted(filter(None, stored)) == sorted(
                    filter(None, (r["customer_iban"] for r in data.invoices))
                )
    finally:
        engine.dispose()
