"""The names of the record kinds a source mirrors: a run's and a quarantine entry's `stream`."""

from __future__ import annotations

#: what every connector mirrors
INVOICES = "invoices"
#: the bank transactions an invoicing platform holds (Moneybird's financial mutations)
FINANCIAL_MUTATIONS = "financial_mutations"
