"""Flowtly (API Platform): invoices, invoice rows and invoice transactions as collections."""
