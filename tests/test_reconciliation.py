"""The reconciliation engine on hand-made ledgers, on SQLite and PostgreSQL: each rule on its
own, the tie refusal, statuses, idempotent runs and a person's decisions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.reconciliation_book import Book
from workers.reconciliation.engine import RunResult, reconcile
from workers.reconciliation.review import DecisionError, confirm, match, reject, review_list

TODAY = dt.date(2026, 6, 1)
RF = "RF18539007547034"


@pytest.fixture
def book(database_url: str) -> Iterator[Book]:
    ledger = Book(database_url)
    yield ledger
    ledger.engine.dispose()


def run(book: Book, full: bool = False) -> RunResult:
    return reconcile(book.engine, full=full, today=TODAY)


def test_a_structured_reference_matches_in_any_spelling(book: Book) -> None:
    invoice = book.invoice("2026-0001", "121.00", reference=RF)
    paid = book.tx("121.00", reference="rf18 5390 0754 7034", iban=None)
    result = run(book)
    assert book.allocations(paid) == {invoice: Decimal("121.00")}
    assert book.matches(paid)[0]["rule"] == "reference"
    assert book.matches(paid)[0]["confidence"] == 1.0
    assert result.rules == {"reference": 1}
    assert book.invoice_status(invoice) == ("bank_payment_not_recorded", Decimal("121.00"))
    assert book.tx_status(paid) == "matched"


def test_a_reference_in_the_end_to_end_id_or_the_text_matches_too(book: Book) -> None:
    first = book.invoice("2026-0001", "10.00", reference=RF)
    second = book.invoice("2026-0002", "20.00", reference="1223 4534 6225 67", customer="c2")
    by_e2e = book.tx("10.00", e2e=RF, iban=None)
    by_text = book.tx("20.00", text="kenmerk 1223 4534 6225 67", iban=None)
    run(book)
    assert book.allocations(by_e2e) == {first: Decimal("10.00")}
    assert book.allocations(by_text) == {second: Decimal("20.00")}


def test_a_reference_whose_check_digit_fails_matches_only_with_the_exact_amount(
    book: Book,
) -> None:
    invoice = book.invoice("2026-0001", "80.00", reference="1234567890123456")
    other = book.invoice("2026-0002", "80.00", reference="1234567890123457", customer="c2")
    exact = book.tx("80.00", reference="1234567890123456", iban=None)
    partial = book.tx("30.00", reference="1234567890123457", iban=None)
    run(book)
    assert book.allocations(exact) == {invoice: Decimal("80.00")}
    assert book.matches(exact)[0]["confidence"] == 0.9
    assert book.allocations(partial) == {}
    assert book.suggested(partial) == [other]


def test_an_invoice_number_matches_in_text_but_never_inside_a_longer_number(book: Book) -> None:
    invoice = book.invoice("2026-0003", "75.50", customer="c2", name="Jan de Vries")
    hidden = book.tx("75.50", text="order 1202600039999", name="X", iban=None)
    spelled = book.tx("75.50", text="Factuur F2026 0003", name="J de Vries", iban=None)
    run(book)
    assert book.allocations(hidden) == {}
    assert book.allocations(spelled) == {invoice: Decimal("75.50")}
    assert book.matches(spelled)[0]["rule"] == "invoice_number"


def test_a_number_with_a_different_amount_from_a_stranger_is_only_suggested(book: Book) -> None:
    invoice = book.invoice("2026-0003", "75.50")
    stranger = book.tx("20.00", text="factuur 2026-0003", name="Piet Puk", iban=None)
    run(book)
    assert book.allocations(stranger) == {}
    assert book.suggested(stranger) == [invoice]
    assert book.tx_status(stranger) == "suggested"


def test_the_customers_iban_and_a_unique_amount_match(book: Book) -> None:
    iban = "NL18INGB1095513148"
    small = book.invoice("2026-0010", "50.00", iban=iban)
    book.invoice("2026-0011", "70.00", iban=iban)
    paid = book.tx("50.00", text="bedankt", iban=iban)
    run(book)
    assert book.allocations(paid) == {small: Decimal("50.00")}
    assert book.matches(paid)[0]["rule"] == "iban_amount"


def test_two_open_invoices_of_the_same_amount_are_a_tie_never_matched(book: Book) -> None:
    iban = "NL18INGB1095513148"
    first = book.invoice("2026-0010", "50.00", iban=iban, due=dt.date(2026, 4, 1))
    second = book.invoice("2026-0011", "50.00", iban=iban, due=dt.date(2026, 5, 1))
    paid = book.tx("50.00", text="bedankt", iban=iban)
    run(book)
    assert book.allocations(paid) == {}
    assert book.suggested(paid) == [first, second]
    assert book.invoice_status(first)[0] == "open"


def test_an_iban_learned_from_a_reference_match_recognises_the_next_payment(book: Book) -> None:
    iban = "NL02RABO0123456789"
    first = book.invoice("2026-0020", "10.00", reference=RF, customer="c9")
    second = book.invoice("2026-0021", "33.00", customer="c9")
    book.tx("10.00", reference=RF, iban=iban, booked=dt.date(2026, 5, 1))
    run(book)
    later = book.tx("33.00", text="juni", iban=iban, booked=dt.date(2026, 5, 20))
    run(book)
    assert book.allocations(later) == {second: Decimal("33.00")}
    assert first != second


def test_one_payment_of_several_numbers_is_split_when_the_amounts_add_up(book: Book) -> None:
    a = book.invoice("2026-0031", "100.00")
    b = book.invoice("2026-0032", "50.25")
    batch = book.tx("150.25", text="facturen 2026-0031 en 2026-0032", iban=None)
    short = book.tx("10.00", text="facturen 2026-0031 en 2026-0032", iban=None)
    run(book)
    assert book.allocations(batch) == {a: Decimal("100.00"), b: Decimal("50.25")}
    assert book.allocations(short) == {}
    assert set(book.suggested(short)) == {a, b}


def test_a_unique_sum_of_the_customers_open_invoices_is_matched(book: Book) -> None:
    iban = "NL18INGB1095513148"
    a = book.invoice("2026-0041", "10.00", iban=iban)
    b = book.invoice("2026-0042", "25.00", iban=iban)
    book.invoice("2026-0043", "40.00", iban=iban)
    paid = book.tx("35.00", text="bedankt", iban=iban)
    run(book)
    assert book.allocations(paid) == {a: Decimal("10.00"), b: Decimal("25.00")}
    assert book.matches(paid)[0]["rule"] == "batch_sum"


def test_partial_payments_add_up_to_the_invoice_over_time(book: Book) -> None:
    iban = "NL18INGB1095513148"
    invoice = book.invoice("2026-0050", "100.00", iban=iban)
    first = book.tx("40.00", text="termijn 1 factuur 2026-0050", iban=iban)
    run(book)
    assert book.invoice_status(invoice) == ("bank_payment_not_recorded", Decimal("40.00"))
    second = book.tx("60.00", text="rest", iban=iban, booked=dt.date(2026, 5, 20))
    run(book)
    assert book.allocations(first) == {invoice: Decimal("40.00")}
    assert book.allocations(second) == {invoice: Decimal("60.00")}
    assert book.matches(second)[0]["rule"] == "partial_payment"
    assert book.invoice_status(invoice) == ("bank_payment_not_recorded", Decimal("100.00"))


def test_a_similar_name_with_the_amount_is_a_suggestion_only(book: Book) -> None:
    invoice = book.invoice("2026-0060", "64.10", name="Bakkerij Jansen B.V.")
    paid = book.tx("64.10", text="bedankt", name="BAKKERIJ JANSEN", iban="NL55INGB0000000001")
    run(book)
    assert book.allocations(paid) == {}
    assert book.suggested(paid) == [invoice]
    assert book.matches(paid)[0]["rule"] == "name_amount"


def test_a_returned_direct_debit_undoes_the_payment_it_returns(book: Book) -> None:
    invoice = book.invoice("2026-0070", "45.00", reference=RF)
    debit = book.tx("45.00", reference=RF, e2e="DD-2026-0070", booked=dt.date(2026, 5, 2))
    run(book)
    returned = book.tx(
        "-45.00", e2e="DD-2026-0070", return_reason="AC06", booked=dt.date(2026, 5, 6)
    )
    run(book)
    assert book.allocations(debit) == {invoice: Decimal("45.00")}
    assert book.allocations(returned) == {invoice: Decimal("-45.00")}
    assert book.invoice_status(invoice) == ("open", Decimal("0.00"))
    assert book.tx_status(returned) == "matched"


def test_a_credit_note_is_refunded_by_outgoing_money_and_suppliers_are_not_receivable(
    book: Book,
) -> None:
    credit = book.invoice("2026-0080", "-30.00")
    refund = book.tx("-30.00", text="creditnota 2026-0080", iban=None)
    supplier = book.tx("-999.99", text="inkoop 2026-0080-X", name="Groothandel", iban=None)
    run(book)
    assert book.allocations(refund) == {credit: Decimal("-30.00")}
    assert book.invoice_status(credit) == ("bank_payment_not_recorded", Decimal("-30.00"))
    assert book.tx_status(supplier) in ("not_receivable", "suggested")
    assert book.allocations(supplier) == {}


def test_invoice_statuses_compare_the_bank_with_what_the_source_says(book: Book) -> None:
    reconciled = book.invoice("2026-0090", "10.00", reference=RF, state="paid", paid="10.00")
    without_bank = book.invoice("2026-0091", "20.00", state="paid", paid="20.00")
    not_due = book.invoice("2026-0092", "30.00", due=dt.date(2026, 7, 1))
    overdue = book.invoice("2026-0093", "40.00")
    over = book.invoice("2026-0094", "5.00", customer="c5")
    book.tx("10.00", reference=RF, iban=None)
    book.tx("7.00", text="factuur 2026-0094 plus fooi", iban=None, name="Bakkerij Jansen")
    run(book)
    assert book.invoice_status(reconciled)[0] == "reconciled"
    assert book.invoice_status(without_bank)[0] == "paid_without_bank_evidence"
    assert book.invoice_status(not_due)[0] == "not_due"
    assert book.invoice_status(overdue)[0] == "open"
    assert book.invoice_status(over)[0] == "open"  # a number with a larger amount: suggested


def test_a_registered_payment_is_linked_to_the_bank_money_that_carried_it(book: Book) -> None:
    invoice = book.invoice("2026-0100", "12.00", reference=RF, state="paid", paid="12.00")
    payment = book.payment(invoice, "12.00", dt.date(2026, 5, 8))
    paid = book.tx("12.00", reference=RF, iban=None, booked=dt.date(2026, 5, 10))
    run(book)
    assert book.matches(paid)[0]["payment_id"] == payment


def test_a_second_run_with_nothing_new_does_nothing_and_full_redoes_the_same(book: Book) -> None:
    invoice = book.invoice("2026-0001", "121.00", reference=RF)
    paid = book.tx("121.00", reference=RF, iban=None)
    first = run(book)
    assert first.status == "ok"
    again = run(book)
    assert again.status == "unchanged"
    before = [(m["bank_transaction_id"], m["invoice_id"], m["amount"]) for m in book.matches()]
    full = run(book, full=True)
    assert full.status == "ok" and full.transactions == 1
    after = [(m["bank_transaction_id"], m["invoice_id"], m["amount"]) for m in book.matches()]
    assert before == after == [(paid, invoice, Decimal("121.00"))]


def test_a_persons_decisions_survive_automatic_runs(book: Book) -> None:
    iban = "NL18INGB1095513148"
    first = book.invoice("2026-0010", "50.00", iban=iban)
    second = book.invoice("2026-0011", "50.00", iban=iban)
    tied = book.tx("50.00", text="bedankt", iban=iban)
    run(book)
    assert set(book.suggested(tied)) == {first, second}
    reject(book.engine, tied, str(first), by="alice")
    run(book, full=True)
    # the rejection ends the tie: the one candidate left is matched, the rejected one never again
    made = {m["invoice_id"]: m for m in book.matches(tied)}
    assert made[second]["status"] == "auto" and made[first]["status"] == "rejected"
    confirm(book.engine, made[second]["id"], by="alice")
    run(book, full=True)
    assert book.allocations(tied) == {second: Decimal("50.00")}
    decided = {m["invoice_id"]: (m["status"], m["decided_by"]) for m in book.matches(tied)}
    assert decided == {first: ("rejected", "alice"), second: ("confirmed", "alice")}
    assert book.tx_status(tied) == "matched"
    assert book.invoice_status(second)[0] == "bank_payment_not_recorded"


def test_a_manual_match_takes_a_part_and_refuses_more_than_is_left(book: Book) -> None:
    invoice = book.invoice("2026-0200", "80.00")
    other = book.invoice("2026-0201", "20.00", customer="c2")
    paid = book.tx("100.00", text="zie mail", name="Iemand", iban=None)
    run(book)
    match(book.engine, paid, "2026-0200", Decimal("80.00"), by="bob")
    with pytest.raises(DecisionError, match="not yet allocated"):
        match(book.engine, paid, str(other), Decimal("30.00"), by="bob")
    with pytest.raises(DecisionError, match="no invoice"):
        match(book.engine, paid, "2099-9999", None, by="bob")
    match(book.engine, paid, str(other), None, by="bob")
    run(book)
    assert book.allocations(paid) == {invoice: Decimal("80.00"), other: Decimal("20.00")}
    assert book.tx_status(paid) == "matched"


def test_an_automatic_match_a_person_rejects_is_undone_and_not_made_again(book: Book) -> None:
    invoice = book.invoice("2026-0001", "121.00", reference=RF)
    paid = book.tx("121.00", reference=RF, iban=None)
    run(book)
    reject(book.engine, paid, str(invoice), by="carol")
    run(book)
    run(book, full=True)
    assert book.allocations(paid) == {}
    assert book.invoice_status(invoice)[0] == "open"
    assert book.tx_status(paid) == "unmatched"


def test_the_review_list_puts_strong_suggestions_first(book: Book) -> None:
    book.invoice("2026-0300", "75.50")
    book.invoice("2026-0301", "10.00", customer="c2", name="Zeeman")
    weak = book.tx("10.00", text="?", name="ZEEMAN", iban="NL55INGB0000000001")
    strong = book.tx("20.00", text="factuur 2026-0300", name="Piet", iban=None)
    lone = book.tx("5.00", text="rente", name="Bank", iban=None)
    run(book)
    order = [row.transaction["id"] for row in review_list(book.engine)]
    assert order == [strong, weak, lone]


def test_money_whose_text_names_another_purpose_is_not_matched_on_account_and_amount(
    book: Book,
) -> None:
    iban = "NL18INGB1095513148"
    invoice = book.invoice("2026-0400", "2927.75", iban=iban)
    deposit = book.tx("2927.75", text="Aanbetaling offerte OFF-5447-A", iban=iban)
    run(book)
    assert book.allocations(deposit) == {}
    assert book.suggested(deposit) == [invoice]


def test_a_part_payment_by_number_needs_the_payer_to_be_the_customer_by_name_or_account(
    book: Book,
) -> None:
    named = book.invoice("2026-0500", "2421.00", name="Schilder Mulder B.V.", customer="c1")
    paid = book.tx("291.91", text="FACTUUR 2026-0500", name="Glazenwasser Mulder B.V.", iban=None)
    same = book.tx("100.00", text="FACTUUR 2026-0500", name="SCHILDER MULDER BV", iban=None)
    run(book)
    assert book.allocations(paid) == {}
    assert book.allocations(same) == {named: Decimal("100.00")}


def test_matches_of_what_the_source_deleted_count_for_nothing_and_are_redone(
    book: Book,
) -> None:
    import sqlalchemy as sa

    from store.schema import bank_transactions, invoices

    first = book.invoice("2026-0600", "60.00", reference=RF)
    paid = book.tx("60.00", reference=RF, iban=None)
    again = book.invoice("2026-0601", "60.00", customer="c2", name="Piet Puk")
    run(book)
    assert book.allocations(paid) == {first: Decimal("60.00")}

    gone = dt.datetime(2026, 6, 2, tzinfo=dt.UTC)
    with book.engine.begin() as c:
        c.execute(sa.update(invoices).where(invoices.c.id == first).values(deleted_at=gone))
    run(book)
    assert book.allocations(paid) == {}
    assert book.tx_status(paid) != "matched"

    with book.engine.begin() as c:
        c.execute(sa.update(invoices).where(invoices.c.id == first).values(deleted_at=None))
        c.execute(
            sa.update(bank_transactions)
            .where(bank_transactions.c.id == paid)
            .values(deleted_at=gone)
        )
    run(book)
    assert book.invoice_status(first)[0] == "open"
    assert book.invoice_status(again)[0] == "open"


def test_moneybirds_copy_of_a_statement_line_is_a_duplicate_not_a_second_payment(
    book: Book,
) -> None:
    invoice = book.invoice("2026-0700", "70.00", reference=RF)
    from_file = book.tx("70.00", reference=RF, e2e="E2E-1", booked=dt.date(2026, 5, 3))
    run(book)
    mutation = book.tx(
        "70.0", reference=RF, e2e="E2E-1", booked=dt.date(2026, 5, 3), origin="moneybird"
    )
    other_day = book.tx("70.00", reference=RF, booked=dt.date(2026, 5, 4), origin="moneybird")
    run(book)
    assert book.allocations(from_file) == {invoice: Decimal("70.00")}
    assert book.tx_status(mutation) == "duplicate"
    assert book.allocations(mutation) == {}
    assert book.tx_status(other_day) != "duplicate"  # another day: a second payment
    assert book.invoice_status(invoice)[0] == "bank_payment_not_recorded"


def test_a_run_that_breaks_writes_nothing_and_says_why(book: Book) -> None:
    import sqlalchemy as sa

    from store.schema import reconciliation_runs

    invoice = book.invoice("2026-0800", "80.00", reference=RF)
    paid = book.tx("80.00", reference=RF, iban=None)
    with book.engine.begin() as c:  # a table the run needs is gone
        c.exec_driver_sql("DROP TABLE invoice_reconciliation")
    with pytest.raises(Exception, match="invoice_reconciliation"):
        run(book)
    assert book.matches(paid) == [], "the matches were rolled back with the rest"
    with book.engine.connect() as c:
        status, error = c.execute(
            sa.select(reconciliation_runs.c.status, reconciliation_runs.c.error)
        ).one()
    assert status == "failed" and "invoice_reconciliation" in error
    assert "INSERT" not in error and "[SQL:" not in error
    assert invoice


def test_a_run_that_breaks_while_writing_leaves_no_match_behind(book: Book) -> None:
    import sqlalchemy as sa

    from store.schema import reconciliation_runs

    book.invoice("2026-0900", "90.00", reference=RF)
    paid = book.tx("90.00", reference=RF, iban=None)
    with book.engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'no statuses today'; END $$"
            )
            c.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON bank_transaction_reconciliation "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            c.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON bank_transaction_reconciliation "
                "BEGIN SELECT RAISE(ABORT, 'no statuses today'); END"
            )
    with pytest.raises(Exception, match="no statuses today"):
        run(book)
    assert book.matches(paid) == [], "the streamed matches were rolled back with the rest"
    with book.engine.connect() as c:
        status, error = c.execute(
            sa.select(reconciliation_runs.c.status, reconciliation_runs.c.error)
        ).one()
    assert status == "failed" and "no statuses today" in error


def test_an_account_taught_later_in_the_same_run_settles_earlier_money(book: Book) -> None:
    iban = "NL02RABO0123456789"
    book.invoice("2026-0950", "10.00", reference=RF, customer="c9")
    second = book.invoice("2026-0951", "33.00", customer="c9")
    early = book.tx("33.00", text="juni", iban=iban, booked=dt.date(2026, 5, 1))
    book.tx("10.00", reference=RF, iban=iban, booked=dt.date(2026, 5, 20))
    first_run = run(book)
    assert book.allocations(early) == {second: Decimal("33.00")}
    assert first_run.rules == {"reference": 1, "iban_amount": 1}
    book.tx("1.00", text="rente", name="Bank", iban=None)  # something new: another run
    assert run(book).rules == {}, "a later run finds nothing the first one missed"


def test_suggestions_keep_their_ids_across_runs_so_review_stays_true(book: Book) -> None:
    iban = "NL18INGB1095513148"
    first = book.invoice("2026-0960", "50.00", iban=iban)
    book.invoice("2026-0961", "50.00", iban=iban)
    tied = book.tx("50.00", text="bedankt", iban=iban)
    run(book)
    before = {m["invoice_id"]: m["id"] for m in book.matches(tied)}
    book.tx("1.00", text="rente", name="Bank", iban=None)  # something new: another run
    assert run(book).status == "ok"
    after = {m["invoice_id"]: m["id"] for m in book.matches(tied)}
    assert after == before, "the same suggestions, the same rows"
    confirm(book.engine, before[first], by="dana")
    run(book)
    assert book.allocations(tied) == {first: Decimal("50.00")}


def test_a_registered_payment_naming_the_transaction_is_linked_whatever_its_date(
    book: Book,
) -> None:
    invoice = book.invoice("2026-0101", "12.00", reference=RF, state="paid", paid="12.00")
    same_day = book.payment(invoice, "12.00", dt.date(2026, 5, 10))
    named = book.payment(invoice, "12.00", dt.date(2026, 3, 1), reference="E2E-0101")
    paid = book.tx("12.00", reference=RF, e2e="E2E-0101", iban=None, booked=dt.date(2026, 5, 10))
    run(book)
    assert book.matches(paid)[0]["payment_id"] == named
    assert same_day != named
