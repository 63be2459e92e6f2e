"""Labelled test data for reconciliation benchmarks: invoices, bank transactions and the truth.

`generate(seed, invoices)` gives rows for the `invoices` and `bank_transactions` tables and, per
transaction (by `dedup_key`), the invoices it really pays and how much goes to each. Same seed and
`today`, same data: only `random.Random(seed)` is used. Shares per scenario: `SCENARIOS`.

Invoices (source `bench`) are dated over the year before `today` and numbered per year in date
order: `2026-00042`, for a few % of customers `F2026-0042` or a plain `100042`; due after 14 or 30
days. `payment_reference`: mostly an RF reference as Moneybird stores it (`RF` + check + a code
scrambled from the remote id, zero-padded to 21 characters; payers mostly type it without the
zeros), some a 16-digit betalingskenmerk, some none. Half the customers have `customer_iban` (also
in `raw` as `contact.sepa_iban`). `state`/`total_paid` say what the source knows: about half the
bank payments are registered there, the rest not (`open`/`late` with money on the bank); some
invoices are `paid` with no money (`paid_no_bank`); others are simply unpaid. Credit notes are
negative. Transactions: on `MAIN_ACCOUNT` (~90 %) or `SECOND_ACCOUNT`, booked after the invoice
date; Dutch counterparty IBANs with valid check digits, one per party. Distractors stand next to
numbers and references and in noise: order/KvK/customer numbers, amounts, dates, a longer number
holding one of our numbers (`1202600042999`), a valid betalingskenmerk of the tax office, and on
outgoing supplier payments a supplier number shaped like ours (never one of our credit notes).
Incoming noise never holds a whole token that normalises to one of our invoice numbers.

Kinds (`Dataset.kinds`) and truth (`Dataset.truth`: [(invoice remote_id, amount)], signed like
the transaction; `[]` pays nothing):
- `reference`: the RF or betalingskenmerk in `payment_reference` (issuer `ISO`/`CUR`), the
  description or `end_to_end_id`; with or without spaces, sometimes lower case -> [(inv, total)].
- `reference_typo`: a betalingskenmerk with one digit wrong (check digit fails), in the text or
  `payment_reference`, from the customer's account, an amount no other invoice has -> the invoice
  meant (the reference alone must not match it automatically).
- `number`: the number in a spelling a person accepts (`2026-00042`, `2026 00042`, `202600042`,
  `2026-42`, `F2026-00042`, `2026/00042`; `f2026-0042`, `2026-0042`, `F20260042`, ...).
- `iban_amount`: no reference or number; the IBAN is the customer's `customer_iban` or that of an
  earlier `reference` payment of the customer; the amount is exactly one of its invoices.
- `ambiguous_amount`: 2-3 invoices of one customer (known IBAN) with the same amount, one paid
  without reference -> the one picked at random (the source registered none). An automatic
  match is an error here even when it happens to be right.
- `batch_numbers` / `batch_sum`: one transaction pays 2-5 invoices of one customer, all numbers
  in the text, or only the known IBAN and the exact sum (no other subset of the customer's
  invoices adds up to it) -> every invoice with its total.
- `partial`: 2-3 transactions with the number or reference add up to the total -> each with its
  own amount. `partial_open`: 1-2 such transactions cover part of it; the rest stays open.
- `overpayment`: one transaction pays more -> [(inv, invoice total)]; the remainder unallocated.
- `double_payment`: the same payment twice -> the earlier pays the invoice, the later [] (to be
  refunded).
- `third_party`: someone else's name and IBAN, number or reference in the text.
- `typo_number`: the number with a slip (swapped, changed, dropped or doubled digit, wrong
  year; may be another invoice's number), customer's account, an amount no other invoice has ->
  the invoice meant (a suggestion).
- `fuzzy_name`: only a name written differently (`BAKKERIJ JANSEN BV`), an IBAN never seen
  before and an amount no other invoice has -> that invoice (a suggestion).
- `refund`: outgoing, pays a credit note, its number in the text -> [(note, negative total)].
- `direct_debit`: a SEPA collection (`SEPA Incasso ...`; `end_to_end_id` the RF reference or
  `INC-` + number) -> [(inv, total)]. `dd_return`: its return, later, outgoing, same
  `end_to_end_id`, `return_reason` `AC06`/`MD06`/..., a third also `reversal` -> [(inv, -total)]:
  the invoice nets to zero (the source may still say `paid`).
- `noise`: [].
Invoices without transactions: `unpaid`, `paid_no_bank` (`Dataset.invoice_kinds` names the
scenario of every invoice). Per invoice the allocations add up to its total, except
`partial_open` (less), `dd_return` (zero), `ambiguous_amount` twins and those two (none).

`transactions=None` means as many as invoices; otherwise exactly that many: scenarios that do not
fit leave their invoices unpaid, the rest (at least a tenth) is noise.

    .venv/bin/python bench/reconcile_data.py [--seed 1] [--invoices 100000] [--transactions N]
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import math
import operator
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa

if __name__ == "__main__":  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.schema import bank_transactions, invoices  # noqa: E402

_T = TypeVar("_T")

SOURCE = "bench"
MAIN_ACCOUNT = "NL91ABNA0417164300"
#: the brief's `NL02RABO0123456789` fails the IBAN mod-97 check; these are its valid digits
SECOND_ACCOUNT = "NL44RABO0123456789"
ORIGIN = "camt053"
ORIGIN_FILE = "bench.xml sha256:0"
CREDITOR_ID = "NL71ZZZ301234560000"
OUR_NAME = "Invoice Sync Demo B.V."

#: share of scenarios (out of 100) per kind; a scenario has one invoice unless said otherwise
SCENARIOS: dict[str, int] = {
    "reference": 27,
    "reference_typo": 1,
    "number": 14,
    "iban_amount": 5,  # 1-2 invoices paid, 0-2 left unpaid
    "ambiguous_amount": 2,  # 2-3 invoices, 0-1 other
    "batch_numbers": 2,  # 2-5 invoices
    "batch_sum": 2,  # 2-4 invoices, 0-2 left unpaid
    "partial": 3,
    "partial_open": 1,
    "overpayment": 1,
    "double_payment": 1,
    "third_party": 3,
    "typo_number": 2,
    "fuzzy_name": 2,
    "refund": 3,
    "direct_debit": 3,
    "dd_return": 1,
    "paid_no_bank": 5,
    "unpaid": 22,
}
#: transactions a scenario needs at most
_MAX_TX = {
    "unpaid": 0,
    "paid_no_bank": 0,
    "iban_amount": 2,
    "partial": 3,
    "partial_open": 2,
    "double_payment": 2,
    "dd_return": 2,
}
#: invoices a scenario needs at least
_MIN_INVOICES = {"ambiguous_amount": 2, "batch_numbers": 2, "batch_sum": 2}
#: every kind a transaction can have
TX_KINDS = (
    "reference",
    "reference_typo",
    "number",
    "iban_amount",
    "ambiguous_amount",
    "batch_numbers",
    "batch_sum",
    "partial",
    "partial_open",
    "overpayment",
    "double_payment",
    "third_party",
    "typo_number",
    "fuzzy_name",
    "refund",
    "direct_debit",
    "dd_return",
    "noise",
)


@dataclass(frozen=True)
class Dataset:
    invoices: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    #: tx dedup_key -> [(invoice remote_id, amount allocated)]; [] = pays no invoice
    truth: dict[str, list[tuple[str, Decimal]]]
    #: tx dedup_key -> scenario kind
    kinds: dict[str, str]
    #: invoice remote_id -> the scenario it belongs to (includes `unpaid` and `paid_no_bank`)
    invoice_kinds: dict[str, str] = field(default_factory=dict)


# --- references and IBANs --------------------------------------------------------------------

_LETTER_DIGITS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})
_KENMERK_WEIGHTS = (2, 4, 8, 5, 10, 9, 7, 3, 6, 1)


def kenmerk_check_digit(digits: str) -> int:
    """The betalingskenmerk check digit for the digits after it (length code included)."""
    weights = _KENMERK_WEIGHTS * (len(digits) // 10 + 1)
    total = sum(w * int(d) for w, d in zip(weights, reversed(digits), strict=False))
    check = 11 - total % 11
    return 1 if check == 10 else 0 if check == 11 else check


def betalingskenmerk(body: str) -> str:
    """A 16-digit betalingskenmerk: check digit + 15 digits."""
    assert len(body) == 15 and body.isdigit()
    return f"{kenmerk_check_digit(body)}{body}"


def kenmerk_is_valid(reference: str) -> bool:
    return (
        reference.isdigit()
        and len(reference) == 16
        and (kenmerk_check_digit(reference[1:]) == int(reference[0]))
    )


def rf_reference(code: str) -> str:
    """ISO 11649 creditor reference (short form) for an alphanumeric code."""
    check = 98 - int(f"{code}RF00".translate(_LETTER_DIGITS)) % 97
    return f"RF{check:02d}{code}"


def nl_iban(bank: str, account: str) -> str:
    check = 98 - int(f"{bank}{account}NL00".translate(_LETTER_DIGITS)) % 97
    return f"NL{check:02d}{bank}{account}"


def _group4(text: str) -> str:
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def _cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _nl_amount(cents: int) -> str:
    """1234567 -> '12.345,67'."""
    euros, rest = divmod(abs(cents), 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


# --- names -----------------------------------------------------------------------------------

# fmt: off
_TRADES = (
    "Bakkerij", "Slagerij", "Installatiebedrijf", "Schildersbedrijf", "Hoveniersbedrijf",
    "Aannemersbedrijf", "Transportbedrijf", "Adviesbureau", "Architectenbureau", "Autobedrijf",
    "Fietsenwinkel", "Kapsalon", "Tandartspraktijk", "Fysiotherapie", "Drukkerij", "Timmerbedrijf",
    "Loodgietersbedrijf", "Dakdekkersbedrijf", "Cafe", "Restaurant", "Bloemenhandel", "Groothandel",
    "Boekhandel", "Makelaardij", "Notariskantoor", "Glazenwassersbedrijf", "Schoonmaakbedrijf",
    "Kaashandel", "Visspecialist", "Elektrotechniek", "Tegelzetterij", "Stukadoorsbedrijf",
    "Metaalbewerking", "Verhuisbedrijf", "Reisbureau", "Opticien", "Kinderopvang", "Hotel",
    "Garage", "Zeilmakerij",
)
_SURNAMES = (
    "Jansen", "de Jong", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
    "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
    "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer",
    "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen",
    "van den Broek", "de Bruijn", "de Bruin", "van der Heijden", "Schouten", "van Beek", "Willems",
    "van Vliet", "van de Ven", "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal",
    "Prins", "Blom", "Huisman", "Peeters", "de Jonge", "Kuipers", "van Veen", "Post", "Kuiper",
    "Veenstra", "Kramer", "van den Brink", "Scholten", "van Wijk", "Postma", "Martens", "Vink",
    "de Ruiter", "Timmermans", "Groen", "Gerritsen", "Jonker", "van Loon", "Boer", "van der Velde",
    "Willemsen", "Smeets", "de Lange", "de Vos", "Bosch", "van Dongen", "Schipper", "de Koning",
    "van der Laan", "Koning", "Driessen", "van Doorn", "Hermans", "Evers", "van den Bosch",
    "van der Meulen", "Hofman", "Bosman", "Wouters", "Sanders", "van der Horst", "Mol", "Kuijpers",
    "Molenaar", "van de Pol", "de Leeuw", "Verbeek", "Oosterhuis",
)
_FIRST_NAMES = (
    "Jan", "Johan", "Kees", "Piet", "Willem", "Henk", "Gerrit", "Hans", "Peter", "Marco", "Dennis",
    "Sander", "Bas", "Thijs", "Daan", "Lars", "Ruben", "Joost", "Maarten", "Erik", "Anna", "Maria",
    "Els", "Ingrid", "Monique", "Sandra", "Linda", "Marieke", "Sanne", "Lotte", "Femke", "Anouk",
    "Eva", "Iris", "Noor", "Fleur", "Esther", "Karin", "Petra", "Wendy", "Youssef", "Mohamed",
    "Fatima", "Priya", "Tim", "Niels", "Roel", "Jeroen", "Wouter", "Bram",
)
_CITIES = (
    "Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Groningen", "Tilburg", "Almere",
    "Breda", "Nijmegen", "Apeldoorn", "Haarlem", "Arnhem", "Enschede", "Amersfoort", "Zwolle",
    "Leiden", "Maastricht", "Dordrecht", "Zoetermeer", "Deventer", "Delft", "Alkmaar", "Venlo",
    "Leeuwarden", "Hilversum", "Hengelo", "Purmerend", "Gouda", "Lelystad", "Assen", "Emmen",
    "Middelburg", "Den Bosch", "Helmond", "Harderwijk", "Zaandam", "Hoorn", "Ede", "Weert",
)
_WORD_A = (
    "Groen", "Bouw", "Techno", "Zon", "Water", "Licht", "Noord", "Zuid", "Oost", "West", "Stad",
    "Land", "Duin", "Polder", "Molen", "Haven", "Kust", "Dijk", "Tuin", "Klok",
)
_WORD_B = (
    "werk", "service", "techniek", "groep", "partners", "advies", "bouw", "design", "zorg",
    "logistiek",
)
_FORMS = (" B.V.", " B.V.", " B.V.", " B.V.", " V.O.F.", "", "", " Holding B.V.", " & Zn.")
_FORM_WORDS = {"b.v.", "bv", "v.o.f.", "vof", "holding", "&", "zn.", "zn"}
_SUPPLIERS = (
    "KPN B.V.", "Eneco Zakelijk", "Vattenfall Klantenservice N.V.", "Makro Nederland B.V.",
    "Sligro Food Group Nederland B.V.", "Hanos Groothandel", "Coolblue B.V.", "Bol.com B.V.",
    "Shell Nederland Verkoopmaatschappij", "Technische Unie B.V.", "Rexel Nederland B.V.",
    "Bouwmaat Nederland B.V.", "Office Centre B.V.", "Centraal Beheer", "Univé Schade",
    "Hornbach Bouwmarkt", "Kantoorpartner B.V.", "Brandstofhandel Koops", "Ziggo Zakelijk",
    "Exact Online", "Vodafone Libertel B.V.", "PostNL Pakketten", "DHL Parcel", "Lyreco B.V.",
)
_MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
    "oktober", "november", "december",
)
_BANKS = ("INGB", "RABO", "ABNA", "SNSB", "ASNB", "TRIO", "KNAB", "BUNQ", "RBRB")
_BANK_CUM = (35, 65, 85, 90, 93, 95, 97, 99)
_RETURN_REASONS = ("AC06", "MD06", "AM04", "MS02", "MD01")
_GENERIC_TEXTS = (
    None, "Betaling", "Overboeking", "Bedankt voor de levering", "Termijnbetaling", "Zie factuur",
    "Betaling openstaande post", "Betaling", "Groet", None,
)
_NUMBER_TEXTS = (
    "Factuur {n}", "factuur {n}", "Fact. nr {n}", "Betaling factuur {n}", "{n}",
    "Factuurnummer {n}", "fact {n}", "Inv. {n}", "Betreft factuur {n}, dank u wel",
    "Uw factuur {n}", "FACTUUR {n}",
)
_REFERENCE_TEXTS = (
    "{r}", "Betalingskenmerk {r}", "kenmerk {r}", "Betaling {r}", "{r} bedankt", "Ref {r}",
)
# fmt: on


def _capital(surname: str) -> str:
    """`de Vries` -> `De Vries`, as written without a first name."""
    return surname[0].upper() + surname[1:]


def _name_key(name: str) -> frozenset[str]:
    """Tokens that tell customers apart, whatever their order or legal form."""
    return frozenset(t for t in name.lower().replace(",", " ").split() if t not in _FORM_WORDS)


# --- the generator ---------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Customer:
    remote_id: str
    number: int
    name: str
    base: str  # the name without its legal form
    first: str | None  # persons only
    last: str | None
    iban: str  # the account it pays from
    known: bool  # `customer_iban` filled on its invoices
    style: str  # invoice numbering: "std" 2026-00042, "F" F2026-0042, "plain" 100042
    amounts: set[int] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class _Invoice:
    remote_id: str
    customer: _Customer
    date: dt.date
    due: dt.date
    year: int
    seq: int
    number: str
    excl: int
    tax: int
    total: int
    reference: str | None  # as stored on the invoice
    ref_kind: str | None  # "ISO" or "CUR"
    ref_short: str | None  # RF without the padding zeros, or the betalingskenmerk
    known_paid: int = 0  # cents the source has registered


@dataclass(slots=True, eq=False)
class _Tx:
    date: dt.date
    account: str
    amount: int
    name: str | None
    iban: str | None
    description: str | None
    kind: str
    truth: list[tuple[str, int]]
    reference: str | None = None
    issuer: str | None = None
    end_to_end: str | None = None
    reversal: bool = False
    return_reason: str | None = None


class _Generator:
    def __init__(self, seed: int, invoices: int, transactions: int, today: dt.date) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.n_invoices = invoices
        self.n_transactions = transactions
        days = [today - dt.timedelta(days=n) for n in range(366)]
        self.dates = sorted(days[self._int(1, 365)] for _ in range(invoices))
        self.invoices: list[_Invoice] = []
        self.invoice_kinds: dict[str, str] = {}
        self.txs: list[_Tx] = []
        self.customers: list[_Customer] = []
        self.pool: list[_Customer] = []
        self.names: set[frozenset[str]] = set()
        self.ibans: set[str] = {MAIN_ACCOUNT, SECOND_ACCOUNT}
        self.used_amounts: set[int] = set()  # totals of all invoices so far
        self.reserved: set[int] = set()  # totals no other invoice may have
        self.seqs: dict[int, int] = {}
        self.next_invoice_id = 412_000_000_000_000_000
        self.next_customer_id = 398_000_000_000_000_000
        self.third_parties = [self._third_party() for _ in range(max(10, invoices // 300))]
        self.suppliers = [(name, self._iban()) for name in _SUPPLIERS]
        self.employees = [
            (f"{self._pick(_FIRST_NAMES)} {self._pick(_SURNAMES)}", self._iban())
            for _ in range(max(3, min(40, invoices // 500)))
        ]
        self.pool_size = max(10, invoices // 6)

    def _int(self, low: int, high: int) -> int:
        """`random.randint`, several times faster (the hot paths call it a million times)."""
        return low + int(self.rng.random() * (high - low + 1))

    def _pick(self, options: Sequence[_T]) -> _T:
        return options[int(self.rng.random() * len(options))]

    # --- parties ---

    def _iban(self) -> str:
        rng = self.rng
        while True:
            digits = f"{int(rng.random() * 10**9):09d}"
            weighted = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
            last = -weighted % 11
            if last == 10:
                continue
            bank = _BANKS[bisect.bisect(_BANK_CUM, rng.random() * 100)]
            iban = nl_iban(bank, f"{digits}{last}")
            if iban not in self.ibans:
                self.ibans.add(iban)
                return iban

    def _name(self) -> tuple[str, str, str | None, str | None]:
        """(name, name without legal form, first name, surname), unique by `_name_key`."""
        rng = self.rng
        for attempt in range(1000):
            if rng.random() < 0.3:
                first, last = self._pick(_FIRST_NAMES), self._pick(_SURNAMES)
                if attempt > 20:
                    last = f"{last}-{self._pick(_SURNAMES)}"
                name = f"{first} {last}"
                if _name_key(name) not in self.names:
                    self.names.add(_name_key(name))
                    return name, name, first, last
                continue
            trade, surname = self._pick(_TRADES), _capital(self._pick(_SURNAMES))
            city = self._pick(_CITIES)
            r = rng.random()
            if r < 0.35:
                base = f"{trade} {surname}"
            elif r < 0.45:
                base = f"{surname} {trade}"
            elif r < 0.55:
                base = f"{trade} {city}"
            elif r < 0.65:
                base = f"{surname} & {_capital(self._pick(_SURNAMES))}"
            elif r < 0.8:
                base = f"{self._pick(_WORD_A)}{self._pick(_WORD_B)} {city}"
            else:
                base = f"{trade} {surname} {city}"
            if attempt > 20:
                base = f"{base} {self._pick(_CITIES)}"
            key = _name_key(base)
            if key not in self.names:
                self.names.add(key)
                return base + self._pick(_FORMS), base, None, None
        raise RuntimeError("ran out of customer names")

    def _customer(self, known: bool | None = None) -> _Customer:
        rng = self.rng
        name, base, first, last = self._name()
        self.next_customer_id += self._int(1, 99_999)
        r = rng.random()
        customer = _Customer(
            remote_id=str(self.next_customer_id),
            number=len(self.customers) + 1,
            name=name,
            base=base,
            first=first,
            last=last,
            iban=self._iban(),
            known=rng.random() < 0.5 if known is None else known,
            style="std" if r < 0.94 else "F" if r < 0.97 else "plain",
        )
        self.customers.append(customer)
        return customer

    def _pool_customer(self) -> _Customer:
        """A customer shared by scenarios; a few have many invoices, most a handful."""
        index = int(self.pool_size * self.rng.random() ** 1.5)
        while index >= len(self.pool):
            self.pool.append(self._customer())
        return self.pool[index]

    def _third_party(self) -> tuple[str, str]:
        rng = self.rng
        surname = _capital(self._pick(_SURNAMES))
        r = rng.random()
        if r < 0.3:
            name = f"Administratiekantoor {surname}"
        elif r < 0.5:
            name = f"{surname} Beheer B.V."
        elif r < 0.65:
            name = f"Boekhoudkantoor {self._pick(_CITIES)}"
        elif r < 0.75:
            name = f"Stichting {self._pick(_WORD_A)}{self._pick(_WORD_B)}"
        else:
            name = f"{self._pick(_FIRST_NAMES)} {self._pick(_SURNAMES)}"
        return name, self._iban()

    def _bank_name(self, c: _Customer) -> str:
        """The customer's name as a bank shows it."""
        r = self.rng.random()
        if c.first is not None and c.last is not None:
            if r < 0.4:
                return c.name
            if r < 0.6:
                return f"{c.first[0]}. {c.last}"
            if r < 0.8:
                return f"{c.first[0]} {c.last}".upper()
            return f"{c.last} {c.first[0]}".upper()
        if r < 0.5:
            return c.name
        if r < 0.75:
            return c.name.upper()
        if r < 0.9:
            return c.name.upper().replace(".", "")
        return c.base

    def _fuzzy_name(self, c: _Customer) -> str:
        """Written differently, but a person would see it is this customer."""
        if c.first is not None and c.last is not None:
            options = [
                c.name.upper(),
                f"{c.last} {c.first}".upper(),
                f"{_capital(c.last)} {c.first}",
                f"{c.first} {c.last}".lower(),
            ]
        else:
            options = [
                c.name.upper().replace(".", ""),
                c.base.upper(),
                c.base,
                c.base.lower(),
                c.name.replace("B.V.", "BV").replace("V.O.F.", "VOF"),
            ]
        return self._pick([o for o in options if o != c.name])

    # --- invoices ---

    def _amount(
        self, customer: _Customer, unique: bool = False, credit: bool = False, minimum: int = 0
    ) -> int:
        """A total (cents, incl. VAT) this customer has not used yet, now taken; `unique`: no
        other invoice has it or ever will."""
        rng = self.rng
        while True:
            if rng.random() < 0.1:
                total = self._pick((4900, 9900, 12100, 25000, 36300, 60500, 121000, 242000))
                total += rng.randrange(0, 3) * 100
            else:
                low, high = (1500, 400_000) if credit else (2500, 1_800_000)
                total = int(math.exp(rng.uniform(math.log(low), math.log(high))))
            if total < minimum:
                continue
            if credit:
                total = -total
            if total in customer.amounts or total in self.reserved:
                continue
            if unique and total in self.used_amounts:
                continue
            if unique:
                self.reserved.add(total)
            customer.amounts.add(total)
            return total

    def _invoice(
        self,
        customer: _Customer,
        kind: str,
        *,
        total: int | None = None,
        unique: bool = False,
        credit: bool = False,
        minimum: int = 0,
        reference: str | None = "any",
    ) -> _Invoice:
        """`reference`: "any" (mostly RF, some betalingskenmerk, some none), "ref" (RF or
        betalingskenmerk), "CUR", or None."""
        rng = self.rng
        date = self.dates[len(self.invoices)]
        if total is None:
            total = self._amount(customer, unique=unique, credit=credit, minimum=minimum)
        customer.amounts.add(total)
        self.used_amounts.add(total)
        r = rng.random()
        rate = 21 if r < 0.8 else 9 if r < 0.95 else 0
        # excl = total / (1 + rate), rounded half up (away from zero for credit notes)
        excl = (abs(total) * 200 + 100 + rate) // (200 + 2 * rate)
        if total < 0:
            excl = -excl
        tax = total - excl
        seq = self.seqs.get(date.year, 0) + 1
        self.seqs[date.year] = seq
        if customer.style == "std":
            number = f"{date.year}-{seq:05d}"
        elif customer.style == "F":
            number = f"F{date.year}-{seq:04d}"
        else:
            number = str(100_000 + len(self.invoices) + 1)
        self.next_invoice_id += self._int(1, 9_999)
        remote_id = str(self.next_invoice_id)
        if reference == "any":
            r = rng.random()
            reference = "ISO" if r < 0.75 else "CUR" if r < 0.92 else None
        elif reference == "ref":
            reference = "ISO" if rng.random() < 0.8 else "CUR"
        stored = short = None
        if reference == "ISO":
            # the id scrambled (an odd factor is a bijection mod 2**64): unique, and varied
            code = f"{self.next_invoice_id * 0x9E3779B97F4A7C15 % 2**64:X}"
            short = rf_reference(code)
            stored = f"{short[:4]}{code.rjust(21, '0')}"
        elif reference == "CUR":
            # the id scrambled (a factor prime to 10 is a bijection mod 10**15)
            body = self.next_invoice_id * 3_141_592_653_589_793 % 10**15
            stored = short = betalingskenmerk(f"{body:015d}")
        invoice = _Invoice(
            remote_id=remote_id,
            customer=customer,
            date=date,
            due=date + dt.timedelta(days=self._pick((14, 14, 30))),
            year=date.year,
            seq=seq,
            number=number,
            excl=excl,
            tax=tax,
            total=total,
            reference=stored,
            ref_kind=reference,
            ref_short=short,
        )
        self.invoices.append(invoice)
        self.invoice_kinds[remote_id] = kind
        return invoice

    # --- how payers write things ---

    def _spell_number(self, inv: _Invoice) -> str:
        r = self.rng.random()
        y, n = inv.year, inv.seq
        if inv.customer.style == "std":
            if r < 0.4:
                return inv.number
            if r < 0.52:
                return f"{y} {n:05d}"
            if r < 0.64:
                return f"{y}{n:05d}"
            if r < 0.8:
                return f"{y}-{n}"
            if r < 0.9:
                return f"F{y}-{n:05d}"
            return f"{y}/{n:05d}"
        if inv.customer.style == "F":
            if r < 0.4:
                return inv.number
            if r < 0.55:
                return inv.number.lower()
            if r < 0.7:
                return f"{y}-{n:04d}"
            if r < 0.8:
                return f"F{y}{n:04d}"
            if r < 0.9:
                return f"F {y}-{n:04d}"
            return f"F{y}-{n}"
        return inv.number

    def _typo_number(self, inv: _Invoice) -> str:
        """The number as written with one slip; never a spelling of the right number."""
        rng = self.rng
        if inv.customer.style == "plain":
            head, digits = "", inv.number
        else:
            head, digits = inv.number.rsplit("-", 1)
            head += "-"
        while True:
            r = rng.random()
            i = self._int(0, len(digits) - 1)
            if r < 0.3 and i + 1 < len(digits) and digits[i] != digits[i + 1]:
                typo = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            elif r < 0.6:
                typo = (
                    digits[:i] + self._pick("0123456789".replace(digits[i], "")) + digits[i + 1 :]
                )
            elif r < 0.75 and digits[i] != "0":
                typo = digits[:i] + digits[i + 1 :]
            elif r < 0.85 and digits[i] != "0":
                typo = digits[:i] + digits[i] + digits[i:]
            elif r >= 0.85 and head:
                year = str(inv.year)
                swapped = year[:2] + year[3] + year[2]  # 2026 -> 2062
                wrong = str(inv.year + self._pick((-1, 1))) if rng.random() < 0.5 else swapped
                return head.replace(year, wrong) + digits
            else:
                continue
            if typo.lstrip("0") != digits.lstrip("0") and typo.strip("0"):
                return head + typo

    def _spell_reference(self, inv: _Invoice, spaced: bool = True) -> str:
        assert inv.reference is not None and inv.ref_short is not None
        rng = self.rng
        base = inv.ref_short if inv.ref_kind == "CUR" or rng.random() < 0.65 else inv.reference
        if not spaced:
            return base
        r = rng.random()
        if r < 0.5:
            return base
        if r < 0.85:
            return _group4(base)
        return _group4(base).lower()

    def _long_number(self) -> str:
        """A number holding one of our invoice numbers inside it, or just a long number."""
        rng = self.rng
        if self.invoices and rng.random() < 0.5:
            other = self._pick(self.invoices)
            return f"{self._int(1, 9)}{other.year}{other.seq:05d}{self._int(100, 999)}"
        return str(self._int(300_000_000_000, 999_999_999_999))

    def _distractor(self) -> tuple[str, bool]:
        """Something next to the number that must not match anything, and whether it may stand
        before it (a date ending in a year may not: `15-03-2026 2026 00042`)."""
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return f"ordernr {self._int(30_000_000, 99_999_999)}", True
        if r < 0.45:
            return f"EUR {_nl_amount(self._int(100, 2_000_000))}", True
        if r < 0.6:
            return f"klantnr {self._int(10_000, 99_999)}", True
        if r < 0.75:
            return f"ref {self._long_number()}", True
        if r < 0.9:
            return f"KvK {self._int(30_000_000, 99_999_999)}", True
        day = self.today - dt.timedelta(days=self._int(0, 365))
        return f"dd {day.day:02d}-{day.month:02d}-{day.year}", False

    def _with_distractors(self, text: str, chance: float = 0.4) -> str:
        rng = self.rng
        if rng.random() < chance:
            distractor, lead = self._distractor()
            if lead and rng.random() < 0.5:
                return f"{distractor} {text}"
            return f"{text} {distractor}"
        return text

    def _number_text(self, inv: _Invoice) -> str:
        template = self._pick(_NUMBER_TEXTS)
        return self._with_distractors(template.format(n=self._spell_number(inv)))

    def _evidence(self, inv: _Invoice) -> tuple[str | None, str | None, str | None, str | None]:
        """(description, payment_reference, issuer, end_to_end_id) carrying the invoice's
        reference, or its number when it has none."""
        rng = self.rng
        if inv.reference is None:
            return self._number_text(inv), None, None, None
        r = rng.random()
        if r < 0.6:
            text = self._pick(_GENERIC_TEXTS) if rng.random() < 0.5 else None
            return text, self._spell_reference(inv), inv.ref_kind, None
        if r < 0.85:
            text = self._pick(_REFERENCE_TEXTS).format(r=self._spell_reference(inv))
            return self._with_distractors(text), None, None, None
        return self._pick(_GENERIC_TEXTS), None, None, self._spell_reference(inv, spaced=False)

    def _reference_or_number(self, inv: _Invoice) -> tuple[str | None, str | None, str | None]:
        """(description, payment_reference, issuer): the number, or the reference."""
        if inv.reference is None or self.rng.random() < 0.5:
            return self._number_text(inv), None, None
        if self.rng.random() < 0.5:
            return f"Betaling {self._spell_reference(inv)}", None, None
        return None, self._spell_reference(inv), inv.ref_kind

    # --- dates ---

    def _after(self, day: dt.date, low: int, high: int) -> dt.date:
        """A booking day `low`..`high` days after `day`, never after today; at least a day after
        unless `day` is today (invoices are dated before today, so a payment is always booked
        after its invoice)."""
        room = (self.today - day).days
        return day + dt.timedelta(days=max(min(1, room), min(room, self._int(low, high))))

    def _account(self) -> str:
        return MAIN_ACCOUNT if self.rng.random() < 0.9 else SECOND_ACCOUNT

    def _tx(
        self,
        day: dt.date,
        amount: int,
        name: str | None,
        iban: str | None,
        description: str | None,
        kind: str,
        truth: list[tuple[str, int]],
        account: str | None = None,
        **extra: Any,
    ) -> _Tx:
        tx = _Tx(
            date=day,
            account=account or self._account(),
            amount=amount,
            name=name,
            iban=iban,
            description=description,
            kind=kind,
            truth=truth,
            **extra,
        )
        self.txs.append(tx)
        return tx

    def _knows(self) -> bool:
        """Has the source registered a payment that is on the bank?"""
        return self.rng.random() < 0.5

    # --- scenarios: each takes at most `room` invoices ---

    def reference(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "reference", reference="ref")
        self._pay_by_reference(inv, c)

    def _pay_by_reference(self, inv: _Invoice, c: _Customer) -> _Tx:
        text, ref, issuer, e2e = self._evidence(inv)
        tx = self._tx(
            self._after(inv.date, 1, 40),
            inv.total,
            self._bank_name(c),
            c.iban,
            text,
            "reference",
            [(inv.remote_id, inv.total)],
            reference=ref,
            issuer=issuer,
            end_to_end=e2e,
        )
        if self._knows():
            inv.known_paid = inv.total
        return tx

    def reference_typo(self, room: int) -> None:
        rng = self.rng
        c = self._pool_customer()
        inv = self._invoice(c, "reference_typo", reference="CUR", unique=True)
        assert inv.ref_short is not None
        digits = inv.ref_short
        while True:
            i = self._int(0, 15)
            typo = digits[:i] + self._pick("0123456789".replace(digits[i], "")) + digits[i + 1 :]
            if not kenmerk_is_valid(typo):
                break
        if rng.random() < 0.35:
            text, ref, issuer = self._pick(_GENERIC_TEXTS), typo, "CUR"
        else:
            shown = _group4(typo) if rng.random() < 0.5 else typo
            text, ref, issuer = self._pick(_REFERENCE_TEXTS).format(r=shown), None, None
        self._tx(
            self._after(inv.date, 1, 40),
            inv.total,
            self._bank_name(c),
            c.iban,
            text,
            "reference_typo",
            [(inv.remote_id, inv.total)],
            reference=ref,
            issuer=issuer,
        )
        if self._knows():
            inv.known_paid = inv.total

    def number(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "number", reference="any")
        self._tx(
            self._after(inv.date, 1, 40),
            inv.total,
            self._bank_name(c),
            c.iban,
            self._number_text(inv),
            "number",
            [(inv.remote_id, inv.total)],
            end_to_end=self._payer_e2e(),
        )
        if self._knows():
            inv.known_paid = inv.total

    def _payer_e2e(self) -> str | None:
        r = self.rng.random()
        if r < 0.5:
            return None
        if r < 0.8:
            return "NOTPROVIDED"
        return f"E2E{self.rng.getrandbits(48):012X}"

    def iban_amount(self, room: int) -> None:
        rng = self.rng
        c = self._customer(known=rng.random() < 0.5)
        earlier: _Tx | None = None
        if not c.known and room >= 2:
            first = self._invoice(c, "reference", reference="ref")
            earlier = self._pay_by_reference(first, c)
            room -= 1
        extras = self._int(0, min(2, room - 1))
        before = self._int(0, extras)
        for _ in range(before):
            self._invoice(c, "unpaid")
        inv = self._invoice(c, "iban_amount")
        for _ in range(extras - before):
            self._invoice(c, "unpaid")
        day = self._after(inv.date, 1, 45)
        if earlier is not None and day <= earlier.date:
            day = earlier.date + dt.timedelta(days=1)
        if day > self.today:  # no room for a later payment: the IBAN must be known
            day = self.today
            c.known = True
        if earlier is None:
            c.known = True
        self._tx(
            day,
            inv.total,
            self._bank_name(c),
            c.iban,
            self._pick(_GENERIC_TEXTS),
            "iban_amount",
            [(inv.remote_id, inv.total)],
            end_to_end=self._payer_e2e(),
        )
        if self._knows():
            inv.known_paid = inv.total

    def ambiguous_amount(self, room: int) -> None:
        rng = self.rng
        c = self._customer(known=True)
        count = self._int(2, min(3, room))
        total = self._amount(c)
        twins = [self._invoice(c, "ambiguous_amount", total=total) for _ in range(count)]
        if room > count and rng.random() < 0.5:
            self._invoice(c, "unpaid")
        paid = self._pick(twins)
        self._tx(
            self._after(twins[-1].date, 1, 45),
            total,
            self._bank_name(c),
            c.iban,
            self._pick(_GENERIC_TEXTS),
            "ambiguous_amount",
            [(paid.remote_id, total)],
        )

    def batch_numbers(self, room: int) -> None:
        rng = self.rng
        c = self._pool_customer()
        batch = [self._invoice(c, "batch_numbers") for _ in range(self._int(2, min(5, room)))]
        numbers = [self._spell_number(inv) for inv in batch]
        r = rng.random()
        if r < 0.4:
            text = "Facturen " + ", ".join(numbers[:-1]) + " en " + numbers[-1]
        elif r < 0.7:
            text = " ".join(numbers)
        elif r < 0.85:
            text = "fact " + "/".join(numbers)
        else:
            text = "Betaling facturen: " + "; ".join(numbers)
        self._pay_batch(c, batch, self._with_distractors(text, 0.25), "batch_numbers")

    def _pay_batch(self, c: _Customer, batch: list[_Invoice], text: str | None, kind: str) -> None:
        total = sum(inv.total for inv in batch)
        self._tx(
            self._after(max(inv.date for inv in batch), 1, 45),
            total,
            self._bank_name(c),
            c.iban,
            text,
            kind,
            [(inv.remote_id, inv.total) for inv in batch],
        )
        if self._knows():
            for inv in batch:
                inv.known_paid = inv.total

    def batch_sum(self, room: int) -> None:
        c = self._customer(known=True)
        size = self._int(2, min(4, room))
        extras = self._int(0, min(2, room - size))
        totals = [self._amount(c) for _ in range(size)]
        target = sum(totals)
        others: list[int] = []
        while len(others) < extras:  # no other subset of its invoices may add up to the sum
            amount = self._amount(c)
            pool = totals + others + [amount]
            if all(
                sum(combo) != target
                for k in range(1, len(pool) + 1)
                for combo in combinations(pool, k)
                if combo != tuple(totals)
            ):
                others.append(amount)
            else:
                c.amounts.add(amount)  # never used, but keep it from coming back
        batch = [self._invoice(c, "batch_sum", total=t) for t in totals]
        for amount in others:
            self._invoice(c, "unpaid", total=amount)
        self._pay_batch(c, batch, self._pick(_GENERIC_TEXTS), "batch_sum")

    def partial(self, room: int, complete: bool = True) -> None:
        rng = self.rng
        c = self._pool_customer()
        kind = "partial" if complete else "partial_open"
        # parts are whole tens of euros (the last one takes the cents): room for three of them
        inv = self._invoice(c, kind, minimum=3_000 if complete else 10_000)
        parts = self._int(2, 3) if complete else self._int(1, 2)
        covered = inv.total if complete else self._int(inv.total // 5, inv.total * 4 // 5)
        cuts = sorted(rng.sample(range(1, covered // 1000), parts - 1))
        bounds = [0, *(cut * 1000 for cut in cuts), covered]
        amounts = [high - low for low, high in zip(bounds, bounds[1:], strict=False)]
        day = inv.date
        text, ref, issuer = self._reference_or_number(inv)
        known = self._int(0, parts)
        for i, amount in enumerate(amounts):
            day = self._after(day, 1, 30)
            shown: str | None = text
            if text is not None and rng.random() < 0.5:
                shown = f"Termijn {i + 1} {text}" if rng.random() < 0.5 else f"Deelbetaling {text}"
            self._tx(
                day,
                amount,
                self._bank_name(c),
                c.iban,
                shown,
                kind,
                [(inv.remote_id, amount)],
                reference=ref,
                issuer=issuer,
            )
            if i < known:
                inv.known_paid += amount

    def partial_open(self, room: int) -> None:
        self.partial(room, complete=False)

    def overpayment(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "overpayment")
        extra = self._pick((self._int(1, 99), -inv.total % 1000 or 1000, self._int(100, 5000)))
        text, ref, issuer = self._reference_or_number(inv)
        self._tx(
            self._after(inv.date, 1, 40),
            inv.total + extra,
            self._bank_name(c),
            c.iban,
            text,
            "overpayment",
            [(inv.remote_id, inv.total)],
            reference=ref,
            issuer=issuer,
        )
        if self._knows():
            inv.known_paid = inv.total

    def double_payment(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "double_payment")
        text, ref, issuer = self._reference_or_number(inv)
        name = self._bank_name(c)
        first = self._after(inv.date, 1, 30)
        second = self._after(first, 0, 10)
        for day, truth in ((first, [(inv.remote_id, inv.total)]), (second, [])):
            self._tx(
                day,
                inv.total,
                name,
                c.iban,
                text,
                "double_payment",
                truth,
                reference=ref,
                issuer=issuer,
            )
        if self._knows():
            inv.known_paid = inv.total

    def third_party(self, room: int) -> None:
        rng = self.rng
        c = self._pool_customer()
        inv = self._invoice(c, "third_party")
        payer, iban = self._pick(self.third_parties)
        text, ref, issuer = self._reference_or_number(inv)
        if rng.random() < 0.5:
            on_behalf = f"{self._pick(('namens', 't.b.v.', 'voor'))} {c.name}"
            text = f"{text} {on_behalf}" if text else on_behalf
        self._tx(
            self._after(inv.date, 1, 40),
            inv.total,
            payer,
            iban,
            text,
            "third_party",
            [(inv.remote_id, inv.total)],
            reference=ref,
            issuer=issuer,
        )
        if self._knows():
            inv.known_paid = inv.total

    def typo_number(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "typo_number", unique=True)
        self._tx(
            self._after(inv.date, 1, 40),
            inv.total,
            self._bank_name(c),
            c.iban,
            self._pick(_NUMBER_TEXTS).format(n=self._typo_number(inv)),
            "typo_number",
            [(inv.remote_id, inv.total)],
        )
        if self._knows():
            inv.known_paid = inv.total

    def fuzzy_name(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "fuzzy_name", unique=True)
        self._tx(
            self._after(inv.date, 1, 40),
            inv.total,
            self._fuzzy_name(c),
            self._iban(),  # an account nobody has seen yet
            self._pick(_GENERIC_TEXTS),
            "fuzzy_name",
            [(inv.remote_id, inv.total)],
        )
        if self._knows():
            inv.known_paid = inv.total

    def refund(self, room: int) -> None:
        c = self._pool_customer()
        note = self._invoice(c, "refund", credit=True, reference=None)
        spelled = self._spell_number(note)
        text = self._pick(
            (
                f"Terugbetaling creditnota {spelled}",
                f"Creditnota {spelled}",
                f"Retour creditfactuur {spelled}",
                f"Restitutie {spelled}",
                f"Creditering factuur {spelled}",
            )
        )
        self._tx(
            self._after(note.date, 1, 30),
            note.total,
            self._bank_name(c),
            c.iban,
            text,
            "refund",
            [(note.remote_id, note.total)],
        )
        if self._knows():
            note.known_paid = note.total

    def _collect(self, inv: _Invoice, c: _Customer) -> _Tx:
        rng = self.rng
        if inv.ref_short is not None and inv.ref_kind == "ISO" and rng.random() < 0.5:
            e2e = inv.ref_short
        else:
            e2e = f"INC-{inv.number}"
        text = (
            f"SEPA Incasso algemeen doorlopend Incassant: {CREDITOR_ID} Naam: {OUR_NAME} "
            f"Machtiging: MDT-{c.number:05d} Omschrijving: Factuur {inv.number} "
            f"IBAN: {c.iban} Kenmerk: {e2e}"
        )
        day = self._after(inv.date, 3, (inv.due - inv.date).days)
        return self._tx(
            day,
            inv.total,
            c.name.upper()[:70],
            c.iban,
            text,
            "direct_debit",
            [(inv.remote_id, inv.total)],
            account=MAIN_ACCOUNT,
            end_to_end=e2e,
        )

    def direct_debit(self, room: int) -> None:
        c = self._pool_customer()
        inv = self._invoice(c, "direct_debit")
        self._collect(inv, c)
        if self.rng.random() < 0.8:
            inv.known_paid = inv.total

    def dd_return(self, room: int) -> None:
        rng = self.rng
        c = self._pool_customer()
        inv = self._invoice(c, "dd_return")
        collection = self._collect(inv, c)
        reason = self._pick(_RETURN_REASONS)
        day = self._after(collection.date, 2, 20 if reason != "MD06" else 56)
        text = f"Storno SEPA Incasso reden {reason} Kenmerk: {collection.end_to_end}"
        if rng.random() < 0.5:
            text += f" Omschrijving: Factuur {inv.number}"
        self._tx(
            day,
            -inv.total,
            collection.name,
            c.iban,
            text,
            "dd_return",
            [(inv.remote_id, -inv.total)],
            account=collection.account,
            end_to_end=collection.end_to_end,
            return_reason=reason,
            reversal=rng.random() < 0.35,
        )
        if rng.random() < 0.5:  # the source registered the collection, not the return
            inv.known_paid = inv.total

    def paid_no_bank(self, room: int) -> None:
        inv = self._invoice(self._pool_customer(), "paid_no_bank")
        inv.known_paid = inv.total

    def unpaid(self, room: int) -> None:
        credit = self.rng.random() < 0.04
        self._invoice(
            self._pool_customer(), "unpaid", credit=credit, reference=None if credit else "any"
        )

    # --- noise ---

    def noise(self, count: int) -> None:
        """`count` transactions that pay none of our invoices."""
        rng = self.rng
        credit_notes = {(inv.year, inv.seq) for inv in self.invoices if inv.total < 0}
        kenmerken = {inv.ref_short for inv in self.invoices if inv.ref_kind == "CUR"}
        start = self.today - dt.timedelta(days=365)

        def add(amount: int, name: str | None, iban: str | None, text: str, **extra: Any) -> None:
            self._tx(day, amount, name, iban, text, "noise", [], **extra)

        while count > 0:
            day = start + dt.timedelta(days=self._int(1, 365))
            month, year = _MONTHS[day.month - 1], day.year
            quarter = (day.month - 1) // 3 + 1
            r = rng.random()
            if r < 0.25:  # a supplier's invoice
                name, iban = self._pick(self.suppliers)
                s = rng.random()
                if s < 0.1:  # shaped like our numbers, but never one of our credit notes
                    seq = self._int(1, 99_999)
                    while (year, seq) in credit_notes:
                        seq = self._int(1, 99_999)
                    text = f"Factuur {year}-{seq:05d}"
                elif s < 0.5:
                    text = f"Factuur INV{self._int(10_000_000, 99_999_999)}"
                elif s < 0.8:
                    text = f"Klantnummer {self._int(3_000_000, 9_999_999)} {month} {year}"
                else:
                    text = f"Order {self._long_number()}"
                add(-self._int(500, 500_000), name, iban, text)
            elif r < 0.35:
                name, iban = self._pick(self.employees)
                add(-self._int(150_000, 600_000), name, iban, f"Salaris {month} {year}",
                    account=MAIN_ACCOUNT)  # fmt: skip
            elif r < 0.4:  # VAT, with a valid betalingskenmerk that is none of ours
                reference = betalingskenmerk(f"{rng.randrange(10**15):015d}")
                while reference in kenmerken:
                    reference = betalingskenmerk(f"{rng.randrange(10**15):015d}")
                add(-self._int(100_000, 2_500_000), "Belastingdienst", "NL86INGB0002445588",
                    f"Omzetbelasting {quarter}e kwartaal {year}", account=MAIN_ACCOUNT,
                    reference=reference, issuer="CUR")  # fmt: skip
            elif r < 0.45:
                add(-self._pick((185_000, 240_000, 312_500)), "Vastgoed Beheer Utrecht B.V.",
                    "NL20INGB0001234567", f"Huur {month} {year} bedrijfsruimte",
                    account=MAIN_ACCOUNT)  # fmt: skip
            elif r < 0.5:
                add(-self._int(500, 4_500), None, None, "Kosten zakelijk betalingsverkeer")
            elif r < 0.55:
                add(self._int(1, 20_000), None, None, f"Rente {quarter}e kwartaal {year}")
            elif r < 0.65:  # a supplier pays something back
                name, iban = self._pick(self.suppliers)
                text = f"Creditnota {self._int(30_000_000, 99_999_999)} retour"
                add(self._int(500, 80_000), name, iban, self._with_distractors(text))
            elif r < 0.75 and count >= 2:  # between our own accounts: both sides
                amount = self._int(10_000, 2_500_000)
                text = "Overboeking eigen rekening"
                add(-amount, OUR_NAME, SECOND_ACCOUNT, text, account=MAIN_ACCOUNT)
                add(amount, OUR_NAME, MAIN_ACCOUNT, text, account=SECOND_ACCOUNT)
                count -= 1
            elif r < 0.85 and self.pool:  # a customer's deposit on an offer: no invoice yet
                c = self._pick(self.pool)
                amount = self._int(5_000, 500_000)
                while amount in c.amounts:
                    amount = self._int(5_000, 500_000)
                offer = f"OFF-{self._int(1000, 9999)}-{self._pick('ABCDEFGH')}"
                add(amount, self._bank_name(c), c.iban, f"Aanbetaling offerte {offer}")
            elif r < 0.93:  # money in with numbers that are not ours
                name, iban = self._pick(self.third_parties)
                text = self._with_distractors(f"Terugbetaling ref {self._long_number()}", 0.7)
                add(self._int(100, 300_000), name, iban, text)
            else:  # card payments
                shop = self._pick(("Albert Heijn", "Jumbo", "Shell", "HEMA", "Praxis", "Action"))
                terminal = f"{self._pick('ABCDEFGHJKLMNPQRSTUVWXYZ')}{self._int(100, 999)}"
                city = self._pick(_CITIES).upper()
                add(
                    -self._int(100, 25_000),
                    None,
                    None,
                    f"BEA, Betaalpas {shop} {city},PAS{terminal}",
                )
            count -= 1

    # --- the whole data set ---

    def schedule(self) -> Iterator[str]:
        """Scenario kinds in blocks of 100 with the SCENARIOS shares, shuffled per block: every
        kind turns up within the first block already."""
        block = [kind for kind, share in SCENARIOS.items() for _ in range(share)]
        while True:
            self.rng.shuffle(block)
            yield from block

    def run(self) -> Dataset:
        reserve = self.n_transactions // 10
        budget = self.n_transactions - reserve
        kinds = self.schedule()
        while len(self.invoices) < self.n_invoices:
            room = self.n_invoices - len(self.invoices)
            kind = next(kinds)
            if len(self.txs) + _MAX_TX.get(kind, 1) > budget or room < _MIN_INVOICES.get(kind, 1):
                kind = "unpaid"
            getattr(self, kind)(room)
        if len(self.txs) < self.n_transactions:
            self.noise(self.n_transactions - len(self.txs))
        return self._rows()

    def _rows(self) -> Dataset:
        today = self.today
        synced = dt.datetime(today.year, today.month, today.day, 3, 0, tzinfo=dt.UTC)
        money: dict[int, Decimal] = {}

        def cents(value: int) -> Decimal:
            decimal = money.get(value)
            if decimal is None:
                decimal = money[value] = Decimal(value).scaleb(-2)
            return decimal

        invoice_rows = []
        for inv in self.invoices:
            c = inv.customer
            paid = inv.known_paid
            if paid == inv.total and paid != 0:
                state = "paid"
            elif inv.due < today:
                state = "late"
            elif paid:
                state = "partially_paid"
            else:
                state = "open"
            customer_iban = c.iban if c.known else None
            total = cents(inv.total)
            payload = {
                "id": inv.remote_id,
                "invoice_id": inv.number,
                "contact_id": c.remote_id,
                "contact": {
                    "id": c.remote_id,
                    "company_name": c.name,
                    "sepa_iban": customer_iban or "",
                },
                "state": state,
                "total_price_incl_tax": str(total),
                "payment_reference": inv.reference,
            }
            invoice_rows.append(
                {
                    "source": SOURCE,
                    "remote_id": inv.remote_id,
                    "remote_version": "1",
                    "number": inv.number,
                    "state": state,
                    "state_raw": None,
                    "customer_remote_id": c.remote_id,
                    "customer_name": c.name,
                    "customer_iban": customer_iban,
                    "credit_note": False,
                    "invoice_date": inv.date,
                    "due_date": inv.due,
                    "currency": "EUR",
                    "total_excl_tax": cents(inv.excl),
                    "total_tax": cents(inv.tax),
                    "total_incl_tax": total,
                    "total_paid": cents(paid),
                    "total_unpaid": cents(inv.total - paid),
                    "payment_reference": inv.reference,
                    "remote_updated_at": None,
                    "synced_at": synced,
                    "deleted_at": None,
                    "raw": orjson.dumps(payload).decode(),
                }
            )
        self.txs.sort(key=operator.attrgetter("date"))
        tx_rows = []
        truth: dict[str, list[tuple[str, Decimal]]] = {}
        kinds: dict[str, str] = {}
        days: dict[dt.date, tuple[dt.datetime, str, str]] = {}
        for n, tx in enumerate(self.txs, start=1):
            day = tx.date
            known = days.get(day)
            if known is None:
                known = days[day] = (
                    dt.datetime(day.year, day.month, day.day, 18, 0, tzinfo=dt.UTC),
                    day.isoformat(),
                    day.strftime("%Y%m%d"),
                )
            stamp, iso, compact = known
            bank_reference = f"{compact}BR{n:08d}"
            key = f"ref:{bank_reference}"
            amount = cents(tx.amount)
            raw = (
                f'<Ntry><Amt Ccy="EUR">{cents(abs(tx.amount))}</Amt><CdtDbtInd>'
                f"{'CRDT' if tx.amount > 0 else 'DBIT'}</CdtDbtInd><RvslInd>"
                f"{'true' if tx.reversal else 'false'}</RvslInd><BookgDt><Dt>{iso}"
                f"</Dt></BookgDt><AcctSvcrRef>{bank_reference}</AcctSvcrRef></Ntry>"
            )
            tx_rows.append(
                {
                    "account_iban": tx.account,
                    "booking_date": day,
                    "value_date": day,
                    "amount": amount,
                    "currency": "EUR",
                    "counterparty_name": tx.name,
                    "counterparty_iban": tx.iban,
                    "description": tx.description,
                    "payment_reference": tx.reference,
                    "payment_reference_issuer": tx.issuer,
                    "end_to_end_id": tx.end_to_end,
                    "bank_reference": bank_reference,
                    "reversal": tx.reversal,
                    "return_reason": tx.return_reason,
                    "origin": ORIGIN,
                    "origin_file": ORIGIN_FILE,
                    "import_id": None,
                    "source": None,
                    "remote_version": None,
                    "deleted_at": None,
                    "dedup_key": key,
                    "raw": raw,
                    "imported_at": stamp,
                }
            )
            truth[key] = [(remote_id, cents(value)) for remote_id, value in tx.truth]
            kinds[key] = tx.kind
        return Dataset(invoice_rows, tx_rows, truth, kinds, dict(self.invoice_kinds))


def generate(
    seed: int,
    invoices: int,
    transactions: int | None = None,
    today: dt.date = dt.date(2026, 6, 30),
) -> Dataset:
    """Labelled invoices and bank transactions (see the module docstring)."""
    if invoices < 0 or (transactions is not None and transactions < 0):
        raise ValueError("counts must not be negative")
    return _Generator(
        seed, invoices, invoices if transactions is None else transactions, today
    ).run()


# --- loading ---------------------------------------------------------------------------------


def load(engine: sa.Engine, data: Dataset, chunk: int = 5000) -> None:
    """Insert the invoices, then the bank transactions, in one transaction. PostgreSQL gets COPY,
    SQLite executemany in chunks. A column that the table lacks (in `store.schema` or in the
    database: an older revision measured against this one) is left out."""
    with engine.begin() as connection:
        present = {c["name"] for c in sa.inspect(connection).get_columns(invoices.name)}
        present &= set(invoices.c.keys())
        invoice_rows = data.invoices
        if invoice_rows and not set(invoice_rows[0]) <= present:
            invoice_rows = [{k: v for k, v in row.items() if k in present} for row in invoice_rows]
        for table, rows in ((invoices, invoice_rows), (bank_transactions, data.transactions)):
            if not rows:
                continue
            if connection.dialect.name == "postgresql":
                _copy(connection, table, rows, chunk)
            else:
                statement = table.insert()
                for start in range(0, len(rows), chunk):
                    connection.execute(statement, rows[start : start + chunk])


def _copy(
    connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], chunk: int
) -> None:
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    values = operator.itemgetter(*columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    for start in range(0, len(rows), chunk):
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows[start : start + chunk]:
                copy.write_row(values(row))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = generate(args.seed, args.invoices, args.transactions)
    seconds = time.perf_counter() - started
    print(
        f"{len(data.invoices)} invoices, {len(data.transactions)} transactions "
        f"(seed {args.seed}, {seconds:.2f} s)"
    )
    tx_counts = Counter(data.kinds.values())
    invoice_counts = Counter(data.invoice_kinds.values())
    print(f"{'kind':<18} {'transactions':>12} {'invoices':>9}")
    for kind in (*TX_KINDS, "unpaid", "paid_no_bank"):
        print(f"{kind:<18} {tx_counts.get(kind, 0):>12} {invoice_counts.get(kind, 0):>9}")
    states = Counter(row["state"] for row in data.invoices)
    print("invoice states:", ", ".join(f"{s} {n}" for s, n in sorted(states.items())))


if __name__ == "__main__":
    main()
