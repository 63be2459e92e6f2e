"""The matching ladder: for one bank transaction, the automatic allocations a rule is sure of, or
else ranked suggestions for a person.

Certainty first. A rule matches automatically only when exactly one invoice fits; two that fit
equally are a tie, and a tie is only ever suggested. The fuzzy rule (counterparty name with the
amount) never matches automatically. Every candidate search is a dictionary lookup (by
reference, by invoice number, by customer, by open amount): nothing compares a transaction with
every invoice.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from rapidfuzz import fuzz, utils

from workers.reconciliation.model import (
    BATCH_SUM,
    IBAN_AMOUNT,
    INVOICE_NUMBER,
    NAME_AMOUNT,
    PARTIAL_PAYMENT,
    REFERENCE,
    RETURNED,
    SEVERAL_NUMBERS,
    TEACHING_RULES,
    ZERO,
    Decisions,
    OpenInvoice,
    Transaction,
)
from workers.reconciliation.references import (
    Reference,
    key_valid,
    longest_matches,
    normalize_reference,
    number_keys,
    numbers_in_text,
    reference_key,
    references_in_text,
)

#: how many suggestions a transaction keeps
TOP = 3
#: name similarity (rapidfuzz token_set_ratio) that counts as the same party
SAME_NAME = 90.0
#: a customer's open invoices searched for an exact sum (oldest first), and the largest subset
SUM_SEARCH_INVOICES = 12
SUM_SEARCH_SIZE = 4
_FAR = dt.date.max


@dataclass(slots=True)
class Allocation:
    invoice: OpenInvoice
    amount: Decimal  # in the transaction's sign
    rule: str
    confidence: float
    reason: str


@dataclass(slots=True)
class Suggestion:
    invoice: OpenInvoice
    rule: str
    confidence: float
    reason: str


@dataclass(slots=True)
class Outcome:
    allocations: list[Allocation] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)


def iban_key(iban: str | None) -> str | None:
    return iban.replace(" ", "").upper() if iban else None


def similarity(a: str | None, b: str | None) -> float:
    """Loose, for ranking suggestions: `Jansen` is like `Bakkerij Jansen B.V.`."""
    if not a or not b:
        return 0.0
    return float(fuzz.token_set_ratio(a, b, processor=utils.default_process))


_LEGAL_FORMS = frozenset({"bv", "b", "v", "nv", "n", "vof", "cv", "c", "o", "f", "ltd", "gmbh"})


def same_name(a: str | None, b: str | None) -> bool:
    """Strict, for an automatic decision: the same words apart from the legal form and order
    (`BAKKERIJ JANSEN BV` is `Bakkerij Jansen B.V.`; `Glazenwasser Mulder B.V.` is not
    `Schilder Mulder B.V.`, though the loose measure rates them alike)."""
    if not a or not b:
        return False

    def words(name: str) -> str:
        kept = [w for w in utils.default_process(name).split() if w not in _LEGAL_FORMS]
        return " ".join(sorted(kept))

    left, right = words(a), words(b)
    return bool(left and right) and fuzz.ratio(left, right) >= SAME_NAME


#: words in the remittance text that say the money is for something other than an invoice;
#: with one of them, a rule that has only the account and the amount to go on only suggests
_NOT_AN_INVOICE = re.compile(
    r"\b(offerte|aanbetaling|voorschot|terugbetaling|terugstorting|retour|restitutie|refund|"
    r"borg|waarborgsom|salaris|huur|lening|rente)\b",
    re.IGNORECASE,
)


class Ladder:
    """The rules over one set of invoices; allocations made are remembered, so a later
    transaction sees what an earlier one already paid."""

    def __init__(
        self,
        invoices: Iterable[OpenInvoice],
        decisions: Decisions,
        customers_by_iban: dict[str, set[str]],
        returned: Mapping[int, list[tuple[OpenInvoice, Decimal]]] | None = None,
    ) -> None:
        self.decisions = decisions
        self.customers_by_iban = customers_by_iban
        #: return transaction id -> what the transaction it returns was allocated to
        self.returned = returned or {}
        #: (account, end-to-end id) -> (amount, allocations) of payments matched in this run,
        #: for a return booked after its payment
        self._paid_by: dict[
            tuple[str, str], list[tuple[Decimal, list[tuple[OpenInvoice, Decimal]]]]
        ] = defaultdict(list)
        self.by_reference: dict[str, list[OpenInvoice]] = defaultdict(list)
        self.by_number: dict[str, list[OpenInvoice]] = defaultdict(list)
        self.by_customer: dict[str, list[OpenInvoice]] = defaultdict(list)
        self.by_remaining: dict[tuple[str, Decimal], list[OpenInvoice]] = defaultdict(list)
        for invoice in invoices:
            key = reference_key(invoice.payment_reference)
            if key is not None:
                self.by_reference[key].append(invoice)
            for key in number_keys(invoice.number):
                self.by_number[key].append(invoice)
            if invoice.customer is not None:
                self.by_customer[invoice.customer].append(invoice)
            if invoice.remaining:
                self.by_remaining[invoice.currency, invoice.remaining].append(invoice)
        for customer_invoices in self.by_customer.values():
            customer_invoices.sort(key=lambda i: (i.due_date or i.invoice_date or _FAR, i.id))

    # -- the ladder ------------------------------------------------------------------------------

    def match(self, tx: Transaction) -> Outcome:
        """What to do with the unallocated part of `tx`; the allocations are applied."""
        outcome = Outcome()
        if not tx.unallocated:
            return outcome
        if not (
            (tx.is_return and self._returned(tx, outcome))
            or self._reference(tx, outcome)
            or self._numbers(tx, outcome)
            or self._iban(tx, outcome)
        ):
            self._name_and_amount(tx, outcome)
        for allocation in outcome.allocations:
            self._apply(tx, allocation)
        if outcome.allocations and tx.end_to_end_id and not tx.is_return:
            self._paid_by[tx.account_iban, tx.end_to_end_id].append(
                (tx.amount, [(a.invoice, a.amount) for a in outcome.allocations])
            )
        allocated = {a.invoice.id for a in outcome.allocations}
        outcome.suggestions = _best(outcome.suggestions, allocated)
        return outcome

    def _fits(self, tx: Transaction, invoice: OpenInvoice) -> bool:
        return (
            invoice.currency == tx.currency
            and (invoice.total < 0) == (tx.amount < 0)
            and self.decisions.allows(tx.id, invoice.id)
        )

    def _returned(self, tx: Transaction, outcome: Outcome) -> bool:
        original = self.returned.get(tx.id)
        if not original and tx.end_to_end_id:
            original = [
                (invoice, amount)
                for payment_amount, allocations in self._paid_by.get(
                    (tx.account_iban, tx.end_to_end_id), ()
                )
                if payment_amount == -tx.amount
                for invoice, amount in allocations
            ]
        if not original:
            return False
        total = sum((amount for _, amount in original), ZERO)
        if total != -tx.unallocated:
            outcome.suggestions.extend(
                Suggestion(inv, RETURNED, 0.7, f"returns a payment of {total} on it")
                for inv, _ in original
            )
            return True
        outcome.allocations.extend(
            Allocation(inv, -amount, RETURNED, 1.0, "returns the payment allocated to it")
            for inv, amount in original
        )
        return True

    def _reference(self, tx: Transaction, outcome: Outcome) -> bool:
        found: dict[int, tuple[OpenInvoice, bool, str]] = {}
        # the structured fields first; the text only when they name none of ours
        for references in (self._references_in_fields(tx), references_in_text(tx.description)):
            for reference in references:
                for invoice in self.by_reference.get(reference.value, ()):
                    if self._fits(tx, invoice):
                        known = found.get(invoice.id)
                        if known is None or (reference.valid and not known[1]):
                            found[invoice.id] = (invoice, reference.valid, reference.value)
            if found:
                break
        if not found:
            return False
        if len(found) > 1:
            outcome.suggestions.extend(
                Suggestion(inv, REFERENCE, 0.6, f"reference {value}, shared by {len(found)}")
                for inv, _valid, value in found.values()
            )
            return True
        ((invoice, valid, value),) = found.values()
        amount, remaining = abs(tx.unallocated), abs(invoice.remaining)
        if remaining and invoice.remaining * invoice.sign > 0 and (valid or amount == remaining):
            rule = REFERENCE if amount >= remaining and not invoice.allocated else PARTIAL_PAYMENT
            outcome.allocations.append(
                Allocation(
                    invoice,
                    tx.unallocated,
                    rule,
                    1.0 if valid else 0.9,
                    f"reference {value}" + ("" if valid else " (check digit fails)"),
                )
            )
        else:
            if invoice.remaining * invoice.sign <= 0:
                why = "the invoice is already paid in full (paid twice?)"
            else:
                why = f"the check digit fails and {amount} is not the {remaining} open"
            outcome.suggestions.append(
                Suggestion(invoice, REFERENCE, 0.8, f"reference {value}; {why}")
            )
        return True

    def _references_in_fields(self, tx: Transaction) -> Iterator[Reference]:
        """The structured fields' references that name one of our invoices (the check digits
        are only worth computing then)."""
        for text in (tx.payment_reference, tx.end_to_end_id):
            key = reference_key(text)
            if key is not None and key in self.by_reference:
                yield Reference(key, key_valid(key))

    def _numbers(self, tx: Transaction, outcome: Outcome) -> bool:
        text = " | ".join(t for t in (tx.description, tx.payment_reference, tx.end_to_end_id) if t)
        hits = numbers_in_text(text, known=self.by_number)
        if not hits:
            return False
        named: dict[tuple[int, ...], list[OpenInvoice]] = {}
        for hit in longest_matches(hits):
            fitting = [inv for inv in self.by_number[hit.key] if self._fits(tx, inv)]
            if fitting:
                named[tuple(sorted(inv.id for inv in fitting))] = fitting
        if not named:
            return False
        invoices = [inv for group in named.values() for inv in group]
        amount = abs(tx.unallocated)
        if any(len(group) > 1 for group in named.values()):
            outcome.suggestions.extend(
                Suggestion(inv, INVOICE_NUMBER, 0.6, f"number {inv.number}, shared")
                for inv in invoices
            )
            return True
        if len(invoices) == 1:
            (invoice,) = invoices
            remaining = invoice.remaining * invoice.sign
            if remaining > 0 and amount == remaining:
                outcome.allocations.append(
                    Allocation(
                        invoice,
                        tx.unallocated,
                        PARTIAL_PAYMENT if invoice.allocated else INVOICE_NUMBER,
                        0.97,
                        f"invoice number {invoice.number} in the text, amount equal",
                    )
                )
            elif (
                0 < amount < remaining
                and self._same_party(tx, invoice)
                and not self._amount_fits_another(tx, invoice, amount)
            ):
                outcome.allocations.append(
                    Allocation(
                        invoice,
                        tx.unallocated,
                        PARTIAL_PAYMENT,
                        0.9,
                        f"invoice number {invoice.number} in the text, part of the amount, "
                        "paid by the customer",
                    )
                )
            else:
                outcome.suggestions.append(
                    Suggestion(
                        invoice,
                        INVOICE_NUMBER,
                        0.75 if remaining > 0 else 0.5,
                        f"invoice number {invoice.number} in the text; amount {amount} "
                        f"against {remaining} open",
                    )
                )
                # Another customer's number with another amount is weak evidence (a typo names
                # the wrong invoice as often as not): the payer's own account may still decide.
                return self._same_party(tx, invoice)
            return True
        open_amounts = [inv.remaining * inv.sign for inv in invoices]
        if all(r > 0 for r in open_amounts) and sum(open_amounts, ZERO) == amount:
            numbers = ", ".join(str(inv.number) for inv in invoices)
            outcome.allocations.extend(
                Allocation(
                    inv,
                    inv.remaining,
                    SEVERAL_NUMBERS,
                    0.97,
                    f"invoice numbers {numbers} in the text, amounts add up",
                )
                for inv in invoices
            )
        else:
            outcome.suggestions.extend(
                Suggestion(
                    inv,
                    SEVERAL_NUMBERS,
                    0.7 if inv.remaining * inv.sign == amount else 0.55,
                    f"invoice number {inv.number} in the text with {len(invoices) - 1} more",
                )
                for inv in invoices
            )
        return True

    @staticmethod
    def _says_otherwise(tx: Transaction) -> bool:
        """The text names another purpose, or carries a valid structured reference none of
        ours matched (the ladder got here): the account and the amount alone do not decide."""
        if tx.description and _NOT_AN_INVOICE.search(tx.description):
            return True
        reference = normalize_reference(tx.payment_reference)
        if reference is not None and reference.valid:  # a failing check digit is likely a typo
            return True
        return any(True for _ in references_in_text(tx.description))

    def _amount_fits_another(self, tx: Transaction, invoice: OpenInvoice, amount: Decimal) -> bool:
        """Whether another open invoice of the same customer has exactly this amount: then the
        number may be a typo for that one, and a part payment of the named one is not certain."""
        return any(
            other is not invoice
            and other.remaining * other.sign == amount
            and self._fits(tx, other)
            for other in self.by_customer.get(invoice.customer or "", ())
        )

    def knows(self, tx: Transaction) -> bool:
        """Whether the transaction's counterparty account is known to pay for a customer."""
        key = iban_key(tx.counterparty_iban)
        return bool(key and self.customers_by_iban.get(key))

    def _customers_of(self, tx: Transaction) -> set[str]:
        key = iban_key(tx.counterparty_iban)
        return set(self.customers_by_iban.get(key, ())) if key else set()

    def _same_party(self, tx: Transaction, invoice: OpenInvoice) -> bool:
        if invoice.customer is not None and invoice.customer in self._customers_of(tx):
            return True
        return same_name(tx.counterparty_name, invoice.customer_name)

    def _iban(self, tx: Transaction, outcome: Outcome) -> bool:
        customers = self._customers_of(tx)
        if len(customers) != 1:
            return False
        (customer,) = customers
        amount = abs(tx.unallocated)
        if self._says_otherwise(tx):
            outcome.suggestions.extend(
                Suggestion(
                    inv,
                    IBAN_AMOUNT,
                    0.5,
                    "customer's account and amount; the text speaks of something else",
                )
                for inv in self.by_customer.get(customer, ())
                if inv.remaining * inv.sign == amount and self._fits(tx, inv)
            )
            return False
        open_ = [
            inv
            for inv in self.by_customer.get(customer, ())
            if inv.remaining * inv.sign > 0 and self._fits(tx, inv)
        ]
        if not open_:
            return False
        same = [inv for inv in open_ if inv.remaining * inv.sign == amount]
        if len(same) == 1:
            (invoice,) = same
            outcome.allocations.append(
                Allocation(
                    invoice,
                    tx.unallocated,
                    PARTIAL_PAYMENT if invoice.allocated else IBAN_AMOUNT,
                    0.95,
                    f"paid from the customer's account {tx.counterparty_iban}, the one open "
                    "invoice of that amount",
                )
            )
            return True
        if same:
            outcome.suggestions.extend(
                Suggestion(
                    inv,
                    IBAN_AMOUNT,
                    0.65,
                    f"customer's account; {len(same)} open invoices of this amount",
                )
                for inv in same
            )
            return True
        subsets = _exact_sums(open_[:SUM_SEARCH_INVOICES], amount)
        if len(subsets) == 1:
            (subset,) = subsets
            numbers = ", ".join(str(inv.number) for inv in subset)
            outcome.allocations.extend(
                Allocation(
                    inv,
                    inv.remaining,
                    BATCH_SUM,
                    0.9,
                    f"customer's account; the open invoices {numbers} add up to the amount",
                )
                for inv in subset
            )
            return True
        if subsets:
            outcome.suggestions.extend(
                Suggestion(inv, BATCH_SUM, 0.5, "customer's account; one of several sums")
                for subset in subsets
                for inv in subset
            )
            return True
        outcome.suggestions.extend(
            Suggestion(
                inv,
                IBAN_AMOUNT,
                0.45 if inv.remaining * inv.sign > amount else 0.35,
                f"customer's account; {inv.remaining * inv.sign} open",
            )
            for inv in open_[:TOP]
        )
        return False

    def _name_and_amount(self, tx: Transaction, outcome: Outcome) -> None:
        amount = tx.unallocated
        candidates = [
            inv
            for inv in self.by_remaining.get((tx.currency, amount), ())
            if inv.remaining == amount and self._fits(tx, inv)
        ]
        scored = []
        for invoice in candidates:
            score = similarity(tx.counterparty_name, invoice.customer_name)
            if score >= 60:
                scored.append((score, invoice))
        scored.sort(key=lambda s: (-s[0], s[1].due_date or _FAR, s[1].id))
        outcome.suggestions.extend(
            Suggestion(
                invoice,
                NAME_AMOUNT,
                round(0.2 + 0.5 * score / 100, 3),
                f"amount equal; name {score:.0f}% like {invoice.customer_name!r}",
            )
            for score, invoice in scored[: TOP * 2]
        )

    def _apply(self, tx: Transaction, allocation: Allocation) -> None:
        invoice = allocation.invoice
        invoice.allocated += allocation.amount
        tx.allocated += allocation.amount
        iban = iban_key(tx.counterparty_iban)
        if iban and invoice.customer is not None and allocation.rule in TEACHING_RULES:
            self.customers_by_iban.setdefault(iban, set()).add(invoice.customer)
        if invoice.remaining:
            self.by_remaining[invoice.currency, invoice.remaining].append(invoice)


def _exact_sums(invoices: list[OpenInvoice], amount: Decimal) -> list[tuple[OpenInvoice, ...]]:
    """The subsets of 2..SUM_SEARCH_SIZE invoices whose open amounts add up to `amount`, stopping
    at two (two are already a tie)."""
    found: list[tuple[OpenInvoice, ...]] = []
    for size in range(2, min(SUM_SEARCH_SIZE, len(invoices)) + 1):
        for subset in itertools.combinations(invoices, size):
            if sum((inv.remaining * inv.sign for inv in subset), ZERO) == amount:
                found.append(subset)
                if len(found) > 1:
                    return found
    return found


def _best(suggestions: list[Suggestion], allocated: set[int]) -> list[Suggestion]:
    best: dict[int, Suggestion] = {}
    for suggestion in suggestions:
        if suggestion.invoice.id in allocated:
            continue
        known = best.get(suggestion.invoice.id)
        if known is None or suggestion.confidence > known.confidence:
            best[suggestion.invoice.id] = suggestion
    ranked = sorted(
        best.values(),
        key=lambda s: (-s.confidence, s.invoice.due_date or _FAR, s.invoice.id),
    )
    return ranked[:TOP]
