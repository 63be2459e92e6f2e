"""Write-back: register at the invoicing system the bank payments reconciliation found it does
not know about (`bank_payment_not_recorded`), each exactly once.

Planning reads only the database (`store.pushes`). Pushing a source goes a batch of invoices at
a time: read them at the source as they are now (one request per batch), settle what needs no
request (the payment is already there with our marker, the invoice is gone, paid or changed),
then for each payment claim the push (`sending`, committed), send it once (`ApiClient.write`)
and record the outcome. An unknown outcome is looked for at the source at once, and again before
any later attempt; a push is never sent twice without reading that it is not there.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

from connectors.base import Connector
from connectors.errors import (
    AuthError,
    ConnectorError,
    NotSent,
    PermanentError,
    RateLimited,
    UncertainOutcome,
)
from connectors.payments import PaymentPush, marked
from connectors.records import Invoice
from store.bulk import chunks
from store.mirror import utcnow
from store.pushes import (
    CANCELLED,
    CONFIRMED,
    FAILED,
    PLANNED,
    SENDING,
    SENT,
    Planning,
    Push,
    PushStore,
)
from workers.logs import get_logger

#: how long a claimed push may be in flight in another worker before it counts as abandoned: far
#: longer than one request with its 429 waits may take
LEASE = dt.timedelta(minutes=10)

#: invoices whose pushes are sent at once: requests overlap their round trips and the
#: database's commits, while the account's rate limiter still paces every request
WRITE_CONCURRENCY = 4

#: outcomes of one push in one run
REGISTERED = "sent"
FOUND = "already there"
REFUSED = "failed"
DROPPED = "cancelled"
UNKNOWN = "uncertain"
WAITING = "not sent"


@dataclass(frozen=True, slots=True)
class Outcome:
    push: Push
    outcome: str
    amount: Decimal
    detail: str = ""

    def line(self) -> str:
        return f"{plan_line(self.push, self.amount)}  -> {self.outcome}" + (
            f": {self.detail}" if self.detail else ""
        )


@dataclass(slots=True)
class SourcePush:
    """One source's part of a `push-payments --apply` run."""

    source: str
    outcomes: list[Outcome] = field(default_factory=list)
    #: why the source stopped before the end (a refused token, no connection), if it did
    stopped: str | None = None
    #: pushes another worker has claimed and may still be sending
    in_flight: int = 0
    #: the run stopped at its deadline with pushes left to send (the daemon sends it again)
    more: bool = False

    @property
    def failed(self) -> bool:
        """Whether this run leaves something a person must look at: a refusal, an unknown
        outcome, or pushes it could not get to."""
        return (
            self.stopped is not None
            or self.in_flight > 0
            or any(o.outcome in (REFUSED, UNKNOWN, WAITING) for o in self.outcomes)
        )


def plan_line(push: Push, amount: Decimal | None = None) -> str:
    """What a person checks before saying `--apply`: where, which invoice, how much, when,
    which bank transaction, and why reconciliation thinks it pays that invoice."""
    value = push.match_amount if amount is None else amount
    return (
        f"{push.source}  invoice {push.invoice_number or '(no number)'} [{push.invoice_remote_id}]"
        f"  {push.currency} {value}  on {push.paid_on.isoformat()}"
        f"  bank transaction {push.bank_transaction_id}  rule {push.rule or '-'}"
    )


def plan(store: PushStore, sources: Sequence[str], now: dt.datetime | None = None) -> Planning:
    planning = store.plan(sources, now or utcnow())
    if planning.planned or planning.revived or planning.withdrawn or planning.confirmed:
        get_logger().info(
            "payment pushes planned",
            sources=list(sources),
            planned=planning.planned,
            revived=planning.revived,
            withdrawn=planning.withdrawn,
            confirmed=planning.confirmed,
        )
    return planning


def planned(store: PushStore, source: str) -> list[Push]:
    """What `--apply` would send for the source now (before it re-checks each at the source)."""
    return [p for p in store.pushes(source, (PLANNED, SENDING)) if p.match_amount is not None]


class _Stop(Exception):
    """Nothing more can be sent to this source in this run (nothing was written by the push
    that raised it)."""


