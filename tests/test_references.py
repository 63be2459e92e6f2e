"""Payment references and invoice numbers as people and banks write them (pure logic)."""

from __future__ import annotations

import pytest
from stdnum import iso11649

from workers.reconciliation.references import (
    Reference,
    betalingskenmerk_valid,
    key_valid,
    longest_matches,
    normalize_reference,
    number_key,
    number_keys,
    numbers_in_text,
    reference_key,
    references_in_text,
    rf_valid,
)


def test_the_betaalvereniging_example_validates_and_a_changed_digit_does_not() -> None:
    assert betalingskenmerk_valid("12234534622567")  # `12 2345 3462 2567`
    assert not betalingskenmerk_valid("12234534622569")
    assert not betalingskenmerk_valid("13234534622567")  # length code 3 is not 14 digits


def test_sixteen_digit_references_carry_a_check_digit_over_fifteen() -> None:
    body = "234567890123456"
    weights = (2, 4, 8, 5, 10, 9, 7, 3, 6, 1)
    total = sum(int(d) * weights[i % 10] for i, d in enumerate(reversed(body)))
    check = {10: 1, 11: 0}.get(11 - total % 11, 11 - total % 11)
    assert betalingskenmerk_valid(f"{check}{body}")
    assert not betalingskenmerk_valid(f"{(check + 1) % 10}{body}")


def test_seven_digits_have_no_check_and_other_lengths_are_not_references() -> None:
    assert betalingskenmerk_valid("1234567")
    assert not betalingskenmerk_valid("12345678")
    assert not betalingskenmerk_valid("12345678901234567")
    assert not betalingskenmerk_valid("12a4567")


def test_structured_references_compare_without_spaces_or_case() -> None:
    rf = iso11649.format("RF18539007547034")
    assert normalize_reference(rf.lower()) == Reference("RF18539007547034", True)
    assert normalize_reference("rf19 5390 0754 7034") == Reference("RF19539007547034", False)
    assert normalize_reference("12 2345 3462 2567") == Reference("12234534622567", True)
    assert normalize_reference("NOTPROVIDED") is None
    assert normalize_reference("  ") is None


def test_references_are_found_in_free_text_without_the_words_after_them() -> None:
    found = list(references_in_text("Betaling RF18 5390 0754 7034 FACTUUR 2026"))
    assert found == [Reference("RF18539007547034", True)]
    assert list(references_in_text("kenmerk 1223 4534 6225 67 bedrag 12,50")) == [
        Reference("12234534622567", True)
    ]
    assert list(references_in_text("bedrag 1234567890 ok")) == []  # fails the check


@pytest.mark.parametrize(
    ("number", "key"),
    [("2026-0003", "20260003"), ("F2026-0003", "20260003"), ("00042", None), ("INV 1001", "1001")],
)
def test_an_invoice_number_is_its_digits_without_leading_zeros(number: str, key: str) -> None:
    assert number_key(number) == key


@pytest.mark.parametrize(
    "text",
    ["Factuur 2026-0003", "factuur 20260003", "F2026-0003 bedrag 150,00", "fact 2026 0003 dank"],
)
def test_every_spelling_of_a_number_in_text_is_found(text: str) -> None:
    assert "20260003" in {n.key for n in numbers_in_text(text)}


def test_a_number_inside_a_longer_number_is_never_found() -> None:
    keys = {n.key for n in numbers_in_text("order 1220260003999 en 2026-00031")}
    assert "20260003" not in keys
    assert "202600031" in keys


def test_the_longest_spelling_wins_over_the_numbers_inside_it() -> None:
    found = [n for n in numbers_in_text("factuur 2026 0003") if n.key in {"2026", "20260003"}]
    assert [n.key for n in longest_matches(found)] == ["20260003"]


@pytest.mark.parametrize(
    "value",
    [
        "RF18539007547034",
        "RF18000000000539007547034",
        "RF19539007547034",
        "RF71A",
        "RF00",
        "RF",
        "RF18 5390",
        "RFAB539007547034",
        "RF18ÄB",
        "RF711",
        "RF0401",
    ],
)
def test_the_rf_check_agrees_with_python_stdnum(value: str) -> None:
    assert rf_valid(value) == iso11649.is_valid(value)


def test_rf_references_compare_without_the_zero_padding() -> None:
    padded = normalize_reference("RF18000000000539007547034")
    assert padded == Reference("RF18539007547034", True)


def test_numbers_joined_by_slashes_are_found_one_by_one_and_whole() -> None:
    keys = {n.key for n in numbers_in_text("fact 2025-00760/2025-00761 en 2026/00042")}
    assert {"202500760", "202500761", "202600042", "2026-42"} <= keys


def test_a_word_after_an_rf_reference_does_not_hide_it() -> None:
    text = "Betaling RF18F5D526A83D1DBEE9 namens Architectenbureau Amersfoort"
    assert Reference("RF18F5D526A83D1DBEE9", True) in set(references_in_text(text))


def test_names_are_the_same_party_only_with_the_same_words() -> None:
    from workers.reconciliation.rules import same_name

    assert same_name("BAKKERIJ JANSEN BV", "Bakkerij Jansen B.V.")
    assert same_name("Jansen Bakkerij", "Bakkerij Jansen")
    assert not same_name("Glazenwassersbedrijf Mulder B.V.", "Schilder Mulder B.V.")
    assert not same_name(None, "Jansen")


def test_every_valid_prefix_is_found_in_one_pass_as_stdnum_would_find_them() -> None:
    import random
    import string

    from workers.reconciliation.references import _rf_prefixes

    rng = random.Random(7)
    for _ in range(2000):
        body = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(22))
        compact = f"RF{rng.randrange(100):02d}{body}"
        expected = [compact[:end] for end in range(5, 26) if iso11649.is_valid(compact[:end])]
        assert list(_rf_prefixes(compact)) == expected


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXTS = st.text(
    alphabet=st.sampled_from(list("0123456789 -./_RFrf\tx\n,ABCZ€\u00a0")), max_size=80
) | st.text(max_size=200)


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_any_text_is_read_without_failing(text: str) -> None:
    for reference in references_in_text(text):
        assert reference.valid and reference.value
    found = numbers_in_text(text)
    for number in found:
        assert number.key and 0 <= number.start < number.end <= len(text)
        assert number.key.replace("-", "").isdigit()
    assert set(longest_matches(found)) <= set(found)
    normalize_reference(text)
    number_key(text)


@settings(max_examples=300, deadline=None)
@given(_TEXTS, st.integers(min_value=0, max_value=2**16))
def test_numbers_looked_for_are_the_ones_found_among_all(text: str, pick: int) -> None:
    """The ladder asks only for the spellings that name an invoice; it must get exactly those."""
    found = numbers_in_text(text)
    known = {n.key for i, n in enumerate(found) if pick >> (i % 16) & 1}
    assert numbers_in_text(text, known=known) == [n for n in found if n.key in known]
    for spelled in ("2026-0003", "F 2026 0042", "0007-00123/2025"):
        keys = set(number_keys(spelled))
        assert {n.key for n in numbers_in_text(spelled, known=keys)} >= keys


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("RF18 5390 0754 7034", True),
        ("RF18000000000539007547034", True),  # Moneybird's zero padding
        ("RF19 5390 0754 7034", False),
        ("1223 4534 6225 67", True),
        ("1223 4534 6225 69", False),
        ("1234567", True),  # seven digits carry no check digit
        ("ABC-123", False),
    ],
)
def test_a_reference_key_is_judged_by_its_check_digits(text: str, valid: bool) -> None:
    key = reference_key(text)
    assert key is not None and key_valid(key) is valid
