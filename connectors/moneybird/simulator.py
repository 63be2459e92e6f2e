"""A Moneybird API v2 simulator: the sales-invoice synchronization pair over real HTTP.

Why it exists: the connector must be proven against the behaviour that breaks mirrors in
practice (the `period:this_year` default that silently hides older invoices, the 100-id cap on
fetches, the 150-per-5-minutes rate limit, dropped connections, truncated bodies, odd money
spellings) repeatably and at 100,000-invoice scale, without a Moneybird account.

Payloads follow `components/schemas/sales_invoice_response` of the official OpenAPI spec; the
contract test validates them, so no key here may be invented. Facts the spec does not settle:
- `administration_id` inside payloads is a JSON integer, as in the spec's own examples; record ids
  are 18-digit strings and `version` is the epoch second of `updated_at` (as in the examples).
- Only the `period` and `state` filter keys are honoured; other known keys (`reference`,
  `updated_after`, ...) are ignored like unknown ones, which only ever widens the answer.
- An invalid `state` or `period` value answers 400 with the spec's example body.
- Injected faults `429`, `5xx` and `drop` are answered before authentication and do not use up
  real rate-limit slots, so fault tests stay deterministic; `slow`, `truncate` and `invalid` answer
  normally otherwise and do count.
- Without a rate limit (`rate_limit=None`) no `RateLimit-*` headers are sent at all.
- Financial mutations (`financial_mutation_response`) share the sync-pair semantics; their filter
  honours `period` (on `date`), `state`, `mutation_type` (debit = amount > 0) and
  `financial_account_id`. An invoice payment's mutation is `processed`, holds that payment and
  has its `financial_mutation_id`; unrelated ones (bank costs, taxes, direct debits, refunds) are
  `unprocessed` with `amount_open` equal to `amount`. `sepa_fields` (free-form in the spec) uses
  the MT940 structured keys `trtp`, `iban`, `bic`, `name`, `remi`, `eref`.
- Scopes follow the spec's `security`: sales invoices need `sales_invoices`, financial mutations
  `bank`, financial accounts `settings`. A valid token without the scope gets 403 with
  `{"error": "No access to <scope>", "symbolic": {"token": "insufficient_scope"}}` and an RFC 6750
  `WWW-Authenticate` header (the spec documents no scope refusal for these paths).

Speed: 100,000 invoices must build in seconds, so construction only plans each invoice (state,
dates, version) and the full payload is generated on first fetch, deterministically from a
per-invoice seed. Each payload is then kept only as its `orjson` bytes: a fetch answer is a join
of cached bytes, and the id/version list is cached until something changes.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import functools
import gc
import math
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connectors.simulation import (
    Fault,
    Faults,
    SimulatorServer,
    answered_by_fault,
    lose_answer,
    raw_number,
    refusal,
    reset_epoch,
)

STATES: tuple[str, ...] = (
    "draft",
    "scheduled",
    "open",
    "pending_payment",
    "reminded",
    "late",
    "paid",
    "uncollectible",
)
_STATE_WEIGHTS = (4, 2, 12, 3, 4, 5, 66, 4)
_PARTIAL_STATES = frozenset({"open", "late", "reminded"})
_UNSENT_STATES = frozenset({"draft", "scheduled"})
#: `list`/`fetch` are the sales-invoice pair, `mutations_list`/`mutations_fetch` the financial
#: mutation pair, `accounts` the financial account list; `any` matches every endpoint
FAULT_ENDPOINTS = frozenset(
    {"any", "list", "fetch", "mutations_list", "mutations_fetch", "accounts", "payment"}
)
#: what `POST .../payments` takes inside `payment` (the spec's `unevaluatedProperties: false`)
PAYMENT_FIELDS = frozenset(
    {
        "payment_date", "price", "price_base", "financial_account_id", "financial_mutation_id",
        "transaction_identifier", "manual_payment_action", "ledger_account_id", "invoice_id",
    }
)  # fmt: skip
MANUAL_PAYMENT_ACTIONS = frozenset(
    {
        "private_payment", "payment_without_proof", "cash_payment", "rounding_error",
        "bank_transfer", "balance_settlement", "invoices_settlement",
    }
)  # fmt: skip
MAX_FETCH = 100
MUTATION_STATES: tuple[str, ...] = ("unprocessed", "processed")
#: the token scope each resource needs, as the spec's `security` sections say
REQUIRED_SCOPES: dict[str, str] = {
    "sales_invoices": "sales_invoices",
    "financial_mutations": "bank",
    "financial_accounts": "settings",
}
DEFAULT_SCOPES: tuple[str, ...] = ("sales_invoices", "bank", "settings")

_EPOCH = dt.date(1970, 1, 1).toordinal()
_OFFICE_START_MS = 7 * 3_600_000  # 08:00/09:00 in the Netherlands, in UTC
_OFFICE_SPAN_MS = 10 * 3_600_000
_INVOICE_ID_BASE = 496_081_512_000_000_000
_CONTACT_ID_BASE = 496_081_400_000_000_000
_MUTATION_ID_BASE = 496_081_462_000_000_000
_STATEMENT_ID_BASE = 496_081_461_000_000_000
_IMPORT_START_MS = 4 * 3_600_000  # the bank's statement arrives before office hours
_IMPORT_SPAN_MS = 2 * 3_600_000
_BANK_SHARE = 0.6  # payments matched to a bank transaction; see `_Factory.payment`

WORKFLOW_ID = "496081347889071247"
DOCUMENT_STYLE_ID = "496081348199449753"
IDENTITY_ID = "496081347126756459"
USER_ID = "496081346724103269"
REVENUE_LEDGER_ID = "496081347348006010"
CASH_LEDGER_ID = "496081347401483902"
BANK_ACCOUNT_ID = "496081347992031340"
TAX_RATE_IDS: dict[int, str] = {
    21: "496081347565061258",
    9: "496081347612247187",
    0: "496081347655238292",
}
_TAX_REPORT_REFERENCE = {21: "NL/1a", 9: "NL/1b", 0: "NL/1e"}
_PAYMENT_CONDITIONS = (
    "We verzoeken u vriendelijk het bovenstaande bedrag van {document.total_price} voor "
    "{document.due_date} te voldoen op onze bankrekening onder vermelding van de omschrijving "
    "{document.payment_reference}. Voor vragen kunt u contact opnemen per e-mail."
)
_CONDITIONS_JSON = orjson.dumps(_PAYMENT_CONDITIONS)

# Realistic Dutch master data. Kept compact: these are tables, not code.
# fmt: off
# (city, first two zipcode digits, area code)
_CITIES = (
    ("Amsterdam", 10, "020"), ("Rotterdam", 30, "010"), ("Den Haag", 25, "070"),
    ("Utrecht", 35, "030"), ("Zwolle", 80, "038"), ("Groningen", 97, "050"),
    ("Eindhoven", 56, "040"), ("Tilburg", 50, "013"), ("Breda", 48, "076"),
    ("Nijmegen", 65, "024"), ("Arnhem", 68, "026"), ("Leiden", 23, "071"),
    ("Haarlem", 20, "023"), ("Amersfoort", 38, "033"), ("Apeldoorn", 73, "055"),
    ("Enschede", 75, "053"), ("Maastricht", 62, "043"), ("Deventer", 74, "0570"),
    ("Leeuwarden", 89, "058"), ("'s-Hertogenbosch", 52, "073"), ("Delft", 26, "015"),
    ("Alkmaar", 18, "072"),
)
_STREETS = (
    "Hoofdstraat", "Kerkstraat", "Dorpsstraat", "Stationsweg", "Molenweg", "Schoolstraat",
    "Industrieweg", "Oudegracht", "Marktplein", "Nieuwstraat", "Julianalaan", "Beatrixstraat",
    "Parallelweg", "Kanaalweg", "Vondellaan", "Zuiderkade", "Lindelaan", "Havenstraat",
)
_FIRST_NAMES = (
    "Jan", "Pieter", "Kees", "Sanne", "Lotte", "Emma", "Daan", "Sem", "Fleur", "Anouk", "Thijs",
    "Bram", "Eva", "Noah", "Julia", "Lars", "Femke", "Joost", "Maarten", "Ingrid", "Ruud",
    "Marieke", "Wouter", "Esther",
)
_LAST_NAMES = (
    "de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder",
    "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit",
    "Dijkstra", "Smits", "van den Berg", "Kok", "Postma", "Hoekstra", "Kuipers",
)
_TRADES = (
    "Bouwbedrijf", "Installatiebedrijf", "Hoveniersbedrijf", "Schildersbedrijf", "Adviesbureau",
    "Transportbedrijf", "Bakkerij", "Kapsalon", "Klussenbedrijf", "Administratiekantoor",
    "Fotostudio", "Autobedrijf", "Timmerbedrijf", "Loodgietersbedrijf",
)
_BRANDS = (
    "Noorderlicht", "Polderzicht", "Duinrand", "Groene Hart", "Waddenwind", "Oranjeboom",
    "De Molenaar", "Vechtdal", "Rivierenland", "Zuiderzee", "Kempenland", "Hofstad",
)
_BRAND_KINDS = (
    "Media", "Software", "Logistiek", "Vastgoed", "Techniek", "Catering", "Design", "Zorg",
    "Consultancy", "Events", "Holding",
)
_MAIL_PROVIDERS = ("gmail.com", "hotmail.com", "ziggo.nl", "kpnmail.nl", "outlook.com")
_BANKS = (
    ("INGB", "INGBNL2A"), ("RABO", "RABONL2U"), ("ABNA", "ABNANL2A"), ("TRIO", "TRIONL2U"),
    ("KNAB", "KNABNL2H"), ("BUNQ", "BUNQNL2A"), ("SNSB", "SNSBNL2A"), ("ASNB", "ASNBNL21"),
)
# (description, unit, VAT %, lowest and highest price in cents, quantity kind)
_CATALOG = (
    ("Advieswerkzaamheden", "uur", 21, 7500, 14500, "hours"),
    ("Consultancy", "uur", 21, 8500, 16500, "hours"),
    ("Ontwikkeling maatwerksoftware", "uur", 21, 6500, 12000, "hours"),
    ("Onderhoud tuin", "uur", 21, 3500, 5500, "hours"),
    ("Schilderwerk buitenkozijnen", "uur", 21, 4000, 6000, "hours"),
    ("Installatie cv-ketel", "x", 21, 180000, 320000, "one"),
    ("Webhosting pakket (jaar)", "x", 21, 12000, 36000, "one"),
    ("Licentie boekhoudsoftware", "x", 21, 1500, 4500, "pieces"),
    ("Voorrijkosten", "x", 21, 3500, 6500, "one"),
    ("Reiskosten", "km", 21, 23, 23, "km"),
    ("Fotografie bedrijfsevent", "uur", 21, 7500, 12500, "hours"),
    ("Vertaalwerk NL-EN", "woorden", 21, 9, 16, "words"),
    ("Huur vergaderzaal", "dagdeel", 21, 9500, 25000, "pieces"),
    ("Drukwerk flyers A5", "x", 21, 5, 19, "bulk"),
    ("Lunchbuffet", "personen", 9, 1250, 2495, "persons"),
    ("Koffie en gebak", "personen", 9, 450, 895, "persons"),
    ("Vakliteratuur", "x", 9, 2495, 8900, "pieces"),
    ("Cursus bedrijfshulpverlening", "deelnemers", 0, 19500, 49500, "pieces"),
    ("Doorbelaste leges", "x", 0, 3500, 15000, "one"),
)
_ZIP_LETTERS = "ABCDEGHJKLMNPRTVWXZ"  # without S, so never the unused SA, SD or SS
_CODE_FIRST = "123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_CODE_REST = "0" + _CODE_FIRST
_REFERENCES = (
    "Project {w}", "Offerte {y}-{n:03d}", "PO {n5}", "Onderhoudscontract {y}", "Order {n5}",
)
_REFERENCE_WORDS = (
    "Nieuwbouw", "Verbouwing", "Website", "Jaarrekening", "Kantoorverhuizing", "Zomerfeest",
)
# Bank transactions that are no invoice payment: (weight, sign, counterparty or None for the
# bank itself, its IBAN or None to derive one, message, lowest and highest cents, bank code,
# SEPA transaction type or None)
_OTHER_MUTATIONS = (
    (3, -1, None, None, "Kosten zakelijk betalingsverkeer {month}", 450, 2950,
     "ACMT-MCOP-CHRG", None),
    (1, -1, "Belastingdienst", "NL86INGB0002445588", "{n16} Omzetbelasting {quarter}",
     25000, 900000, "PMNT-ICDT-ESCT", "SEPA OVERBOEKING"),
    (2, -1, "KPN B.V.", None, "Factuur {n8} KPN Zakelijk {month}", 3500, 15000,
     "PMNT-RDDT-ESDD", "SEPA INCASSO ALGEMEEN DOORLOPEND"),
    (2, -1, "Eneco Zakelijk B.V.", None, "Termijnbedrag energie {month} klantnr {n8}",
     8000, 45000, "PMNT-RDDT-ESDD", "SEPA INCASSO ALGEMEEN DOORLOPEND"),
    (2, -1, "Moneybird B.V.", None, "Abonnement Moneybird {month}", 1500, 4500,
     "PMNT-RDDT-ESDD", "SEPA INCASSO ALGEMEEN DOORLOPEND"),
    (2, -1, "Hofstad Vastgoed B.V.", None, "Huur kantoorruimte {month}", 75000, 250000,
     "PMNT-ICDT-ESCT", "SEPA OVERBOEKING"),
    (1, -1, "Coolblue B.V.", None, "Bestelling {n8}", 2000, 180000, "PMNT-ICDT-ESCT",
     "SEPA OVERBOEKING"),
    (1, 1, "Bol.com B.V.", None, "Terugbetaling retour {n8}", 1500, 25000, "PMNT-RCDT-ESCT",
     "SEPA OVERBOEKING"),
    (1, 1, None, None, "Rente {quarter}", 1, 2500, "ACMT-MCOP-INTR", None),
)
_MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
    "oktober", "november", "december",
)
# fmt: on
_OTHER_WEIGHTS = tuple(entry[0] for entry in _OTHER_MUTATIONS)
_BICS = dict(_BANKS)


def money(cents: int) -> str:
    """Moneybird's own spelling: a dot and at least one decimal (`"363.0"`, `"12.5"`, `"0.05"`)."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole}.{rest // 10}" if rest % 10 == 0 else f"{sign}{whole}.{rest:02d}"