class _Pusher:
    def __init__(
        self,
        store: PushStore,
        connector: Connector,
        source: str,
        lease: dt.timedelta,
        deadline: float | None,
    ) -> None:
        self.deadline = deadline
        self.store = store
        self.connector = connector
        self.result = SourcePush(source)
        self.lease = lease
        #: what is still open per invoice at the source, less what this run has sent
        self.open: dict[str, Decimal] = {}

    def run(self) -> SourcePush:
        if not self.connector.writes_payments:
            self.result.stopped = (
                f"a {self.connector.kind} source cannot register payments: nothing sent"
            )
            return self.result
        now = utcnow()
        due = self.store.pushes(
            self.result.source, (PLANNED, SENDING), claimable_before=now - self.lease
        )
        due_ids = {p.id for p in due}
        self.result.in_flight = sum(
            1 for p in self.store.pushes(self.result.source, (SENDING,)) if p.id not in due_ids
        )
        batches = list(chunks(due, self.connector.batch_size))
        for number, batch in enumerate(batches):
            try:
                self._batch(batch)
            except _Stop as exc:
                self.result.stopped = str(exc)
                for rest in batches[number + 1 :]:
                    self.result.outcomes.extend(self._waiting(rest))
                break
        return self.result

    def _waiting(self, pushes: Iterable[Push]) -> list[Outcome]:
        return [Outcome(p, WAITING, p.match_amount or p.amount) for p in pushes]

    def _batch(self, batch: Sequence[Push]) -> None:
        """Read the batch's invoices, then send its pushes a few invoices at a time (one
        invoice's pushes in order, since each lowers what is open for the next)."""
        ids = list(dict.fromkeys(p.invoice_remote_id for p in batch))
        try:
            found = self._read(ids)
        except ConnectorError as exc:
            self.result.outcomes.extend(self._waiting(batch))
            raise _Stop(f"cannot read the invoices at the source: {exc}") from None
        by_invoice: dict[str, list[Push]] = {}
        for push in batch:
            by_invoice.setdefault(push.invoice_remote_id, []).append(push)
        stopped: list[str] = []

        def invoice(pushes: list[Push]) -> list[Outcome]:
            done: list[Outcome] = []
            for push in pushes:
                if stopped:
                    done.extend(self._waiting([push]))
                    continue
                try:
                    done.append(self._one(push, found.get(push.invoice_remote_id)))
                except _Stop as exc:
                    stopped.append(str(exc))
                    done.extend(self._waiting([push]))
            return done

        with ThreadPoolExecutor(WRITE_CONCURRENCY, thread_name_prefix="push") as pool:
            for done in pool.map(invoice, by_invoice.values()):
                self.result.outcomes.extend(done)
        if stopped:
            raise _Stop(stopped[0])

    def _read(self, ids: Sequence[str]) -> dict[str, Invoice | ValueError]:
        try:
            return dict(self.connector.invoices_now(ids))
        except ValueError:
            pass  # one record does not read: read them one by one to know which
        found: dict[str, Invoice | ValueError] = {}
        for remote_id in ids:
            try:
                found.update(self.connector.invoices_now([remote_id]))
            except ValueError as exc:
                found[remote_id] = exc
        return found

    def _settle(
        self,
        push: Push,
        outcome: str,
        amount: Decimal,
        detail: str = "",
        *,
        remote_payment_id: str | None = None,
    ) -> Outcome:
        """Record the outcome (a `sent` push with the source's id of its payment) and log it."""
        status = {FOUND: SENT, REGISTERED: SENT, REFUSED: FAILED, DROPPED: CANCELLED}.get(outcome)
        if status is not None:
            self.store.settle(
                push.id,
                status,
                utcnow(),
                error=f"{outcome}: {detail}" if status in (FAILED, CANCELLED) else None,
                remote_payment_id=remote_payment_id,
                amount=amount if status == SENT else None,
            )
        log = get_logger(source=push.source, push=push.id)
        log.info("payment push", outcome=outcome, amount=str(amount), detail=detail)
        return Outcome(push, outcome, amount, detail)

    def _registered(self, push: Push, amount: Decimal, remote_id: str, detail: str) -> Outcome:
        """The source took the payment: what is open there is that much less for the next."""
        self.open[push.invoice_remote_id] -= amount
        return self._settle(push, REGISTERED, amount, detail, remote_payment_id=remote_id)

    def _one(self, push: Push, invoice: Invoice | ValueError | None) -> Outcome:
        wanted = push.match_amount or push.amount
        if isinstance(invoice, ValueError):
            error = f"the invoice at the source does not read: {invoice}"
            self.store.settle(push.id, push.status, utcnow(), error=error)
            return Outcome(push, REFUSED, wanted, error)
        if invoice is not None and (remote_id := marked(invoice, self._marker(push))):
            detail = f"payment {remote_id} carries its marker"
            return self._settle(push, FOUND, push.amount, detail, remote_payment_id=remote_id)
        reason = self._reason_not_to_send(push, invoice)
        if reason is not None:
            return self._settle(push, DROPPED, wanted, reason)
        assert invoice is not None and push.match_amount is not None
        open_now = self.open.setdefault(push.invoice_remote_id, invoice.total_unpaid)
        if open_now <= 0:
            return self._settle(push, DROPPED, wanted, "the invoice is paid at the source")
        amount = min(push.match_amount, open_now)
        detail = (
            f"capped at the {open_now} open at the source (of {push.match_amount})"
            if amount < push.match_amount
            else ""
        )
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.result.more = True
            raise _Stop("the run's time is up: the rest are sent by the next one")
        now = utcnow()
        claim = self.store.claim(push.id, now, now - self.lease)
        if claim == "withdrawn":
            return Outcome(push, DROPPED, amount, "the match is no longer active")
        if claim == "taken":
            return Outcome(push, WAITING, amount, "another worker is sending it")
        return self._send(push, amount, detail, settles=amount == open_now)

    def _marker(self, push: Push) -> str:
        return self.connector.payment_marker(push.idempotency_key, push.bank_transaction_id)

    def _reason_not_to_send(self, push: Push, invoice: Invoice | None) -> str | None:
        if push.match_amount is None:
            return "the match is no longer active"
        if invoice is None:
            return "the invoice is gone at the source"
        if invoice.state in ("draft", "cancelled", "uncollectible"):
            return f"the invoice is {invoice.state} at the source"
        if invoice.currency != push.currency:
            return (
                f"the invoice is in {invoice.currency} at the source, the money in {push.currency}"
            )
        if invoice.total_incl_tax != push.invoice_total:
            return (
                f"the invoice's total at the source is {invoice.total_incl_tax}, reconciliation "
                f"matched {push.invoice_total}: planned again once a sync has it"
            )
        return None

    def _send(self, push: Push, amount: Decimal, detail: str, *, settles: bool) -> Outcome:
        request = PaymentPush(
            invoice_remote_id=push.invoice_remote_id,
            amount=amount,
            paid_on=push.paid_on,
            marker=self._marker(push),
            bank_transaction_remote_id=push.bank_transaction_remote_id,
            settles=settles,
        )
        try:
            remote_id = self.connector.register_payment(request)
        except UncertainOutcome as exc:
            return self._uncertain(push, amount, str(exc))
        except (AuthError, RateLimited, NotSent) as exc:
            # nothing was written: the push waits for the next run
            self.store.settle(push.id, PLANNED, utcnow(), error=str(exc))
            raise _Stop(str(exc)) from None
        except PermanentError as exc:
            return self._settle(push, REFUSED, amount, str(exc))
        return self._registered(
            push, amount, remote_id, f"payment {remote_id}" + (f", {detail}" if detail else "")
        )

    def _uncertain(self, push: Push, amount: Decimal, error: str) -> Outcome:
        """A lost answer from a server that finished shows at once; one still working shows
        later: then the push stays `sending` and is looked for again after the lease."""
        try:
            invoice = self.connector.invoices_now([push.invoice_remote_id]).get(
                push.invoice_remote_id
            )
        except (ConnectorError, ValueError):
            invoice = None
        remote_id = marked(invoice, self._marker(push)) if invoice is not None else None
        if remote_id is not None:
            return self._registered(
                push, amount, remote_id, f"payment {remote_id}, found after: {error}"
            )
        detail = (
            f"{error}; not found at the source yet: looked for again, never sent blindly, "
            f"after {int(self.lease.total_seconds() // 60)} minutes"
        )
        self.store.settle(push.id, SENDING, utcnow(), error=detail, amount=amount)
        return Outcome(push, UNKNOWN, amount, detail)


