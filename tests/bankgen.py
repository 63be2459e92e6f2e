"""Statement files written for tests and `bench/bank_bench.py`: camt.053.001.02 as Dutch banks
send it, and MT940 in the Rabobank structured dialect, of any size, streamed to disk."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape


@dataclass(frozen=True, slots=True)
class Tx:
    booked: dt.date
    amount: Decimal
    name: str
    iban: str
    text: str
    reference: str | None = None
    end_to_end: str | None = None
    bank_ref: str | None = None


def random_transactions(count: int, start: dt.date, seed: int = 1) -> Iterator[Tx]:
    rng = random.Random(seed)
    for n in range(count):
        cents = rng.randint(-250_000, 500_000) or 1
        yield Tx(
            booked=start + dt.timedelta(days=n // 500),
            amount=Decimal(cents) / 100,
            name=f"Klant {rng.randint(1, 5000)} B.V.",
            iban=f"NL{rng.randint(10, 99)}INGB{rng.randint(0, 10**10 - 1):010d}",
            text=f"Factuur 2026-{rng.randint(1, 99999):05d}",
            reference=f"{rng.randint(10**15, 10**16 - 1)}" if n % 3 == 0 else None,
            end_to_end=f"E2E{n:012d}" if n % 2 == 0 else None,
            bank_ref=f"BR{n:014d}",
        )


def _money(amount: Decimal) -> str:
    return f"{abs(amount):.2f}"


def write_camt053(
    path: Path,
    account: str,
    statements: list[list[Tx]] | Iterator[list[Tx]],
    opening: Decimal = Decimal("1000.00"),
    closing_off_by: Decimal = Decimal(0),
) -> None:
    """One `Stmt` per list; balances are consistent unless `closing_off_by` says otherwise."""
    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns='
            '"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><GrpHdr>'
            "<MsgId>TEST</MsgId><CreDtTm>2026-11-29T10:00:00</CreDtTm></GrpHdr>\n"
        )
        balance = opening
        for number, txs in enumerate(statements, start=1):
            total = sum((t.amount for t in txs), Decimal(0))
            day = txs[0].booked if txs else dt.date(2026, 1, 1)
            out.write(
                f"<Stmt><Id>STMT{number:05d}</Id><CreDtTm>2026-11-29T10:00:00</CreDtTm>"
                f"<Acct><Id><IBAN>{account}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
                + _balance("OPBD", balance, day)
                + _balance("CLBD", balance + total + closing_off_by, day)
                + "\n"
            )
            balance += total
            for tx in txs:
                out.write(_entry(tx))
            out.write("</Stmt>\n")
        out.write("</BkToCstmrStmt></Document>\n")


def _balance(code: str, amount: Decimal, day: dt.date) -> str:
    sign = "CRDT" if amount >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="EUR">{_money(amount)}</Amt><CdtDbtInd>{sign}</CdtDbtInd>'
        f"<Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>"
    )


def _entry(tx: Tx) -> str:
    credit = tx.amount >= 0
    party = "Dbtr" if credit else "Cdtr"
    refs = f"<EndToEndId>{escape(tx.end_to_end)}</EndToEndId>" if tx.end_to_end else ""
    if tx.bank_ref:
        refs = f"<AcctSvcrRef>{escape(tx.bank_ref)}</AcctSvcrRef>" + refs
    structured = (
        "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>CUR</Issr></Tp>"
        f"<Ref>{tx.reference}</Ref></CdtrRefInf></Strd>"
        if tx.reference
        else ""
    )
    return (
        f'<Ntry><Amt Ccy="EUR">{_money(tx.amount)}</Amt>'
        f"<CdtDbtInd>{'CRDT' if credit else 'DBIT'}</CdtDbtInd><Sts>BOOK</Sts>"
        f"<BookgDt><Dt>{tx.booked.isoformat()}</Dt></BookgDt>"
        f"<ValDt><Dt>{tx.booked.isoformat()}</Dt></ValDt><BkTxCd/>"
        f"<NtryDtls><TxDtls><Refs>{refs}</Refs>"
        f"<RltdPties><{party}><Nm>{escape(tx.name)}</Nm></{party}>"
        f"<{party}Acct><Id><IBAN>{tx.iban}</IBAN></Id></{party}Acct></RltdPties>"
        f"<RmtInf><Ustrd>{escape(tx.text)}</Ustrd>{structured}</RmtInf>"
        "</TxDtls></NtryDtls></Ntry>\n"
    )


def write_mt940(
    path: Path, account: str, statements: list[list[Tx]], opening: Decimal = Decimal("1000.00")
) -> None:
    """Rabobank structured dialect: `:940:` header, `/EREF/`, `/BENM/` or `/ORDP/`, `/REMI/`."""
    lines: list[str] = [":940:"]
    balance = opening
    for number, txs in enumerate(statements, start=1):
        day = txs[0].booked if txs else dt.date(2026, 1, 1)
        lines += [f":20:940S{number:06d}", f":25:{account} EUR", ":28C:0"]
        lines.append(f":60F:{_mark(balance)}{day:%y%m%d}EUR{_comma(balance)}")
        for tx in txs:
            bank = f"//{tx.bank_ref}" if tx.bank_ref else ""
            lines.append(
                f":61:{tx.booked:%y%m%d}{_mark(tx.amount)}{_comma(tx.amount)}NTRFNONREF{bank}"
            )
            lines.append(tx.iban)
            party = "ORDP" if tx.amount >= 0 else "BENM"
            info = f"/EREF/{tx.end_to_end or 'NOTPROVIDED'}/{party}//NAME/{tx.name}/REMI/{tx.text}"
            lines.append(":86:" + info[:61])
            lines += [info[i : i + 65] for i in range(61, len(info), 65)]
            balance += tx.amount
        lines.append(f":62F:{_mark(balance)}{day:%y%m%d}EUR{_comma(balance)}")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


def _mark(amount: Decimal) -> str:
    return "C" if amount >= 0 else "D"


def _comma(amount: Decimal) -> str:
    return f"{abs(amount):.2f}".replace(".", ",")
