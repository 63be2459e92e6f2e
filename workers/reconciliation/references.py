"""What identifies an invoice in a bank transaction: structured payment references and invoice
numbers, normalized so that the spellings people and banks use compare equal.

- A betalingskenmerk (Dutch structured reference) is 16 digits (check digit + 15), 9-14 digits
  (check digit, length code, digits) or 7 digits (no check digit). Some banks' files carry
  references whose check digit fails: those still count, with less confidence.
- An RF creditor reference (ISO 11649) is validated by its mod 97-10 check digits.
- An invoice number is compared by its digits with leading zeros dropped (`F2026-0003`,
  `2026 0003` and `factuur 20260003` are one number), and only as whole digit runs: `2026-0003`
  is never found inside `1220260003`.
"""

from __future__ import annotations

import operator
import re
import string
from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import NamedTuple

_WEIGHTS = (2, 4, 8, 5, 10, 9, 7, 3, 6, 1)
_WEIGHTS_16 = _WEIGHTS + _WEIGHTS[:6]
#: fewer significant digits than this and a number is too common to be found in free text
MIN_NUMBER_DIGITS = 3


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalized reference and whether its check digits hold."""

    value: str
    valid: bool


def betalingskenmerk_valid(digits: str) -> bool:
    """The Betaalvereniging check: weights 2, 4, 8, 5, 10, 9, 7, 3, 6, 1 from the rightmost digit
    after the check digit; 7-digit references have none."""
    if not digits.isdigit():
        return False
    if len(digits) == 7:
        return True
    if len(digits) == 16:
        body = digits[1:]
    elif 9 <= len(digits) <= 14:
        if int(digits[1]) != (len(digits) - 2) % 10:
            return False
        body = digits[1:]
    else:
        return False
    total = sum(map(operator.mul, map(int, reversed(body)), _WEIGHTS_16))
    check = 11 - total % 11
    check = {10: 1, 11: 0}.get(check, check)
    return int(digits[0]) == check


def reference_key(text: str | None) -> str | None:
    """A reference as compared: spaces, dots and dashes dropped, letters upper-cased, an RF
    reference without its zero padding. (An invoice's own reference needs no check digits: only
    what the bank side says is judged.)"""
    if not text:
        return None
    value = text if text.isalnum() else _REFERENCE_NOISE.sub("", text)
    value = value.upper()
    if not value or value == "NOTPROVIDED":
        return None
    return _rf(value) if value.startswith("RF") else value


def normalize_reference(text: str | None) -> Reference | None:
    """A reference as given in a structured field (a camt `CdtrRefInf/Ref`, an EndToEndId, an
    invoice's `payment_reference`), with whether its check digits hold."""
    key = reference_key(text)
    return None if key is None else Reference(key, key_valid(key))


def key_valid(key: str) -> bool:
    """Whether the check digits of a reference as `reference_key` gives it hold (leading zeros
    of an RF reference change neither its value nor its check)."""
    if key.startswith("RF"):
        return rf_valid(key)
    return key.isdigit() and betalingskenmerk_valid(key)


_REFERENCE_NOISE = re.compile(r"[\s.\-]")
_SPACES = re.compile(r"\s")
_GROUP_BREAK = re.compile(r"[ .]")
_DIGITS = re.compile(r"\d+")

#: ISO 7064 reads letters as numbers: A = 10 ... Z = 35
_RF_NUMBERS = {ord(c): str(10 + i) for i, c in enumerate(string.ascii_uppercase)}


def rf_valid(value: str) -> bool:
    """ISO 11649 (the same mod 97-10 as python-stdnum's `iso11649`, which the tests hold this
    to): `RF`, two check digits, 1-21 letters or digits. Done here because a run checks every
    invoice's and transaction's reference, and stdnum's general-purpose version costs 60 µs a
    call (6 s at 100,000 invoices)."""
    if not 5 <= len(value) <= 25 or not value[2:4].isdigit():
        return False
    if not value.isascii() or not value.isalnum() or not value.isupper():
        return False
    return int((value[4:] + value[:4]).translate(_RF_NUMBERS)) % 97 == 1


def _rf_prefixes(compact: str) -> Iterator[str]:
    """The prefixes of `RFcc...` (upper case, no spaces) that validate, in one pass: the check
    of each longer prefix extends the remainder of the shorter one."""
    head = compact[:4]
    if not head[2:].isdigit():
        return
    tail = int(head.translate(_RF_NUMBERS))  # `RFcc` moved to the end: six digits
    remainder = 0
    for end in range(5, min(len(compact), 25) + 1):
        char = compact[end - 1]
        if not (char.isascii() and char.isalnum()):
            return
        digits = char.translate(_RF_NUMBERS)
        remainder = (remainder * 10 ** len(digits) + int(digits)) % 97
        if (remainder * 1_000_000 + tail) % 97 == 1:
            yield compact[:end]


def _rf(value: str) -> str:
    """Leading zeros of an RF reference's body change neither its meaning nor its check digits
    (Moneybird pads to 21 characters, payers type the short form): compared without them."""
    body = value[4:].lstrip("0") or "0"
    return value[:4] + body


_RF_IN_TEXT = re.compile(r"(?<![A-Z0-9])RF\s?\d{2}(?:\s?[A-Z0-9]){1,21}", re.IGNORECASE)
_DIGIT_GROUPS = re.compile(r"(?<![\d.,])\d+(?:[ .]\d+)*(?![\d,])")
#: what any digit group long enough for a betalingskenmerk contains: a cheap first look
_NINE_DIGITS = re.compile(r"\d(?:[ .]?\d){8}")


def references_in_text(text: str | None) -> Iterator[Reference]:
    """Structured references written in free text: every prefix of what follows `RF` that
    validates (a word after the reference is one more group to the regex, and one prefix in 97
    validates by chance, so the caller's lookup decides which one is ours), and 9-16 digit
    betalingskenmerken whose check digit holds."""
    if not text:
        return
    if "rf" in text or "RF" in text or "Rf" in text or "rF" in text:
        yield from _rf_in_text(text)
    if _NINE_DIGITS.search(text) is None:
        return
    for match in _DIGIT_GROUPS.finditer(text):
        spelled = match.group()
        if len(spelled) - spelled.count(" ") - spelled.count(".") < 9:
            continue
        groups = _GROUP_BREAK.split(spelled)
        for i in range(len(groups)):
            digits = ""
            for group in groups[i : i + 5]:
                digits += group
                if len(digits) > 16:
                    break
                if len(digits) >= 9 and betalingskenmerk_valid(digits):
                    yield Reference(digits, True)


def _rf_in_text(text: str) -> Iterator[Reference]:
    for match in _RF_IN_TEXT.finditer(text):
        for prefix in _rf_prefixes(_SPACES.sub("", match.group()).upper()):
            yield Reference(_rf(prefix), True)


def number_key(number: str | None) -> str | None:
    """An invoice number as compared: its digits, leading zeros dropped; None when it has too few
    to be told apart from other numbers in a text."""
    return _digits_key(_DIGITS.findall(number)) if number else None


def _digits_key(groups: list[str]) -> str | None:
    key = "".join(groups).lstrip("0")
    return key if len(key) >= MIN_NUMBER_DIGITS else None


def grouped_key(groups: list[str]) -> str | None:
    """A number of several digit groups with each group's leading zeros dropped (`2026-00042`
    and `2026-42` compare equal); None for a single group, which `number_key` covers."""
    if len(groups) < 2:
        return None
    key = "-".join(g.lstrip("0") or "0" for g in groups)
    return key if len(key.replace("-", "")) >= MIN_NUMBER_DIGITS else None


def number_keys(number: str | None) -> list[str]:
    """Every key an invoice number is found by in a text."""
    if not number:
        return []
    groups = _DIGITS.findall(number)
    return [k for k in (_digits_key(groups), grouped_key(groups)) if k is not None]


# A number in a text is made of tight units: digit runs bound by a dash, dot or underscore
# ("2026-0003"). A single space or slash between two units may or may not join them ("2026 0003"
# and "2026/0003" are one number, "2026 150,00" and "2026-0041/2026-0042" two), so both are tried.
_UNIT = re.compile(r"\d+(?:[-._]\d+)*")
_TIGHT = str.maketrans("-._", "   ")


class NumberInText(NamedTuple):
    key: str
    start: int
    end: int


def numbers_in_text(
    text: str | None, max_groups: int = 3, known: Container[str] | None = None
) -> list[NumberInText]:
    """Every way the text can spell a number: each tight unit, and up to `max_groups`
    neighbouring units joined. Never part of a digit run. With `known`, only the spellings
    whose key is in it (the invoice numbers there are: most spellings name none)."""
    if not text:
        return []
    found: list[NumberInText] = []
    run: list[tuple[list[str], int, int]] = []
    for match in _UNIT.finditer(text):
        start, end = match.span()
        if run and not (start == run[-1][2] + 1 and text[start - 1] in " /\t\n\r"):
            _spell(run, max_groups, found, known)
            run = []
        run.append((match.group().translate(_TIGHT).split(), start, end))
    if run:
        _spell(run, max_groups, found, known)
    return found


def _spell(
    run: list[tuple[list[str], int, int]],
    max_groups: int,
    found: list[NumberInText],
    known: Container[str] | None,
) -> None:
    for i in range(len(run)):
        groups: list[str] = []
        for j in range(i, min(len(run), i + max_groups)):
            groups = groups + run[j][0]
            for key in (_digits_key(groups), grouped_key(groups)):
                if key is not None and (known is None or key in known):
                    found.append(NumberInText(key, run[i][1], run[j][2]))


def longest_matches(found: list[NumberInText]) -> list[NumberInText]:
    """Of the numbers that name an invoice, those not inside a longer one that also does."""
    kept = []
    for item in found:
        if not any(
            other is not item
            and other.start <= item.start
            and item.end <= other.end
            and (other.end - other.start) > (item.end - item.start)
            for other in found
        ):
            kept.append(item)
    return kept
