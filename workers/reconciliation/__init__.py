"""Reconciliation: which bank money pays which invoice (`engine`), by the rules in `rules`, with
the references and numbers read by `references`, summarized per invoice and transaction by
`status`."""