def to_cents(value: Any) -> int:
    """Reads every money spelling the spec allows (`"10,95"`, JSON numbers) back into cents."""
    amount = Decimal(str(value).replace(",", ".")) * 100
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _half_up(numerator: int, denominator: int) -> int:
    """Integer ROUND_HALF_UP for non-negative amounts: cents without Decimal in the hot path."""
    return (2 * numerator + denominator) // (2 * denominator)


def _stamp(day: int, ms: int) -> str:
    """ISO 8601 UTC with milliseconds and `Z`, the way the API writes timestamps."""
    seconds, millis = divmod(ms, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_iso(day)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


@functools.cache
def _iso(day: int) -> str:
    return dt.date.fromordinal(day).isoformat()


def _epoch(day: int, ms: int) -> int:
    return (day - _EPOCH) * 86_400 + ms // 1000


def _now() -> tuple[int, int]:
    """Today's ordinal and milliseconds since midnight, in UTC, like every API timestamp."""
    now = dt.datetime.now(dt.UTC)
    ms = ((now.hour * 60 + now.minute) * 60 + now.second) * 1000 + now.microsecond // 1000
    return now.date().toordinal(), ms


_LETTER_DIGITS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def _iso7064(text: str) -> int:
    """ISO 7064 mod 97 over letters as numbers (A=10 ... Z=35), shared by IBAN and RF checks."""
    return int(text.translate(_LETTER_DIGITS)) % 97


def rf_reference(code: str) -> tuple[str, str]:
    """An ISO 11649 creditor reference and its short form: the check digits ignore leading zeros."""
    check = 98 - _iso7064(f"{code}RF00")
    return f"RF{check:02d}{code.rjust(21, '0')}", f"RF{check:02d}{code}"


def _iban(bank: str, account: int) -> str:
    number = f"{bank}{account:010d}"
    return f"NL{98 - _iso7064(f'{number}NL00'):02d}{number}"


#: the administration's own (and only) bank account, a valid Dutch IBAN
BANK_ACCOUNT_IBAN = _iban("INGB", 6_543_210_987)
BANK_ACCOUNT_NAME = "Zakelijke rekening ING"


def _phone(rng: random.Random, area: str) -> str | None:
    """Mobile or landline; a landline number has ten digits whatever its area code's length."""
    kind = rng.random()
    if kind < 0.3:
        return None
    if kind < 0.65:
        return f"06-{rng.randrange(10**7, 10**8)}"
    return f"{area}-{rng.randrange(10 ** (9 - len(area)), 10 ** (10 - len(area)))}"


def _capitalise(name: str) -> str:
    """Dutch surname prefixes are capitalised only at the start of a name (`Van Dijk Techniek`)."""
    return name[:1].upper() + name[1:]


def _slug(text: str) -> str:
    return "".join(char for char in text.lower() if char.isalnum())


def _jsonable(value: Any) -> Any:
    """Lets test code pass Decimals and dates to `change_invoice`/`create_invoice` overrides."""
    if isinstance(value, Decimal):
        return money(to_cents(value))
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, default=raw_number)


def _mutation_id(payment_id: str) -> str:
    """The financial mutation a bank-matched payment names (ids are spaced, so it is free)."""
    return str(int(payment_id) + 20)


def _statement_id(day: str) -> str:
    """One bank statement per booking day, as a daily statement import makes them."""
    return str(_STATEMENT_ID_BASE + dt.date.fromisoformat(day).toordinal())


class _Plan(NamedTuple):
    """What must be known without building the payload: enough to list and filter."""

    seed: int
    state: str
    invoice_date: int | None
    term: int
    created: int
    created_ms: int
    updated: int
    updated_ms: int
    partial: bool
    number: str | None = None
    draft_id: int | None = None
    #: (day, ms, percent of the total or 0 for what is left, kind) per payment; `kind` below
    #: `_BANK_SHARE` is a bank transfer matched to a financial mutation
    payments: tuple[tuple[int, int, int, float], ...] = ()


class _Record:
    """One invoice: planned until first needed, afterwards only its serialized payload.

    The body is a tuple of byte strings that concatenate to the JSON object, so generated
    invoices can share their contact's bytes instead of each holding a copy.
    """

    __slots__ = ("body", "id", "invoice_date", "plan", "state", "version")

    def __init__(self, remote_id: str, version: int, plan: _Plan) -> None:
        self.id = remote_id
        self.version = version
        self.plan: _Plan | None = plan
        self.state: Any = plan.state
        self.invoice_date: Any = None if plan.invoice_date is None else _iso(plan.invoice_date)
        self.body: tuple[bytes, ...] | None = None


class _MutationPlan(NamedTuple):
    """A bank transaction before its payload exists: an invoice payment's or an unrelated one."""

    seed: int
    day: int
    updated_ms: int
    category: int  # index into `_OTHER_MUTATIONS`; -1 for an invoice payment
    invoice_id: str = ""
    invoice_version: int = 0
    invoice_plan: _Plan | None = None
    payment_index: int = 0


class _Mutation:
    """One financial mutation: planned until first needed, afterwards only its JSON bytes."""

    __slots__ = ("account", "body", "date", "id", "plan", "sign", "state", "version")

    def __init__(self, remote_id: str, version: int, plan: _MutationPlan | None) -> None:
        self.id = remote_id
        self.version = version
        self.plan = plan
        self.body: bytes | None = None
        self.account: Any = BANK_ACCOUNT_ID
        self.date: Any = None if plan is None else _iso(plan.day)
        self.state: Any = (
            None if plan is None else "processed" if plan.category < 0 else "unprocessed"
        )
        self.sign = (
            0 if plan is None else 1 if plan.category < 0 else _OTHER_MUTATIONS[plan.category][1]
        )


class _BadRequest(Exception):
    """A 400 with Moneybird's `{"error", "symbolic"}` body."""

    def __init__(self, error: str, symbolic: dict[str, str]) -> None:
        super().__init__(error)
        self.body = {"error": error, "symbolic": symbolic}