def push_source(
    store: PushStore,
    connector: Connector,
    source: str,
    *,
    lease: dt.timedelta = LEASE,
    seconds: float | None = None,
) -> SourcePush:
    """Send the source's due pushes once each; see the module docstring. With `seconds`, no
    new push is begun after that long (a rate limit of 150 per 5 minutes takes hours for
    thousands): `more` says some were left for the next run."""
    deadline = None if seconds is None else time.monotonic() + seconds
    return _Pusher(store, connector, source, lease, deadline).run()


class UndoError(ValueError):
    """A push that cannot be undone, said in the person's terms."""


def undo(store: PushStore, connector: Connector, push: Push, by: str) -> str:
    """Delete at the source the payment a push registered (its match was wrong), and record
    it: the push is `cancelled`, keeps its `remote_payment_id`, and is never planned again."""
    if push.status not in (SENT, CONFIRMED) or push.remote_payment_id is None:
        raise UndoError(
            f"push {push.id} is {push.status}: only a sent payment with a known id can be undone"
            + (" (read back first: `push-payments --apply`)" if push.status == SENDING else "")
        )
    connector.undo_payment(push.invoice_remote_id, push.remote_payment_id)
    reason = f"undone at the source by {by}: payment {push.remote_payment_id} deleted"
    store.settle(push.id, CANCELLED, utcnow(), error=reason)
    get_logger(source=push.source, push=push.id).info("payment push undone", by=by)
    return reason
