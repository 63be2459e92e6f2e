"""WeFact (API v2): invoices with their lines and payment state, through one POST endpoint."""