class _Factory:
    """Generates realistic Dutch invoices; every payload depends only on its plan and the seed."""

    def __init__(self, administration_id: str, seed: int, start: dt.date, contacts: int) -> None:
        self.administration_id = int(administration_id)
        self.start = start
        rng = random.Random(seed ^ 0x5EED)
        self.site = f"https://moneybird.com/{administration_id}"
        self.url_prefix = f"{self.site}/external/{rng.getrandbits(256):064x}"
        self.contacts = [self._contact(rng, index) for index in range(contacts)]
        self.contact_json = {contact["id"]: orjson.dumps(contact) for contact in self.contacts}
        self.direct_debit = [contact for contact in self.contacts if contact["direct_debit"]]
        #: ids of bank payments whose mutation was left out (`mutations=<int>`): booked manually
        self.unlinked: set[str] = set()
        account_created = self.start.toordinal() - 400
        self.account = {
            "id": BANK_ACCOUNT_ID,
            "administration_id": self.administration_id,
            "type": "BankAccount",
            "name": BANK_ACCOUNT_NAME,
            "identifier": BANK_ACCOUNT_IBAN,
            "currency": "EUR",
            "provider": None,
            "moneybird_account": False,
            "active": True,
            "created_at": _stamp(account_created, _OFFICE_START_MS + 1_234_567),
            "updated_at": _stamp(account_created, _OFFICE_START_MS + 1_234_567),
        }

    def _contact(self, rng: random.Random, index: int) -> dict[str, Any]:
        city, zip_prefix, area = _CITIES[rng.randrange(len(_CITIES))]
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        kind = rng.random()
        company: str | None
        firstname: str | None
        lastname: str | None
        if kind < 0.25:
            company, firstname, lastname = None, first, last
            email = f"{_slug(first)}.{_slug(last)}@{rng.choice(_MAIL_PROVIDERS)}"
        else:
            if kind < 0.6:
                brand = rng.choice((rng.choice(_BRANDS), _capitalise(last)))
                company = f"{brand} {rng.choice(_BRAND_KINDS)} B.V."
                firstname = lastname = None
            elif kind < 0.75:
                company = f"{rng.choice(_TRADES)} {last} V.O.F."
                firstname = lastname = None
            else:
                company, firstname, lastname = f"{rng.choice(_TRADES)} {last}", first, last
            domain = _slug(company.removesuffix(" B.V.").removesuffix(" V.O.F."))
            email = f"{rng.choice(('info', 'administratie', 'facturen'))}@{domain}.nl"
        direct_debit = index % 6 == 1
        bank, bic = rng.choice(_BANKS)
        iban = _iban(bank, rng.randrange(10**9, 10**10))
        holder = company or f"{first[0]}. {_capitalise(last)}"
        created = self.start.toordinal() - rng.randrange(30, 900)
        created_ms = _OFFICE_START_MS + rng.randrange(_OFFICE_SPAN_MS)
        updated = created + rng.randrange(0, 300)
        phone = _phone(rng, area)
        zip_letters = "".join(rng.choices(_ZIP_LETTERS, k=2))
        return {
            "id": str(_CONTACT_ID_BASE + 1_000_000 * (index + 1) + rng.randrange(1_000_000)),
            "administration_id": self.administration_id,
            "company_name": company,
            "firstname": firstname,
            "lastname": lastname,
            "address1": f"{rng.choice(_STREETS)} {rng.randrange(1, 240)}",
            "address2": None,
            "zipcode": f"{zip_prefix}{rng.randrange(10, 100)}{zip_letters}",
            "city": city,
            "country": "NL",
            "phone": phone,
            "delivery_method": rng.choice(("Email", "Email", "Email", "Email", "Post", "Manual")),
            "customer_id": str(index + 1),
            "tax_number": None if company is None else f"NL{rng.randrange(10**8, 10**9):09d}B01",
            "chamber_of_commerce": None if company is None else f"{rng.randrange(10**7, 10**8)}",
            "bank_account": iban if direct_debit or rng.random() < 0.4 else None,
            "is_trusted": False,
            "attention": None if company is None or rng.random() < 0.6 else f"{first} {last}",
            "email": email,
            "email_ubl": company is not None,
            "send_invoices_to_attention": None,
            "send_invoices_to_email": email,
            "direct_debit": direct_debit,
            "sepa_active": direct_debit,
            "sepa_iban": iban if direct_debit else None,
            "sepa_iban_account_name": holder if direct_debit else None,
            "sepa_bic": bic if direct_debit else None,
            "sepa_mandate_id": f"MND{index + 1:06d}" if direct_debit else None,
            "sepa_mandate_date": _iso(created + 1) if direct_debit else None,
            "sepa_sequence_type": "RCUR",
            "created_at": _stamp(created, created_ms),
            "updated_at": _stamp(updated, created_ms),
            "version": _epoch(updated, created_ms),
            "sales_invoices_url": f"{self.site}/sales_invoices/{rng.getrandbits(256):064x}/all",
            "notes": [],
            "custom_fields": [],
            "contact_people": [],
            "archived": False,
        }

    def plan(self, rng: random.Random, state: str, today: int, partial: bool) -> _Plan:
        """Dates per state that a bookkeeper would recognise, e.g. `late` really is past due."""
        start = self.start.toordinal()

        def between(low: int, high: int) -> int:
            low = max(low, start)
            high = max(min(high, today), low)
            return low + int(rng.random() * (high - low + 1))

        term = 14 if rng.random() < 0.4 else 30
        invoice_date: int | None
        if state == "draft":
            invoice_date = None
            created = between(today - 30, today)
            updated = between(created, created + 3)
        elif state == "scheduled":
            invoice_date = between(today - 3, today)
            created = invoice_date - 1 - int(rng.random() * 10)
            updated = created
        elif state in ("open", "pending_payment"):
            invoice_date = created = between(today - term + 1, today)
            updated = (
                between(invoice_date, today)
                if partial or state == "pending_payment"
                else invoice_date
            )
        elif state == "late":
            invoice_date = created = between(today - term - 60, today - term - 1)
            updated = min(today, invoice_date + term + 1 + int(rng.random() * 20))
        elif state == "reminded":
            invoice_date = created = between(today - term - 120, today - term - 8)
            updated = min(today, invoice_date + term + 7 * (1 + int(rng.random() * 3)))
        elif state == "paid":
            invoice_date = created = between(start, today)
            updated = min(today, invoice_date + int(rng.random() * (term + 15)))
        else:
            invoice_date = created = between(start, today - 180)
            updated = min(today, invoice_date + term + 90 + int(rng.random() * 60))
        updated_ms = _OFFICE_START_MS + int(rng.random() * _OFFICE_SPAN_MS)
        created_ms = (
            _OFFICE_START_MS + int(rng.random() * (updated_ms - _OFFICE_START_MS))
            if created == updated
            else _OFFICE_START_MS + int(rng.random() * _OFFICE_SPAN_MS)
        )
        seed = rng.getrandbits(64)
        issued = created if invoice_date is None else invoice_date
        payments: tuple[tuple[int, int, int, float], ...] = ()
        if state == "paid":
            if updated > issued and rng.random() < 0.15:
                first_day = issued + int(rng.random() * (updated - issued))
                first_ms = _OFFICE_START_MS + int(rng.random() * _OFFICE_SPAN_MS)
                first_share = 20 + int(rng.random() * 60)
                payments = (
                    (first_day, first_ms, first_share, rng.random()),
                    (updated, updated_ms, 0, rng.random()),
                )
            else:
                payments = ((updated, updated_ms, 0, rng.random()),)
        elif partial:
            day = issued + int(rng.random() * (updated - issued + 1))
            ms = (
                updated_ms
                if day == updated
                else _OFFICE_START_MS + int(rng.random() * _OFFICE_SPAN_MS)
            )
            payments = ((day, ms, 10 + int(rng.random() * 80), rng.random()),)
        return _Plan(
            seed,
            state,
            invoice_date,
            term,
            created,
            created_ms,
            updated,
            updated_ms,
            partial,
            payments=payments,
        )

    def serialize(self, remote_id: str, version: int, plan: _Plan) -> tuple[bytes, ...]:
        """The payload's JSON cut around its contact and conditions, whose bytes are shared."""
        payload = self.build(remote_id, version, plan)
        shared = (
            (b'"contact":', self.contact_json[payload["contact_id"]]),
            (b'"payment_conditions":', _CONDITIONS_JSON),
        )
        payload["contact"] = payload["payment_conditions"] = None
        rest = _dumps(payload)
        parts: list[bytes] = []
        for key, value in shared:
            cut = rest.index(key + b"null") + len(key)
            parts += (rest[:cut], value)
            rest = rest[cut + len(b"null") :]
        parts.append(rest)
        return tuple(parts)

    def build(self, remote_id: str, version: int, plan: _Plan) -> dict[str, Any]:
        """The payload; its `contact` is the shared pool object, so never hand it out as is."""
        rng = random.Random(plan.seed)
        base_id = int(remote_id)
        state = plan.state
        issued = plan.created if plan.invoice_date is None else plan.invoice_date
        contact = rng.choice(
            self.direct_debit if state == "pending_payment" and self.direct_debit else self.contacts
        )
        created_at = _stamp(plan.created, plan.created_ms)
        updated_at = _stamp(plan.updated, plan.updated_ms)

        details = []
        taxable: dict[int, int] = {}
        for row in range(1, 1 + min(5, 1 + int(rng.expovariate(0.9)))):
            description, unit, rate, low, high, kind = _CATALOG[rng.randrange(len(_CATALOG))]
            quantity = self._quantity(rng, kind)  # in hundredths
            price = low + int(rng.random() * (high - low + 1))
            if price > 1000:
                price -= price % 5
            line_total = _half_up(quantity * price, 100)
            taxable[rate] = taxable.get(rate, 0) + line_total
            line_text = money(line_total)
            whole, rest = divmod(quantity, 100)
            spoken = str(whole) if rest == 0 else f"{whole},{rest:02d}".rstrip("0")
            details.append(
                {
                    "id": str(base_id + row),
                    "administration_id": self.administration_id,
                    "tax_rate_id": TAX_RATE_IDS[rate],
                    "ledger_account_id": REVENUE_LEDGER_ID,
                    "project_id": None,
                    "product_id": None,
                    "amount": f"{spoken} {unit}",
                    "amount_decimal": money(quantity),
                    "description": description,
                    "price": money(price),
                    "period": None,
                    "row_order": row,
                    "total_price_excl_tax_with_discount": line_text,
                    "total_price_excl_tax_with_discount_base": line_text,
                    "tax_report_reference": [_TAX_REPORT_REFERENCE[rate]],
                    "mandatory_tax_text": None,
                    "created_at": created_at,
                    "updated_at": created_at,
                }
            )
        tax_totals = []
        total_tax = 0
        for rate, amount in taxable.items():
            tax = _half_up(amount * rate, 100)
            total_tax += tax
            amount_text, tax_text = money(amount), money(tax)
            tax_totals.append(
                {
                    "tax_rate_id": TAX_RATE_IDS[rate],
                    "taxable_amount": amount_text,
                    "taxable_amount_base": amount_text,
                    "tax_amount": tax_text,
                    "tax_amount_base": tax_text,
                }
            )
        excl = sum(taxable.values())
        incl = excl + total_tax

        payments = []
        paid = 0
        for index, (day, ms, share, method) in enumerate(plan.payments, 1):
            cents = incl - paid if share == 0 else max(1, _half_up(incl * share, 100))
            payments.append(
                self.payment(
                    rng,
                    str(base_id + 100 + index),
                    remote_id,
                    cents,
                    _iso(day),
                    _stamp(day, ms),
                    method,
                )
            )
            paid += cents
        unpaid_text, excl_text, incl_text = money(incl - paid), money(excl), money(incl)

        due_day = issued + plan.term
        sent = state not in _UNSENT_STATES
        reminders = 0
        next_reminder: str | None = None
        if state in ("open", "pending_payment"):
            next_reminder = _iso(due_day)
        elif state == "late":
            next_reminder = _iso(plan.updated + 1)
        elif state == "reminded":
            reminders = max(1, (plan.updated - due_day) // 7)
            next_reminder = _iso(plan.updated + 14)
        if state == "draft":
            payment_reference = short_reference = None
        else:
            code = rng.choice(_CODE_FIRST) + "".join(rng.choices(_CODE_REST, k=7))
            payment_reference, short_reference = rf_reference(code)
        view_token = f"{rng.getrandbits(256):064x}"
        events = [self._event("sales_invoice_created", created_at)]
        if state in ("open", "pending_payment"):
            events.append(
                self._event("sales_invoice_state_changed_to_open", _stamp(issued, plan.created_ms))
            )
        elif sent:
            events.append(self._event(f"sales_invoice_state_changed_to_{state}", updated_at))
        reference_template = rng.choice(_REFERENCES)
        reference = (
            None
            if rng.random() < 0.3
            else reference_template.format(
                w=rng.choice(_REFERENCE_WORDS),
                y=dt.date.fromordinal(plan.created).year,
                n=rng.randrange(1, 400),
                n5=rng.randrange(10_000, 100_000),
            )
        )
        return {
            "id": remote_id,
            "administration_id": self.administration_id,
            "contact_id": contact["id"],
            "contact": contact,
            "contact_person_id": None,
            "contact_person": None,
            "invoice_id": plan.number,
            "recurring_sales_invoice_id": None,
            "subscription_id": None,
            "workflow_id": WORKFLOW_ID,
            "document_style_id": DOCUMENT_STYLE_ID,
            "identity_id": IDENTITY_ID,
            "draft_id": plan.draft_id,
            "state": state,
            "invoice_date": None if plan.invoice_date is None else _iso(plan.invoice_date),
            "due_date": _iso(due_day),
            "payment_conditions": _PAYMENT_CONDITIONS,
            "payment_reference": payment_reference,
            "short_payment_reference": short_reference,
            "reference": reference,
            "language": "nl",
            "currency": "EUR",
            "discount": "0.0",
            "original_sales_invoice_id": None,
            "paused": False,
            "paid_at": _iso(plan.updated) if state == "paid" else None,
            "sent_at": _iso(issued) if sent else None,
            "created_at": created_at,
            "updated_at": updated_at,
            "public_view_code": f"{rng.randrange(1_000_000):06d}" if sent else None,
            "public_view_code_expires_at": _stamp(issued + 92, plan.created_ms) if sent else None,
            "version": version,
            "details": details,
            "payments": payments,
            "total_paid": money(paid),
            "total_unpaid": unpaid_text,
            "total_unpaid_base": unpaid_text,
            "prices_are_incl_tax": False,
            "total_price_excl_tax": excl_text,
            "total_price_excl_tax_base": excl_text,
            "total_price_incl_tax": incl_text,
            "total_price_incl_tax_base": incl_text,
            "total_discount": "0.0",
            "marked_dubious_on": None,
            "marked_uncollectible_on": _iso(plan.updated) if state == "uncollectible" else None,
            "reminder_count": reminders,
            "next_reminder": next_reminder,
            "original_estimate_id": None,
            "url": f"{self.url_prefix}/{view_token}/sales_invoice",
            "payment_url": f"{self.url_prefix}/{view_token}/sales_invoice",
            "custom_fields": [],
            "notes": [],
            "attachments": [],
            "events": events,
            "tax_totals": tax_totals,
            "time_entries": [],
        }

    @staticmethod
    def _quantity(rng: random.Random, kind: str) -> int:
        """Quantities in hundredths, so fractional hours (`1.5`, `2.25`) stay exact integers."""
        if kind == "hours":
            return 25 * (2 + int(rng.random() * 63))
        if kind == "pieces":
            return 100 * (1 + int(rng.random() * 6))
        if kind == "km":
            return 100 * (10 + int(rng.random() * 240))
        if kind == "words":
            return 100 * 250 * (1 + int(rng.random() * 20))
        if kind == "bulk":
            return 100 * 500 * (1 + int(rng.random() * 10))
        if kind == "persons":
            return 100 * (8 + int(rng.random() * 73))
        return 100

    def payment(
        self,
        rng: random.Random,
        payment_id: str,
        invoice_id: str,
        cents: int,
        day: str,
        stamp: str,
        kind: float | None = None,
    ) -> dict[str, Any]:
        """Bank-matched, manual (transfer or cash) and Moneybird Payments, in realistic shares.

        A bank-matched payment names its financial mutation: the payment id plus 20.
        """
        price = money(cents)
        if kind is None:
            kind = rng.random()
        bank = kind < _BANK_SHARE and payment_id not in self.unlinked
        manual = None if bank or kind >= 0.9 else ("bank_transfer" if kind < 0.8 else "cash")
        online = kind >= 0.9
        with_identifier = rng.random() < 0.7
        if bank and with_identifier:
            identifier: str | None = f"E2E{day.replace('-', '')}{rng.randrange(10**8):08d}"
        elif online:
            identifier = f"MBP{rng.getrandbits(48):012X}"
        else:
            identifier = None
        return {
            "id": payment_id,
            "administration_id": self.administration_id,
            "invoice_type": "SalesInvoice",
            "invoice_id": invoice_id,
            "financial_account_id": BANK_ACCOUNT_ID if bank else None,
            "user_id": USER_ID,
            "payment_transaction_id": str(int(payment_id) + 50) if online else None,
            "transaction_identifier": identifier,
            "price": price,
            "price_base": price,
            "payment_date": day,
            "credit_invoice_id": None,
            "financial_mutation_id": _mutation_id(payment_id) if bank else None,
            "ledger_account_id": CASH_LEDGER_ID if manual == "cash" else None,
            "linked_payment_id": None,
            "manual_payment_action": manual,
            "created_at": stamp,
            "updated_at": stamp,
        }

    def _event(self, action: str, stamp: str) -> dict[str, Any]:
        return {
            "administration_id": self.administration_id,
            "user_id": USER_ID,
            "action": action,
            "link_entity_id": None,
            "link_entity_type": None,
            "data": {},
            "created_at": stamp,
            "updated_at": stamp,
        }

    # --- bank transactions -------------------------------------------------------------------

    def mutation(self, remote_id: str, version: int, plan: _MutationPlan) -> dict[str, Any]:
        """A planned mutation's payload: an invoice payment's is rebuilt from the invoice's plan,
        so it shows the payment as the bank booked it, whatever tests did to the invoice since."""
        rng = random.Random(plan.seed)
        created_at = _stamp(plan.day, _IMPORT_START_MS + int(rng.random() * _IMPORT_SPAN_MS))
        updated_at = _stamp(plan.day, plan.updated_ms)
        if plan.category >= 0:
            return self.other_mutation(rng, remote_id, version, plan.day, plan.category, created_at)
        assert plan.invoice_plan is not None
        invoice = self.build(plan.invoice_id, plan.invoice_version, plan.invoice_plan)
        payment = invoice["payments"][plan.payment_index - 1]
        return self.invoice_mutation(
            rng, remote_id, version, invoice, payment, created_at, updated_at
        )

    def invoice_mutation(
        self,
        rng: random.Random,
        remote_id: str,
        version: int,
        invoice: Mapping[str, Any],
        payment: dict[str, Any],
        created_at: str,
        updated_at: str,
    ) -> dict[str, Any]:
        """The customer's transfer for `payment`, already matched (processed) to the invoice."""
        iban, bic, holder = self.payer(invoice.get("contact"))
        reference = invoice.get("payment_reference")
        number = invoice.get("invoice_id") or invoice.get("id")
        pick = rng.random()
        if reference and pick < 0.5:
            message = str(reference)
        elif reference and pick < 0.65:
            message = f"{reference} Factuur {number}"
        else:
            message = f"Factuur {number}"
        identifier = payment.get("transaction_identifier")
        end_to_end = identifier if isinstance(identifier, str) and identifier[:3] == "E2E" else None
        day = str(payment["payment_date"])
        return self._mutation_payload(
            rng,
            remote_id,
            version,
            day,
            str(payment["price"]),
            message,
            holder,
            iban,
            "PMNT-RCDT-ESCT",
            {
                "trtp": "SEPA OVERBOEKING",
                "iban": iban,
                "bic": bic,
                "name": holder,
                "remi": message,
                "eref": end_to_end or "NOTPROVIDED",
            },
            [payment],
            created_at,
            updated_at,
        )

    def other_mutation(
        self,
        rng: random.Random,
        remote_id: str,
        version: int,
        day: int,
        category: int,
        created_at: str,
    ) -> dict[str, Any]:
        """Bank costs, taxes, suppliers' direct debits, refunds: not yet booked (unprocessed)."""
        _, sign, name, iban, template, low, high, code, transaction_type = _OTHER_MUTATIONS[
            category
        ]
        date = dt.date.fromordinal(day)
        message = template.format(
            month=f"{_MONTHS[date.month - 1]} {date.year}",
            quarter=f"Q{(date.month - 1) // 3 + 1} {date.year}",
            n8=rng.randrange(10**7, 10**8),
            n16=rng.randrange(10**15, 10**16),
        )
        cents = sign * (low + int(rng.random() * (high - low + 1)))
        sepa: dict[str, Any] | None = None
        number = ""
        holder = name or "ING Bank N.V."
        if transaction_type is not None:
            if iban is None:
                bank, bic = random.Random(holder).choice(_BANKS)
                iban = _iban(bank, random.Random(holder).randrange(10**9, 10**10))
            number = iban
            sepa = {
                "trtp": transaction_type,
                "iban": iban,
                "bic": _BICS[iban[4:8]],
                "name": holder,
                "remi": message,
                "eref": f"{rng.getrandbits(40):010X}" if rng.random() < 0.6 else "NOTPROVIDED",
            }
        return self._mutation_payload(
            rng,
            remote_id,
            version,
            date.isoformat(),
            money(cents),
            message,
            holder,
            number,
            code,
            sepa,
            [],
            created_at,
            created_at,
        )

    def _mutation_payload(
        self,
        rng: random.Random,
        remote_id: str,
        version: int,
        day: str,
        amount: str,
        message: str,
        name: str | None,
        number: str,
        code: str,
        sepa: dict[str, Any] | None,
        payments: list[dict[str, Any]],
        created_at: str,
        updated_at: str,
    ) -> dict[str, Any]:
        processed = bool(payments)
        servicer = (
            f"{day.replace('-', '')}{rng.getrandbits(48):012X}" if rng.random() < 0.6 else None
        )
        return {
            "id": remote_id,
            "administration_id": self.administration_id,
            "amount": amount,
            "code": code,
            "date": day,
            "message": message,
            "contra_account_name": name,
            "contra_account_number": number,
            "state": "processed" if processed else "unprocessed",
            "settlement_state": "settled",
            "amount_open": "0.0" if processed else amount,
            "sepa_fields": sepa,
            "batch_reference": None,
            "financial_account_id": BANK_ACCOUNT_ID,
            "currency": "EUR",
            "original_amount": None,
            "created_at": created_at,
            "updated_at": updated_at,
            "version": version,
            "financial_statement_id": _statement_id(day),
            "processed_at": updated_at if processed else None,
            "account_servicer_transaction_id": servicer,
            "payments": payments,
            "ledger_account_bookings": [],
        }

    @staticmethod
    def payer(contact: Any) -> tuple[str, str, str]:
        """IBAN, BIC and holder the customer pays from: the contact's own, else a stable one."""
        if not isinstance(contact, Mapping):
            contact = {}
        holder = (
            contact.get("sepa_iban_account_name")
            or contact.get("company_name")
            or " ".join(str(contact.get(k) or "") for k in ("firstname", "lastname")).strip()
            or "Onbekend"
        )
        iban = contact.get("bank_account") or contact.get("sepa_iban")
        if not isinstance(iban, str) or iban[4:8] not in _BICS:
            pick = random.Random(str(contact.get("id")))
            bank, _ = pick.choice(_BANKS)
            iban = _iban(bank, pick.randrange(10**9, 10**10))
        return iban, _BICS[iban[4:8]], str(holder)


def _month_start(year: int, month: int) -> dt.date:
    """First day of a month given with an overflowing or negative month number."""
    year += (month - 1) // 12
    return dt.date(year, (month - 1) % 12 + 1, 1)


def _period(value: str, today: dt.date) -> tuple[str, str]:
    """Inclusive ISO bounds of a Moneybird period: a preset or `YYYYMM[DD]..YYYYMM[DD]`."""
    year, month = today.year, today.month
    if value in ("this_week", "prev_week", "next_week"):
        monday = today - dt.timedelta(days=today.weekday())
        monday += dt.timedelta(weeks={"this_week": 0, "prev_week": -1, "next_week": 1}[value])
        return monday.isoformat(), (monday + dt.timedelta(days=6)).isoformat()
    quarter_month = month - (month - 1) % 3
    presets = {
        "this_month": (month, 1),
        "prev_month": (month - 1, 1),
        "next_month": (month + 1, 1),
        "this_quarter": (quarter_month, 3),
        "prev_quarter": (quarter_month - 3, 3),
        "next_quarter": (quarter_month + 3, 3),
        "this_year": (1, 12),
        "prev_year": (-11, 12),
        "next_year": (13, 12),
    }
    if value in presets:
        first, months = presets[value]
        low = _month_start(year, first)
        high = _month_start(low.year, low.month + months) - dt.timedelta(days=1)
        return low.isoformat(), high.isoformat()
    low_text, _, high_text = value.partition("..")
    high_text = high_text or low_text
    try:
        if (
            len(low_text) not in (6, 8)
            or len(high_text) not in (6, 8)
            or not (low_text + high_text).isdigit()
        ):
            raise ValueError(value)
        low = dt.date(int(low_text[:4]), int(low_text[4:6]), int(low_text[6:] or 1))
        if len(high_text) == 8:
            high = dt.date(int(high_text[:4]), int(high_text[4:6]), int(high_text[6:]))
        else:
            last_month = dt.date(int(high_text[:4]), int(high_text[4:6]), 1)
            high = _month_start(last_month.year, last_month.month + 1) - dt.timedelta(days=1)
    except ValueError:
        raise _BadRequest("Period is invalid", {"filter": "invalid"}) from None
    return low.isoformat(), high.isoformat()


def _parse_filter(
    raw: str | None, today: dt.date
) -> tuple[frozenset[str] | None, tuple[str, str] | None]:
    """States (None: all) and period (None: any); no filter at all means `period:this_year`."""
    if raw is None:
        return None, _period("this_year", today)
    states: frozenset[str] | None = None
    period: tuple[str, str] | None = None
    for term in raw.split(","):
        key, _, value = term.strip().partition(":")
        if key == "state":
            if value != "all":
                states = frozenset(value.split("|"))
                if not states <= set(STATES):
                    raise _BadRequest("Status is not included in the list", {"filter": "invalid"})
        elif key == "period":
            period = _period(value, today)
    return states, period


def _parse_mutation_filter(
    raw: str | None, today: dt.date
) -> tuple[frozenset[str] | None, frozenset[int] | None, str | None, tuple[str, str] | None]:
    """States, amount signs (debit +1, credit -1), account and period (None: any of them).

    As for invoices no filter means `period:this_year`, any filter replaces that default, and
    unknown keys are ignored.
    """
    if raw is None:
        return None, None, None, _period("this_year", today)
    states: frozenset[str] | None = None
    signs: frozenset[int] | None = None
    account: str | None = None
    period: tuple[str, str] | None = None
    for term in raw.split(","):
        key, _, value = term.strip().partition(":")
        if key == "state":
            if value != "all":
                states = frozenset(value.split("|"))
                if not states <= set(MUTATION_STATES):
                    raise _BadRequest("State is not included in the list", {"filter": "invalid"})
        elif key == "mutation_type":
            if value != "all":
                kinds = value.split("|")
                if not set(kinds) <= {"debit", "credit"}:
                    raise _BadRequest(
                        "Mutation type is not included in the list", {"filter": "invalid"}
                    )
                signs = frozenset(1 if kind == "debit" else -1 for kind in kinds)
        elif key == "financial_account_id":
            account = value
        elif key == "period":
            period = _period(value, today)
    return states, signs, account, period


def _payment_fields(body: bytes) -> dict[str, Any]:
    """`{"payment": {...}}` checked as the spec's request schema says: known keys only, none
    null, `payment_date` and `price` required, `bank_transfer` with a `financial_mutation_id`."""
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise _BadRequest("Body is not valid JSON", {}) from None
    payment = data.get("payment") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) - {"payment"} or not isinstance(payment, dict):
        raise _BadRequest("Payment is required", {"payment": "required"})
    unknown = sorted(set(payment) - PAYMENT_FIELDS)
    if unknown:
        raise _BadRequest(f"Unknown field {unknown[0]}", {unknown[0]: "invalid"})
    nulls = sorted(k for k, v in payment.items() if v is None)
    if nulls:  # the spec types every field; none of them is nullable
        raise _BadRequest(f"{nulls[0]} is invalid", {nulls[0]: "invalid"})
    for name in ("payment_date", "price"):
        if payment.get(name) in (None, ""):
            raise _BadRequest(f"{name} is required", {name: "required"})
    try:
        cents = to_cents(payment["price"])
        day = dt.date.fromisoformat(str(payment["payment_date"])[:10])
    except (ValueError, ArithmeticError, TypeError):
        raise _BadRequest("Price or payment date is invalid", {}) from None
    action = payment.get("manual_payment_action")
    if action is not None and action not in MANUAL_PAYMENT_ACTIONS:
        raise _BadRequest("Manual payment action is invalid", {})
    if action == "bank_transfer" and not payment.get("financial_mutation_id"):
        raise _BadRequest("Financial mutation is required", {"financial_mutation_id": "required"})
    kept = ("financial_account_id", "financial_mutation_id", "transaction_identifier")
    fields = {k: payment[k] for k in (*kept, "manual_payment_action") if payment.get(k) is not None}
    return {**fields, "cents": cents, "payment_date": day.isoformat()}


