"""Recras (API2): leisure and event venues' invoices (facturen), lines and payments."""
