"""Flowtly (API Platform): invoices, invoice rows and invoice transactions as JSON-LD collections."""