def _parse_ids(raw: bytes) -> list[str]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _BadRequest("Request body is not valid JSON", {"body": "invalid"}) from None
    if not isinstance(body, dict) or "ids" not in body:
        raise _BadRequest("Ids is required", {"ids": "required"})
    ids = body["ids"]
    if not isinstance(ids, list) or any(
        isinstance(i, bool) or not isinstance(i, str | int) for i in ids
    ):
        raise _BadRequest("Ids is invalid", {"ids": "invalid"})
    return [str(i) for i in ids]


class _SyncEndpoint:
    """Raw ASGI rather than a request/response endpoint, so a fault can drop the connection."""

    def __init__(self, simulator: MoneybirdSimulator, resource: str) -> None:
        self.simulator = simulator
        self.resource = resource

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.simulator._serve(Request(scope, receive), scope, receive, send, self.resource)


class _PaymentEndpoint:
    """`POST {adm}/sales_invoices/{id}/payments{format}`: registers a payment (raw ASGI, so a
    fault can drop the connection, before or after the payment is recorded)."""

    def __init__(self, simulator: MoneybirdSimulator) -> None:
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.simulator._serve_payment(Request(scope, receive), scope, receive, send)


class MoneybirdSimulator:
    """Moneybird's sales-invoice and financial-mutation sync pairs and financial accounts, with
    seeded data, test controls and injectable faults.

    `mutations=None` gives every bank-matched invoice payment its financial mutation plus about
    10% unrelated bank transactions; an int gives exactly that many (bank payments left without
    one turn into manual `bank_transfer` payments, so every `financial_mutation_id` resolves).
    `scopes` are the token's: each resource answers 403 without its `REQUIRED_SCOPES` entry.
    """

    base_path = "/api/v2"

    def __init__(
        self,
        *,
        administration_id: str = "123456789",
        token: str = "sim-token",
        invoices: int = 50,
        seed: int = 1,
        rate_limit: int | None = 150,
        rate_window: float = 300.0,
        start_date: dt.date = dt.date(2024, 1, 1),
        mutations: int | None = None,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
    ) -> None:
        if mutations is not None and mutations < 0:
            raise ValueError("mutations must be None or a non-negative count")
        self.administration_id = administration_id
        self.token = token
        self.scopes = tuple(scopes)
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.requests: list[tuple[str, str, int]] = []
        self.rate_limited = 0
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._factory = _Factory(
            administration_id, seed, start_date, max(10, min(4000, invoices // 20))
        )
        self._live: dict[str, _Record] = {}
        self._deleted: dict[str, _Record] = {}
        self._list_cache: dict[tuple[Any, ...], bytes] = {}
        self._faults = Faults(FAULT_ENDPOINTS)
        self._windows: dict[str, deque[float]] = {}
        self._year_numbers: dict[int, int] = {}
        self._drafts = 0
        self._next_id = _INVOICE_ID_BASE
        self._mutations: dict[str, _Mutation] = {}
        self._deleted_mutations: dict[str, _Mutation] = {}
        self._mutation_list_cache: dict[tuple[Any, ...], bytes] = {}
        self._mutation_rng = random.Random(seed ^ 0xBA4C)
        self._next_mutation_id = _MUTATION_ID_BASE
        self._accounts_json = orjson.dumps([self._factory.account])
        # hundreds of thousands of acyclic objects: the cyclic GC would only rescan them
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._populate(invoices)
            self._populate_mutations(mutations)
        finally:
            if collecting:
                gc.enable()
        #: how the next payment POSTs go wrong *after* the payment was recorded (`500`, `drop`)
        self.fail_after_write: list[str] = []
        self.app = Starlette(
            routes=[
                Route(
                    "/api/v2/{administration_id}/sales_invoices/{invoice_id}/{resource}",
                    _PaymentEndpoint(self),
                    methods=["POST"],
                ),
                Route(
                    "/api/v2/{administration_id}/sales_invoices/{invoice_id}/payments/{payment}",
                    self._delete_payment,
                    methods=["DELETE"],
                ),
                Route(
                    "/api/v2/{administration_id}/sales_invoices/{resource}",
                    _SyncEndpoint(self, "sales_invoices"),
                    methods=["GET", "POST"],
                ),
                Route(
                    "/api/v2/{administration_id}/financial_mutations/{resource}",
                    _SyncEndpoint(self, "financial_mutations"),
                    methods=["GET", "POST"],
                ),
                Route(
                    "/api/v2/{administration_id}/{resource}",
                    _SyncEndpoint(self, "financial_accounts"),
                    methods=["GET"],
                ),
                Route("/_simulator/mutate", self._mutate_endpoint, methods=["POST"]),
            ]
        )

    def mutate(self, *, change: int = 0, delete: int = 0, create: int = 0) -> dict[str, int]:
        """Edit, delete and create random invoices: what a benchmark in another process needs."""
        ids = self.ids()
        picked = self._rng.sample(ids, min(len(ids), change + delete))
        for remote_id in picked[:change]:
            self.change_invoice(remote_id, reference="changed by mutate")
        for remote_id in picked[change:]:
            self.delete_invoice(remote_id)
        for _ in range(create):
            self.create_invoice()
        return {
            "changed": min(change, len(picked)),
            "deleted": len(picked[change:]),
            "created": create,
        }

    async def _mutate_endpoint(self, request: Request) -> Response:
        counts = await request.json()
        done = self.mutate(
            **{k: int(v) for k, v in counts.items() if k in ("change", "delete", "create")}
        )
        return Response(orjson.dumps(done), media_type="application/json")

    def _populate(self, count: int) -> None:
        """Every state and a partly paid invoice always occur, whatever the size; then by weight."""
        rng = self._rng
        today = dt.date.today().toordinal()
        forced = [(state, state in ("open", "late")) for state in STATES]
        picks: list[tuple[str, bool]] = forced[:count]
        total = sum(_STATE_WEIGHTS)
        cumulative = [sum(_STATE_WEIGHTS[: i + 1]) / total for i in range(len(STATES))]
        for _ in range(count - len(picks)):
            state = STATES[bisect.bisect(cumulative, rng.random())]
            picks.append((state, state in _PARTIAL_STATES and rng.random() < 0.25))
        plans = sorted(
            (self._factory.plan(rng, state, today, partial) for state, partial in picks),
            key=lambda plan: (plan.created, plan.created_ms, plan.seed),
        )
        numbers: dict[int, str] = {}
        dated = [(plan.invoice_date, i) for i, plan in enumerate(plans) if plan.invoice_date]
        for invoice_date, position in sorted(dated):
            numbers[position] = self._invoice_number(invoice_date)
        for position, plan in enumerate(plans):
            draft_id = self._next_draft_id() if plan.state == "draft" else None
            self._next_id += 1000 + rng.getrandbits(16)
            remote_id = str(self._next_id)
            self._live[remote_id] = _Record(
                remote_id,
                _epoch(plan.updated, plan.updated_ms),
                plan._replace(number=numbers.get(position), draft_id=draft_id),
            )

    def _populate_mutations(self, count: int | None) -> None:
        """Index every mutation (no payload yet): invoice payments' first, in booking order."""
        rng = self._mutation_rng
        linked: list[tuple[int, int, str, _Mutation]] = []
        for record in self._live.values():
            plan = record.plan
            if plan is None:
                continue
            for index, (day, ms, _, kind) in enumerate(plan.payments, 1):
                if kind < _BANK_SHARE:
                    remote_id = _mutation_id(str(int(record.id) + 100 + index))
                    mutation_plan = _MutationPlan(
                        plan.seed ^ index, day, ms, -1, record.id, record.version, plan, index
                    )
                    mutation = _Mutation(remote_id, _epoch(day, ms), mutation_plan)
                    linked.append((day, ms, remote_id, mutation))
        if count is None:
            others = round(len(linked) / 10)
        else:
            others = max(count - len(linked), count // 11)
            keep = count - others
            if keep < len(linked):
                dropped = rng.sample(range(len(linked)), len(linked) - keep)
                for position in sorted(dropped, reverse=True):
                    remote_id = linked.pop(position)[2]
                    self._factory.unlinked.add(str(int(remote_id) - 20))
        start, today = self._factory.start.toordinal(), dt.date.today().toordinal()
        for category in rng.choices(range(len(_OTHER_MUTATIONS)), _OTHER_WEIGHTS, k=others):
            day = start + int(rng.random() * (today - start + 1))
            mutation_plan = _MutationPlan(rng.getrandbits(64), day, 0, category)
            self._next_mutation_id += 1000 + rng.getrandbits(16)
            remote_id = str(self._next_mutation_id)
            mutation = self._plan_other(remote_id, mutation_plan)
            linked.append((day, mutation_plan.updated_ms, remote_id, mutation))
        for *_, mutation in sorted(linked, key=lambda item: item[:3]):
            self._mutations[mutation.id] = mutation

    @staticmethod
    def _plan_other(remote_id: str, plan: _MutationPlan) -> _Mutation:
        """An unprocessed mutation is last touched when imported: its version is that moment."""
        ms = _IMPORT_START_MS + int(random.Random(plan.seed).random() * _IMPORT_SPAN_MS)
        plan = plan._replace(updated_ms=ms)
        return _Mutation(remote_id, _epoch(plan.day, ms), plan)

    def _next_draft_id(self) -> int:
        self._drafts += 1
        return self._drafts

    def _invoice_number(self, day: int) -> str:
        year = dt.date.fromordinal(day).year
        self._year_numbers[year] = self._year_numbers.get(year, 0) + 1
        return f"{year}-{self._year_numbers[year]:04d}"

    # --- data, for tests -------------------------------------------------------------------

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._live)

    def invoice(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            return self._payload(self._live[str(remote_id)])

    def invoices(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._payload(record) for record in self._live.values()]

    def create_invoice(self, **overrides: Any) -> dict[str, Any]:
        """A new invoice dated today; `state` and `invoice_date` shape it, other keys overwrite."""
        with self._lock:
            state = overrides.pop("state", "open")
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}")
            day, ms = _now()
            chosen = overrides.pop("invoice_date", None if state == "draft" else dt.date.today())
            invoice_date = (
                None
                if chosen is None
                else (
                    dt.date.fromisoformat(chosen) if isinstance(chosen, str) else chosen
                ).toordinal()
            )
            draft_id = self._next_draft_id() if state == "draft" else None
            plan = _Plan(
                self._rng.getrandbits(64),
                state,
                invoice_date,
                self._rng.choice((14, 30)),
                day,
                ms,
                day,
                ms,
                False,
                None if draft_id or invoice_date is None else self._invoice_number(invoice_date),
                draft_id,
            )
            self._next_id += 1000 + self._rng.getrandbits(16)
            record = _Record(str(self._next_id), _epoch(day, ms), plan)
            payload = self._factory.build(record.id, record.version, plan)
            payload.update({key: _jsonable(value) for key, value in overrides.items()})
            self._live[record.id] = record
            self._store(record, payload)
            return self._payload(record)

    def change_invoice(self, remote_id: str, **changes: Any) -> dict[str, Any]:
        """Verbatim top-level changes; a newer `version` and `updated_at` unless given as well."""
        with self._lock:
            record = self._live[str(remote_id)]
            payload = self._payload(record)
            payload.update({key: _jsonable(value) for key, value in changes.items()})
            self._touch(record, payload, changes)
            self._store(record, payload)
            return payload

    def pay_invoice(
        self, remote_id: str, amount: Decimal | None = None, *, bank: bool | None = None
    ) -> dict[str, Any]:
        """A payment of `amount` (default: all that is unpaid); fully paid turns `paid`.

        Its kind is drawn as for generated payments unless `bank` says: True makes it a bank
        transfer matched to a new financial mutation (which then appears in the mutation list),
        False a manual or online payment without one.
        """
        with self._lock:
            record = self._live[str(remote_id)]
            payload = self._payload(record)
            total = to_cents(payload["total_price_incl_tax"])
            paid = to_cents(payload["total_paid"])
            cents = total - paid if amount is None else to_cents(amount)
            if cents <= 0:
                raise ValueError(f"invoice {remote_id} has nothing unpaid; pass an explicit amount")
            day, ms = _now()
            self._next_id += 1000
            kind = self._rng.random()
            if bank is not None:
                kind = kind * _BANK_SHARE if bank else _BANK_SHARE + kind * (1 - _BANK_SHARE)
            payment = self._factory.payment(
                self._rng, str(self._next_id), record.id, cents, _iso(day), _stamp(day, ms), kind
            )
            payload["payments"].append(payment)
            if payment["financial_mutation_id"] is not None:
                mutation = _Mutation(payment["financial_mutation_id"], _epoch(day, ms), None)
                stamp = _stamp(day, ms)
                self._store_mutation(
                    mutation,
                    self._factory.invoice_mutation(
                        self._mutation_rng,
                        mutation.id,
                        mutation.version,
                        payload,
                        payment,
                        stamp,
                        stamp,
                    ),
                )
                self._mutations[mutation.id] = mutation
            paid += cents
            payload["total_paid"] = money(paid)
            payload["total_unpaid"] = payload["total_unpaid_base"] = money(total - paid)
            if paid >= total:
                payload["state"] = "paid"
                payload["paid_at"] = _iso(day)
                payload["next_reminder"] = None
            self._touch(record, payload, {})
            self._store(record, payload)
            return payload

    def delete_invoice(self, remote_id: str) -> None:
        with self._lock:
            self._deleted[str(remote_id)] = self._live.pop(str(remote_id))
            self._list_cache.clear()

    def restore_invoice(self, remote_id: str) -> None:
        with self._lock:
            self._live[str(remote_id)] = self._deleted.pop(str(remote_id))
            self._list_cache.clear()

    def set_raw(self, remote_id: str, payload: dict[str, Any]) -> None:
        """Verbatim, odd spellings included; the listed version follows the payload's own."""
        with self._lock:
            self._store(self._live[str(remote_id)], payload)

    # --- financial mutations and accounts, for tests ----------------------------------------

    def mutation_ids(self) -> list[str]:
        with self._lock:
            return list(self._mutations)

    def mutation(self, remote_id: str) -> dict[str, Any]:
        with self._lock:
            return orjson.loads(self._mutation_body(self._mutations[str(remote_id)]))

    def mutations(self) -> list[dict[str, Any]]:
        with self._lock:
            return [orjson.loads(self._mutation_body(m)) for m in self._mutations.values()]

    def financial_accounts(self) -> list[dict[str, Any]]:
        return orjson.loads(self._accounts_json)

    def create_mutation(self, **overrides: Any) -> dict[str, Any]:
        """A new unrelated bank transaction booked today (unprocessed); keys given overwrite."""
        with self._lock:
            rng = self._mutation_rng
            day, ms = _now()
            category = rng.choices(range(len(_OTHER_MUTATIONS)), _OTHER_WEIGHTS)[0]
            self._next_mutation_id += 1000 + rng.getrandbits(16)
            mutation = _Mutation(str(self._next_mutation_id), _epoch(day, ms), None)
            payload = self._factory.other_mutation(
                rng, mutation.id, mutation.version, day, category, _stamp(day, ms)
            )
            payload.update({key: _jsonable(value) for key, value in overrides.items()})
            if "amount" in overrides and "amount_open" not in overrides:
                payload["amount_open"] = payload["amount"]  # still unbooked: all of it is open
            self._mutations[mutation.id] = mutation
            self._store_mutation(mutation, payload)
            return orjson.loads(self._mutation_body(mutation))

    def change_mutation(self, remote_id: str, **changes: Any) -> dict[str, Any]:
        """Verbatim top-level changes; a newer `version` and `updated_at` unless given as well."""
        with self._lock:
            mutation = self._mutations[str(remote_id)]
            payload = orjson.loads(self._mutation_body(mutation))
            payload.update({key: _jsonable(value) for key, value in changes.items()})
            self._touch(mutation, payload, changes)
            self._store_mutation(mutation, payload)
            return payload

    def delete_mutation(self, remote_id: str) -> None:
        with self._lock:
            self._deleted_mutations[str(remote_id)] = self._mutations.pop(str(remote_id))
            self._mutation_list_cache.clear()

    def restore_mutation(self, remote_id: str) -> None:
        with self._lock:
            self._mutations[str(remote_id)] = self._deleted_mutations.pop(str(remote_id))
            self._mutation_list_cache.clear()

    def set_raw_mutation(self, remote_id: str, payload: dict[str, Any]) -> None:
        """Verbatim, odd spellings included; the listed version follows the payload's own."""
        with self._lock:
            self._store_mutation(self._mutations[str(remote_id)], payload)

    def _mutation_body(self, mutation: _Mutation) -> bytes:
        if mutation.body is None:
            assert mutation.plan is not None
            mutation.body = orjson.dumps(
                self._factory.mutation(mutation.id, mutation.version, mutation.plan)
            )
            mutation.plan = None
        return mutation.body

    def _store_mutation(self, mutation: _Mutation, payload: dict[str, Any]) -> None:
        mutation.body = _dumps(payload)
        mutation.plan = None
        version = payload.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            mutation.version = version
        mutation.state = payload.get("state")
        mutation.account = str(payload.get("financial_account_id"))
        date = payload.get("date")
        mutation.date = date if isinstance(date, str) else None
        try:
            cents = to_cents(payload.get("amount"))
        except (ArithmeticError, ValueError):
            cents = 0
        mutation.sign = (cents > 0) - (cents < 0)
        self._mutation_list_cache.clear()

    def warm(self) -> None:
        """Serialize every payload now, so a benchmark times the client, not the first fetch."""
        with self._lock:
            for record in self._live.values():
                self._body(record)
            for mutation in self._mutations.values():
                self._mutation_body(mutation)

    def _body(self, record: _Record) -> tuple[bytes, ...]:
        if record.body is None:
            assert record.plan is not None
            record.body = self._factory.serialize(record.id, record.version, record.plan)
            record.plan = None
        return record.body

    def _payload(self, record: _Record) -> dict[str, Any]:
        return orjson.loads(b"".join(self._body(record)))

    def _touch(
        self, record: _Record | _Mutation, payload: dict[str, Any], explicit: Mapping[str, Any]
    ) -> None:
        day, ms = _now()
        if "version" not in explicit:
            payload["version"] = max(record.version + 1, _epoch(day, ms))
        if "updated_at" not in explicit:
            payload["updated_at"] = _stamp(day, ms)

    def _store(self, record: _Record, payload: dict[str, Any]) -> None:
        record.body = (_dumps(payload),)
        record.plan = None
        version = payload.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            record.version = version
        record.state = payload.get("state")
        invoice_date = payload.get("invoice_date")
        record.invoice_date = invoice_date if isinstance(invoice_date, str) else None
        self._list_cache.clear()

    # --- faults ----------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        *,
        times: int = 1,
        endpoint: str = "any",
        delay: float = 2.0,
        retry_after: str | None = None,
        remote_id: str | None = None,
    ) -> None:
        """Queue a fault for the next `times` matching requests (`invalid`: fetches only)."""
        self._faults.add(
            kind,
            times=times,
            endpoint=endpoint,
            delay=delay,
            retry_after=retry_after,
            remote_id=remote_id,
        )

    def _take_invalid(self, answered: list[str], endpoint: str) -> str | None:
        return self._faults.take_invalid(answered, endpoint)

    def _fault_response(self, fault: Fault) -> Response:
        retry_after = fault.retry_after or "1"
        return refusal(
            fault,
            {
                "RateLimit-Limit": str(self.rate_limit or 150),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(reset_epoch(retry_after)),
            },
        )

    # --- serving ---------------------------------------------------------------------------

    async def _serve(
        self, request: Request, scope: Scope, receive: Receive, send: Send, resource: str
    ) -> None:
        endpoint = {
            ("sales_invoices", "GET"): "list",
            ("sales_invoices", "POST"): "fetch",
            ("financial_mutations", "GET"): "mutations_list",
            ("financial_mutations", "POST"): "mutations_fetch",
        }.get((resource, request.method), "accounts")
        ids: list[str] | None = None
        bad_body: _BadRequest | None = None
        if request.method == "POST":
            try:
                ids = _parse_ids(await request.body())
            except _BadRequest as exc:
                bad_body = exc
        with self._lock:
            self.requests.append((request.method, request.url.path, len(ids) if ids else 0))
        fault = self._faults.take_for(endpoint)
        if await answered_by_fault(fault, scope, receive, send, self._fault_response):
            return
        status, body, media_type, headers = self._answer(request, resource, endpoint, ids, bad_body)
        if fault is not None and fault.kind == "truncate":
            body = body[: len(body) // 2]
        await Response(body, status, headers, media_type=media_type)(scope, receive, send)

    async def _serve_payment(
        self, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        body = await request.body()
        with self._lock:
            self.requests.append((request.method, request.url.path, 0))
        fault = self._faults.take_for("payment")
        if await answered_by_fault(fault, scope, receive, send, self._fault_response):
            return
        status, answer, headers = self._register_payment(request, body)
        after = self.fail_after_write.pop(0) if status == 201 and self.fail_after_write else ""
        if await lose_answer(after, scope, receive, send):
            return
        if fault is not None and fault.kind == "truncate":
            answer = answer[: len(answer) // 2]
        await Response(answer, status, headers, media_type="application/json")(scope, receive, send)

    def _register_payment(self, request: Request, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """Validate as the spec says, then record the payment on the invoice: totals, state,
        a newer version. Answers (status, body, headers)."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            error = {"error": "Token is invalid or expired", "symbolic": {"token": "invalid"}}
            return 401, orjson.dumps(error), {}
        params = request.path_params
        if (
            params["administration_id"] != self.administration_id
            or params["resource"].removesuffix(".json") != "payments"
        ):
            return 404, orjson.dumps({"error": "Not found", "symbolic": {}}), {}
        if "sales_invoices" not in self.scopes:
            error = {
                "error": "No access to sales_invoices",
                "symbolic": {"token": "insufficient_scope"},
            }
            return 403, orjson.dumps(error), {}
        with self._lock:
            limited, headers = self._admit(self.token)
            if limited:
                self.rate_limited += 1
                return 429, b"Retry later", headers
            try:
                fields = _payment_fields(body)
            except _BadRequest as exc:
                return 400, orjson.dumps(exc.body), headers
            record = self._live.get(str(params["invoice_id"]))
            if record is None:
                error = {"error": "Sales invoice not found", "symbolic": {"id": "not_found"}}
                return 404, orjson.dumps(error), headers
            mutation = fields.get("financial_mutation_id")
            if mutation is not None and str(mutation) not in self._mutations:
                error = {
                    "error": "Financial mutation not found",
                    "symbolic": {"financial_mutation_id": "not_found"},
                }
                return 422, orjson.dumps(error), headers
            payload = self._payload(record)
            day, ms = _now()
            self._next_id += 1000
            payment = {
                "id": str(self._next_id),
                "administration_id": self.administration_id,
                "invoice_type": "SalesInvoice",
                "invoice_id": record.id,
                "financial_account_id": fields.get("financial_account_id"),
                "user_id": USER_ID,
                "payment_transaction_id": None,
                "transaction_identifier": fields.get("transaction_identifier"),
                "price": money(fields["cents"]),
                "price_base": money(fields["cents"]),
                "payment_date": fields["payment_date"],
                "credit_invoice_id": None,
                "financial_mutation_id": fields.get("financial_mutation_id"),
                "ledger_account_id": None,
                "linked_payment_id": None,
                "manual_payment_action": fields.get("manual_payment_action"),
                "created_at": _stamp(day, ms),
                "updated_at": _stamp(day, ms),
            }
            payload["payments"].append(payment)
            total = to_cents(payload["total_price_incl_tax"])
            paid = to_cents(payload["total_paid"]) + fields["cents"]
            payload["total_paid"] = money(paid)
            payload["total_unpaid"] = payload["total_unpaid_base"] = money(total - paid)
            if paid >= total:
                payload["state"] = "paid"
                payload["paid_at"] = fields["payment_date"]
                payload["next_reminder"] = None
            self._touch(record, payload, {})
            self._store(record, payload)
            self._list_cache.clear()
            return 201, orjson.dumps(payment), headers

    async def _delete_payment(self, request: Request) -> Response:
        """`DELETE {adm}/sales_invoices/{id}/payments/{payment_id}`: 204; the invoice's totals
        and state follow (a paid invoice is open, or late, again)."""
        with self._lock:
            self.requests.append((request.method, request.url.path, 0))
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            error = {"error": "Token is invalid or expired", "symbolic": {"token": "invalid"}}
            return Response(orjson.dumps(error), 401, media_type="application/json")
        params = request.path_params
        payment_id = params["payment"].removesuffix(".json")
        with self._lock:
            record = self._live.get(str(params["invoice_id"]))
            payload = self._payload(record) if record is not None else None
            found = [p for p in payload["payments"] if p["id"] == payment_id] if payload else []
            if record is None or payload is None or not found:
                error = {"error": "Payment not found", "symbolic": {"id": "not_found"}}
                return Response(orjson.dumps(error), 404, media_type="application/json")
            payload["payments"].remove(found[0])
            total = to_cents(payload["total_price_incl_tax"])
            paid = to_cents(payload["total_paid"]) - to_cents(found[0]["price"])
            payload["total_paid"] = money(paid)
            payload["total_unpaid"] = payload["total_unpaid_base"] = money(total - paid)
            if payload["state"] == "paid" and paid < total:
                due = dt.date.fromisoformat(payload["due_date"])
                payload["state"] = "late" if due < dt.date.today() else "open"
                payload["paid_at"] = None
            self._touch(record, payload, {})
            self._store(record, payload)
            self._list_cache.clear()
        return Response(status_code=204)

    def payments_of(self, remote_id: str) -> list[dict[str, Any]]:
        """An invoice's payments as its next fetch will show them."""
        with self._lock:
            return list(self._payload(self._live[str(remote_id)])["payments"])

    def _answer(
        self,
        request: Request,
        resource: str,
        endpoint: str,
        ids: list[str] | None,
        bad_body: _BadRequest | None,
    ) -> tuple[int, bytes, str, dict[str, str]]:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            return (
                401,
                orjson.dumps(
                    {"error": "Token is invalid or expired", "symbolic": {"token": "invalid"}}
                ),
                "application/json",
                {},
            )
        params = request.path_params
        known = (
            ("financial_accounts",) if resource == "financial_accounts" else ("synchronization",)
        )
        if (
            params["administration_id"] != self.administration_id
            or params["resource"].removesuffix(".json") not in known
        ):
            return (
                404,
                orjson.dumps(
                    {"error": "Not found", "symbolic": {"administration_id": "not_found"}}
                ),
                "application/json",
                {},
            )
        scope = REQUIRED_SCOPES[resource]
        if scope not in self.scopes:
            # RFC 6750 section 3.1: a valid token without the scope is refused with 403
            return (
                403,
                orjson.dumps(
                    {"error": f"No access to {scope}", "symbolic": {"token": "insufficient_scope"}}
                ),
                "application/json",
                {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        with self._lock:
            limited, headers = self._admit(self.token)
            if limited:
                self.rate_limited += 1
                return 429, b"Retry later", "text/plain", headers
            try:
                if endpoint == "accounts":
                    body = self._accounts_json
                elif endpoint == "list":
                    body = self._list(request.query_params.get("filter"))
                elif endpoint == "mutations_list":
                    body = self._list_mutations(request.query_params.get("filter"))
                elif bad_body is not None:
                    raise bad_body
                elif endpoint == "fetch":
                    body = self._fetch(ids or [])
                else:
                    body = self._fetch_mutations(ids or [])
            except _BadRequest as exc:
                return 400, orjson.dumps(exc.body), "application/json", headers
        return 200, body, "application/json", headers

    def _admit(self, token: str) -> tuple[bool, dict[str, str]]:
        """A sliding window per token; refused requests do not take a slot."""
        if self.rate_limit is None:
            return False, {}
        now = time.monotonic()
        window = self._windows.setdefault(token, deque())
        while window and window[0] <= now - self.rate_window:
            window.popleft()
        limited = len(window) >= self.rate_limit
        if not limited:
            window.append(now)
        frees_in = window[0] + self.rate_window - now
        headers = {
            "RateLimit-Limit": str(self.rate_limit),
            "RateLimit-Remaining": str(self.rate_limit - len(window)),
            "RateLimit-Reset": str(math.ceil(time.time() + frees_in)),
        }
        if limited:
            headers["Retry-After"] = str(max(1, math.ceil(frees_in)))
        return limited, headers

    def _list(self, raw_filter: str | None) -> bytes:
        today = dt.date.today()
        states, period = _parse_filter(raw_filter, today)
        key = (states, period, today)
        cached = self._list_cache.get(key)
        if cached is None:
            records: Iterable[_Record] = self._live.values()
            if states is not None:
                records = [r for r in records if r.state in states]
            if period is not None:
                # a draft without an invoice date belongs to a period only if that contains today
                low, high, undated = period[0], period[1], today.isoformat()
                records = [r for r in records if low <= (r.invoice_date or undated) <= high]
            cached = orjson.dumps([{"id": r.id, "version": r.version} for r in records])
            self._list_cache[key] = cached
        return cached

    def _fetch(self, ids: list[str]) -> bytes:
        answered: list[str] = []
        parts: list[bytes] = []
        for remote_id in dict.fromkeys(ids[:MAX_FETCH]):
            record = self._live.get(remote_id)
            if record is not None:
                answered.append(remote_id)
                parts.append(b"".join(self._body(record)))
        invalid = self._take_invalid(answered, "fetch")
        if invalid is not None:
            position = answered.index(invalid)
            payload = orjson.loads(parts[position])
            payload["total_price_incl_tax"] = "12x.5"
            payload["due_date"] = "not-a-date"
            parts[position] = _dumps(payload)
        return b"[" + b",".join(parts) + b"]"

    def _list_mutations(self, raw_filter: str | None) -> bytes:
        today = dt.date.today()
        key = (*_parse_mutation_filter(raw_filter, today), today)
        cached = self._mutation_list_cache.get(key)
        if cached is None:
            states, signs, account, period = key[:4]
            records: Iterable[_Mutation] = self._mutations.values()
            if states is not None:
                records = [m for m in records if m.state in states]
            if signs is not None:
                records = [m for m in records if m.sign in signs]
            if account is not None:
                records = [m for m in records if m.account == account]
            if period is not None:
                low, high, undated = period[0], period[1], today.isoformat()
                records = [m for m in records if low <= (m.date or undated) <= high]
            cached = orjson.dumps([{"id": m.id, "version": m.version} for m in records])
            self._mutation_list_cache[key] = cached
        return cached

    def _fetch_mutations(self, ids: list[str]) -> bytes:
        answered: list[str] = []
        parts: list[bytes] = []
        for remote_id in dict.fromkeys(ids[:MAX_FETCH]):
            mutation = self._mutations.get(remote_id)
            if mutation is not None:
                answered.append(remote_id)
                parts.append(self._mutation_body(mutation))
        invalid = self._take_invalid(answered, "mutations_fetch")
        if invalid is not None:
            position = answered.index(invalid)
            payload = orjson.loads(parts[position])
            payload["amount"] = "12x.5"
            payload["date"] = "not-a-date"
            parts[position] = _dumps(payload)
        return b"[" + b",".join(parts) + b"]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve a Moneybird sales-invoice and bank-transaction simulator on loopback."
    )
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument(
        "--mutations",
        type=int,
        default=None,
        help="bank transactions (default: one per bank payment)",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token", default="sim-token")
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument("--rate-window", type=float, default=300.0)
    parser.add_argument("--warm", action="store_true", help="serialize all payloads up front")
    args = parser.parse_args(argv)
    simulator = MoneybirdSimulator(
        invoices=args.invoices,
        mutations=args.mutations,
        seed=args.seed,
        token=args.token,
        rate_limit=None if args.no_rate_limit else 150,
        rate_window=args.rate_window,
    )
    if args.warm:
        simulator.warm()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SimulatorServer(simulator, args.port) as server:
        print(f"listening on {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
